# convert: stretched 8-bit previews with one stretch for the whole session (a calm blink),
# and float32 mono copies of the good frames when `convert.keep` is true.


rule convert:
    input:
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
    output:
        previews=directory(f"{RESULTS}/{{session}}/convert/previews"),
        mono=directory(f"{RESULTS}/{{session}}/convert/mono"),
        stretch=f"{RESULTS}/{{session}}/convert/stretch.json",
    log:
        f"{RESULTS}/{{session}}/logs/convert.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/convert.tsv"
    conda:
        "../../envs/frames.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("convert", "mem_mb"),
        runtime=stage_resource("convert", "runtime"),
    params:
        settings=stage_settings("convert"),
        session_folder=session_folder,
        min_frames=config["min_frames"],
    script:
        "../../scripts/convert.py"
