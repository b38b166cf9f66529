# solve: plate-solve the session's reference frame once (header WCS, offline
# astrometry.net, ASTAP, or nova.astrometry.net when chosen by name).


rule solve:
    input:
        summary=f"{RESULTS}/{{session}}/check/summary.json",
    output:
        wcs=f"{RESULTS}/{{session}}/solve/wcs.fits",
        info=f"{RESULTS}/{{session}}/solve/solve.json",
    log:
        f"{RESULTS}/{{session}}/logs/solve.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/solve.tsv"
    conda:
        "../../envs/solve.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("solve", "mem_mb"),
        runtime=stage_resource("solve", "runtime"),
    params:
        settings=stage_settings("solve"),
        session_folder=session_folder,
    script:
        "../../scripts/solve.py"
