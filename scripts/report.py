"""Snakemake adaptor for the report stage: see spacepixels.report."""

import json
from pathlib import Path

from spacepixels import report
from spacepixels.runner import run_stage


def main(sm):
    session_dir = Path(sm.output.html).parent
    reference = json.loads(Path(sm.input.summary).read_text(encoding="utf-8")).get(
        "reference_frame"
    )
    context = report.session_context(
        sm.wildcards.session,
        session_dir=session_dir,
        frames_path=sm.input.checked,
        summary_path=sm.input.summary,
        stretch_path=sm.input.stretch,
        tuned_path=sm.input.tuned,
        candidates_path=sm.input.candidates,
        detections_path=sm.input.detections,
        solve_path=sm.input.solution,
        link_stats_path=sm.input.link_stats,
        render_path=Path(sm.input.render) / "render.json",
        benchmarks_dir=sm.params.benchmarks,
        extract_config=sm.params.extract,
        link_config=sm.params.link,
        target=report.observed_target(sm.params.session_folder, reference),
        settings=report.ReportSettings.from_mapping(sm.params.settings),
    )
    report.build_report(context, sm.output.html, sm.output.summary)


run_stage(snakemake, main)
