"""Snakemake adaptor for the solve stage: see spacepixels.solve."""

import json
import shutil
import tempfile
from pathlib import Path

from spacepixels import solve
from spacepixels.runner import SessionError, run_stage


def main(sm):
    settings = solve.SolveSettings.from_mapping(sm.params.settings)
    summary = json.loads(Path(sm.input.summary).read_text(encoding="utf-8"))
    if not summary.get("reference_frame"):
        raise SessionError("the check found no readable reference frame to solve")
    reference = Path(sm.params.session_folder) / summary["reference_frame"]
    scratch = Path(tempfile.mkdtemp(prefix="spacepixels-solve-"))
    try:
        header, info = solve.solve_session(reference, settings, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    solve.write_solution(header, info, Path(sm.output.wcs), Path(sm.output.info))


run_stage(snakemake, main)
