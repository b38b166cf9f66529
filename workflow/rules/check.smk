# check (calibrate-check): measure every frame, reject bad ones with a reason, and report
# calibration hints and drift. Reads every frame once.


rule check:
    input:
        frames=session_frames,
    output:
        frames=f"{RESULTS}/{{session}}/check/frames.ecsv",
        summary=f"{RESULTS}/{{session}}/check/summary.json",
    log:
        f"{RESULTS}/{{session}}/logs/check.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/check.tsv"
    conda:
        "../../envs/frames.yaml"
    threads: shared_threads(4)
    resources:
        mem_mb=stage_resource("check", "mem_mb"),
        runtime=stage_resource("check", "runtime"),
    params:
        settings=stage_settings("check"),
        session_folder=session_folder,
        other_files=other_files,
    script:
        "../../scripts/check.py"
