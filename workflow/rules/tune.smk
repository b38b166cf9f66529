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
    threads: 1
    resources:
        mem_mb=stage_resource("tune", "mem_mb"),
        runtime=stage_resource("tune", "runtime"),
    params:
        settings=stage_settings("tune"),
        session_folder=session_folder,
        min_frames=config["min_frames"],
    script:
        "../../scripts/tune.py"
