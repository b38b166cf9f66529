# report: one HTML page per session (report.html, with report.json for the index) and
# results/index.html over every session, newest night first.
#
# keep-going: the index rule needs every session's report, so when one session fails the
# rule cannot run. The `onerror` handler below then writes the same index from what exists
# (the failed sessions listed with the first error line of their logs), so a user still
# gets a way into every session that worked. The next run rebuilds it through the rule.


rule report:
    input:
        checked=rules.check.output.frames,
        summary=rules.check.output.summary,
        stretch=rules.convert.output.stretch,
        previews=rules.convert.output.previews,
        tuned=rules.tune.output.settings,
        link_stats=rules.link.output.stats,
        solution=rules.solve.output.info,
        candidates=rules.measure.output.candidates,
        detections=rules.measure.output.detections,
        render=rules.render.output.folder,
    output:
        html=report(
            f"{RESULTS}/{{session}}/report.html",
            caption="../report/report.rst",
            category="Sessions",
            subcategory="{session}",
            labels={"session": "{session}", "file": "report.html"},
        ),
        summary=f"{RESULTS}/{{session}}/report.json",
    log:
        f"{RESULTS}/{{session}}/logs/report.log",
    benchmark:
        f"{RESULTS}/{{session}}/benchmarks/report.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("report", "mem_mb"),
        runtime=stage_resource("report", "runtime"),
    params:
        settings=stage_settings("report"),
        extract=stage_settings("extract"),
        link=stage_settings("link"),
        session_folder=session_folder,
        benchmarks=lambda wildcards: f"{RESULTS}/{wildcards.session}/benchmarks",
    script:
        "../../scripts/report.py"


rule index:
    input:
        summaries=[f"{RESULTS}/{session}/report.json" for session in SESSIONS],
        reports=[f"{RESULTS}/{session}/report.html" for session in SESSIONS],
    output:
        index=report(
            f"{RESULTS}/index.html",
            caption="../report/index.rst",
            category="Index",
            labels={"file": "index.html"},
        ),
    log:
        f"{RESULTS}/logs/index.log",
    benchmark:
        f"{RESULTS}/benchmarks/index.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=stage_resource("report", "mem_mb"),
        runtime=stage_resource("report", "runtime"),
    params:
        sessions=list(SESSIONS),
    script:
        "../../scripts/index.py"


onerror:
    # Imported here: the planner of every run would otherwise import the report's modules.
    from spacepixels.report import index_after_failure

    logger.warning(index_after_failure(RESULTS, SESSIONS))
    end_pending_timers()
