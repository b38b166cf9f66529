# extract: sources per frame with sep (background and RMS maps, the sky model's stationary
# image fitted and subtracted, matched filter, deblending), one catalogue per chunk of
# `extract.frames_per_job` frames.


rule extract:
    input:
        frames=chunk_frames,
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
        tuned=f"{RESULTS}/{{session}}/tune/settings.yaml",
        # Each frame minus the session's stationary image (fitted to it) is what is
        # searched, unless extract.subtract_reference is false.
        reference=f"{RESULTS}/{{session}}/sky/reference.fits",
    output:
        catalogue=f"{RESULTS}/{{session}}/extract/chunk_{{chunk}}.ecsv",
    log:
        f"{RESULTS}/{{session}}/logs/extract_{{chunk}}.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/extract_{{chunk}}.tsv"
    # On a cluster, chunks travel in groups (profiles/slurm sets how many per Slurm job
    # with group-components), so a long night is not thousands of tiny jobs. The group's
    # name has no wildcard: a "/" from a session id breaks the Slurm executor's job script.
    group:
        "extract"
    conda:
        "../../envs/frames.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("extract", "mem_mb"),
        runtime=stage_resource("extract", "runtime"),
    params:
        settings=stage_settings("extract"),
    script:
        "../../scripts/extract.py"
