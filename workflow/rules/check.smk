# check (calibrate-check): measure every frame, reject bad ones with a reason, and report
# calibration hints and drift. Reads every frame once.


rule check:
    input:
        frames=session_frames,
    output:
        frames=SESSION_DIR + "/check/frames.ecsv",
        summary=SESSION_DIR + "/check/summary.json",
    params:
        settings=stage_settings("check"),
        session_folder=session_folder,
        other_files=other_files,
    log:
        SESSION_DIR + "/logs/check.log",
    benchmark:
        SESSION_DIR + "/benchmarks/check.tsv"
    threads: 1
    resources:
        mem_mb=stage_resource("check", "mem_mb"),
        runtime=stage_resource("check", "runtime"),
    conda:
        "../../envs/frames.yaml"
    script:
        "../../scripts/check.py"
