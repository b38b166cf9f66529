"""Snakemake adaptor for the sky model's stacks: see spacepixels.skymodel.stack_frames."""

from pathlib import Path

from astropy.table import Table

from spacepixels import sessions, skymodel
from spacepixels.runner import run_stage


def main(sm):
    settings = skymodel.SkySettings.from_mapping(sm.params.settings)
    frames = sessions.good_frames(sm.input.checked, sm.params.session_folder, sm.params.min_frames)
    table = Table.read(sm.input.checked, format="ascii.ecsv")
    skymodel.stack_frames(frames, table, settings, Path(sm.output.stack).parent, threads=sm.threads)


run_stage(snakemake, main)
