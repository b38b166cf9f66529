# sky: the session's sky model, a median stack of the good frames computed in strips
# (bounded memory), the stationary-source mask, the defect map and early/late stacks.


rule model_sky:
    input:
        checked=f"{RESULTS}/{{session}}/check/frames.ecsv",
        tuned=f"{RESULTS}/{{session}}/tune/settings.yaml",
    output:
        stack=f"{RESULTS}/{{session}}/sky/stack.fits",
        stationary=f"{RESULTS}/{{session}}/sky/stationary_mask.fits",
        defects=f"{RESULTS}/{{session}}/sky/defects.fits",
        early=f"{RESULTS}/{{session}}/sky/early.fits",
        late=f"{RESULTS}/{{session}}/sky/late.fits",
        sources=f"{RESULTS}/{{session}}/sky/stationary_sources.ecsv",
        reference=f"{RESULTS}/{{session}}/sky/reference.fits",
        summary=f"{RESULTS}/{{session}}/sky/sky.json",
    log:
        f"{RESULTS}/{{session}}/logs/sky.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/sky.tsv"
    conda:
        "../../envs/frames.yaml"
    # Extraction waits for the reference, so the stack is on the session's critical path:
    # two threads read and take medians side by side.
    threads: 2
    resources:
        mem_mb=stage_resource("sky", "mem_mb"),
        runtime=stage_resource("sky", "runtime"),
    params:
        settings=stage_settings("sky"),
        session_folder=session_folder,
        min_frames=config["min_frames"],
    script:
        "../../scripts/sky.py"
