"""Snakemake adaptor for the measure stage: see spacepixels.measure."""

import json
from pathlib import Path

from astropy.table import Table

from spacepixels import measure
from spacepixels.frames import FrameReadError, read_header
from spacepixels.runner import run_stage


def main(sm):
    settings = measure.MeasureSettings.from_mapping(sm.params.settings)
    reference = json.loads(Path(sm.input.summary).read_text(encoding="utf-8"))["reference_frame"]
    try:
        header = read_header(Path(sm.params.session_folder) / reference) if reference else None
    except FrameReadError:
        header = None  # the site and exposure then come from the configuration alone
    checked = Table.read(sm.input.checked, format="ascii.ecsv")
    offsets = {str(r["file"]): (float(r["dx"]), float(r["dy"])) for r in checked}
    measure.publish(
        sm.input.candidates,
        sm.input.detections,
        sm.output.candidates,
        sm.output.detections,
        wcs_path=Path(sm.input.wcs),
        solve_json=Path(sm.input.solution),
        reference_header=header,
        settings=settings,
        frame_offsets=offsets,
    )


run_stage(snakemake, main)
