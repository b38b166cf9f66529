"""Snakemake adaptor for the render stage: see spacepixels.render."""

from pathlib import Path

from spacepixels import render
from spacepixels.runner import run_stage


def main(sm):
    render.render_session(
        sm.wildcards.session,
        sm.params.session_folder,
        sm.input.checked,
        sm.input.candidates,
        sm.input.detections,
        Path(sm.input.stack).parent,
        Path(sm.output.folder),
        render.RenderSettings.from_mapping(sm.params.settings),
    )


run_stage(snakemake, main)
