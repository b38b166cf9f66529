# sky: the session's sky model in two jobs. stack_frames: median stacks of the good frames
# computed in strips (bounded memory), which need only the check, so they are made while
# tune measures the session. model_sky: with the tuned seeing and background mesh, the
# reference for difference images, the stationary-source mask and the defect map.


rule stack_frames:
    input:
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
    output:
        stack=f"{RESULTS}/{{session}}/sky/stack.fits",
        early=f"{RESULTS}/{{session}}/sky/early.fits",
        late=f"{RESULTS}/{{session}}/sky/late.fits",
        minimum=f"{RESULTS}/{{session}}/sky/minimum.fits",
        info=f"{RESULTS}/{{session}}/sky/stack.json",
    log:
        f"{RESULTS}/{{session}}/logs/sky_stack.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/sky_stack.tsv"
    conda:
        "../../envs/frames.yaml"
    # Extraction waits for the stacks, so they are on the session's critical path: two
    # threads read and take medians side by side.
    threads: shared_threads(2)
    resources:
        mem_mb=stage_resource("sky", "mem_mb"),
        runtime=stage_resource("sky", "runtime"),
    params:
        settings=stack_settings,
        session_folder=session_folder,
        min_frames=config["min_frames"],
    script:
        "../../scripts/stack.py"


rule model_sky:
    input:
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
        tuned=f"{RESULTS}/{{session}}/tune/settings.yaml",
        stacks=rules.stack_frames.output,
    output:
        stationary=f"{RESULTS}/{{session}}/sky/stationary_mask.fits",
        defects=f"{RESULTS}/{{session}}/sky/defects.fits",
        sources=f"{RESULTS}/{{session}}/sky/stationary_sources.ecsv",
        reference=f"{RESULTS}/{{session}}/sky/reference.fits",
        summary=f"{RESULTS}/{{session}}/sky/sky.json",
    log:
        f"{RESULTS}/{{session}}/logs/sky.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/sky.tsv"
    conda:
        "../../envs/frames.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("sky", "mem_mb"),
        runtime=stage_resource("sky", "runtime"),
    params:
        settings=stage_settings("sky"),
    script:
        "../../scripts/sky.py"
