# measure: the session's public catalogues, candidates.ecsv and detections.ecsv, in the
# contract's columns (sky coordinates join them once plate solving lands).


rule measure:
    input:
        candidates=rules.link.output.candidates,
        detections=rules.link.output.detections,
    output:
        candidates=f"{RESULTS}/{{session}}/candidates.ecsv",
        detections=f"{RESULTS}/{{session}}/detections.ecsv",
    log:
        f"{RESULTS}/{{session}}/logs/measure.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/measure.tsv"
    conda:
        "../../envs/frames.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("measure", "mem_mb"),
        runtime=stage_resource("measure", "runtime"),
    script:
        "../../scripts/measure.py"
