# tune: measure the session's seeing, elongation, jitter and noise on a sample of good
# frames and choose the extraction and linking settings from them, each with its reason.


rule tune:
    input:
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
    output:
        settings=f"{RESULTS}/{{session}}/tune/settings.yaml",
    log:
        f"{RESULTS}/{{session}}/logs/tune.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/tune.tsv"
    conda:
        "../../envs/frames.yaml"
    # The sample frames are measured side by side (tune is on every session's critical
    # path: extraction and the sky model wait for it).
    threads: shared_threads(2)
    resources:
        mem_mb=stage_resource("tune", "mem_mb"),
        runtime=stage_resource("tune", "runtime"),
    params:
        settings=stage_settings("tune"),
        session_folder=session_folder,
        min_frames=config["min_frames"],
    script:
        "../../scripts/tune.py"
