# measure: the session's public catalogues, candidates.ecsv and detections.ecsv, in the
# contract's columns, with RA/Dec, sky rates, position angles and look-up links.


rule measure:
    input:
        candidates=rules.link.output.candidates,
        detections=rules.link.output.detections,
        wcs=rules.solve.output.wcs,
        solution=rules.solve.output.info,
        summary=f"{RESULTS}/{{session}}/check/summary.json",
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
    output:
        candidates=f"{RESULTS}/{{session}}/candidates.ecsv",
        detections=f"{RESULTS}/{{session}}/detections.ecsv",
    log:
        f"{RESULTS}/{{session}}/logs/measure.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/measure.tsv"
    conda:
        "../../envs/solve.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("measure", "mem_mb"),
        runtime=stage_resource("measure", "runtime"),
    params:
        settings=stage_settings("measure"),
        session_folder=session_folder,
    script:
        "../../scripts/measure.py"
