"""Snakemake adaptor for the tune stage: see spacepixels.tune."""

from pathlib import Path

from astropy.table import Table

from spacepixels import sessions, tune
from spacepixels.runner import run_stage


def main(sm):
    settings = tune.TuneSettings.from_mapping(sm.params.settings)
    frames = sessions.good_frames(sm.input.checked, sm.params.session_folder, sm.params.min_frames)
    table = Table.read(sm.input.checked, format="ascii.ecsv")
    tuned = tune.tune_session(frames, table, settings, workers=sm.threads)
    tune.write_tuned(tuned, Path(sm.output.settings))


run_stage(snakemake, main)
