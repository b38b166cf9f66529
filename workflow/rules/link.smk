# link: detections into moving tracks, streaks, flashes and slow movers, while stationary
# stars, hot pixels, column defects and cosmic rays stay out.


rule link:
    input:
        chunks=session_chunks,
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
        tuned=f"{RESULTS}/{{session}}/tune/settings.yaml",
        sky=[*rules.stack_frames.output, *rules.model_sky.output],
    output:
        candidates=f"{RESULTS}/{{session}}/link/candidates.ecsv",
        detections=f"{RESULTS}/{{session}}/link/detections.ecsv",
        stats=f"{RESULTS}/{{session}}/link/link.json",
    log:
        f"{RESULTS}/{{session}}/logs/link.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/link.tsv"
    conda:
        "../../envs/frames.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("link", "mem_mb"),
        runtime=stage_resource("link", "runtime"),
    params:
        settings=stage_settings("link"),
    script:
        "../../scripts/link.py"
