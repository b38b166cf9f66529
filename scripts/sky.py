"""Snakemake adaptor for the sky model: see spacepixels.skymodel."""

from pathlib import Path

from astropy.table import Table

from spacepixels import sessions, skymodel, tune
from spacepixels.runner import run_stage


def main(sm):
    settings = skymodel.SkySettings.from_mapping(sm.params.settings)
    frames = sessions.good_frames(sm.input.checked, sm.params.session_folder, sm.params.min_frames)
    table = Table.read(sm.input.checked, format="ascii.ecsv")
    tuned = tune.read_tuned(sm.input.tuned)
    skymodel.model_sky(
        frames, table, tuned, settings, Path(sm.output.stack).parent, threads=sm.threads
    )


run_stage(snakemake, main)
