# convert: stretched 8-bit previews with one stretch for the whole session (a calm blink),
# and float32 mono copies of the good frames when `convert.keep` is true.


rule convert:
    input:
        frames=session_frames,
        checked=SESSION_DIR + "/check/frames.ecsv",
    output:
        previews=directory(SESSION_DIR + "/convert/previews"),
        mono=directory(SESSION_DIR + "/convert/mono"),
        stretch=SESSION_DIR + "/convert/stretch.json",
    params:
        settings=stage_settings("convert"),
        session_folder=session_folder,
        min_frames=config["min_frames"],
    log:
        SESSION_DIR + "/logs/convert.log",
    benchmark:
        SESSION_DIR + "/benchmarks/convert.tsv"
    threads: 1
    resources:
        mem_mb=stage_resource("convert", "mem_mb"),
        runtime=stage_resource("convert", "runtime"),
    conda:
        "../../envs/frames.yaml"
    script:
        "../../scripts/convert.py"
