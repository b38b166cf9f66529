# SpacePixels for Snakemake: find what moved in nights of aligned sub-exposures.
#
# Paths, once for everyone:
#   <input_root>/<night>/<target>/*.fits     frames, read-only; session id = "<night>/<target>"
#   <results_root>/<session>/<stage>/...      one folder per stage per session
#   <results_root>/<session>/logs/<stage>.log and .../benchmarks/<stage>.tsv
#   config/sessions/<session>.yaml            optional per-session overrides of stage sections
#
# Stages: check (calibrate-check) -> convert (previews, optional mono copies)
#         check -> tune + sky stacks -> sky maps -> extract (chunks) -> link
#         check -> solve;  link + solve -> measure (RA/Dec, rates, links)


import sys

from snakemake.utils import min_version

min_version("9.0")

# The package lives beside the workflow; jobs and the planner import this copy of it.
sys.path.insert(0, f"{workflow.basedir}/src")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/check.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/sky.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/link.smk"
include: "workflow/rules/solve.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    end_pending_timers()
