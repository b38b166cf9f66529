# render: animated GIFs of every candidate (object-centric and star-centric, flash and
# streak context) and PNG overviews of the stack and the masks, listed in render.json.
# The folder is one directory() output: Snakemake removes it before a rerun and after a
# failure, so it is whole or absent and never holds the GIFs of candidates that are gone.


rule render:
    input:
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
        candidates=rules.measure.output.candidates,
        detections=rules.measure.output.detections,
        stack=rules.stack_frames.output.stack,
        stationary=rules.model_sky.output.stationary,
        defects=rules.model_sky.output.defects,
    output:
        folder=report(
            directory(f"{RESULTS}/{{session}}/render"),
            patterns=["{name}.gif", "{name}.png"],
            caption="../report/render.rst",
            category="Candidates",
            subcategory="{session}",
            labels={"session": "{session}", "file": "{name}"},
        ),
    log:
        f"{RESULTS}/{{session}}/logs/render.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/render.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("render", "mem_mb"),
        runtime=stage_resource("render", "runtime"),
    params:
        settings=stage_settings("render"),
        session_folder=session_folder,
    script:
        "../../scripts/render.py"
