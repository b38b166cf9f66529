"""Snakemake adaptor for the extract stage: see spacepixels.extract."""

from pathlib import Path

from astropy.table import Table

from spacepixels import extract, tune
from spacepixels.runner import run_stage


def main(sm):
    tuned = tune.read_tuned(sm.input.tuned)
    values, _ = tune.resolve(sm.params.settings, tuned["extract"])
    table = Table.read(sm.input.checked, format="ascii.ecsv")
    extract.extract_frames(
        [Path(p) for p in sm.input.frames],
        table,
        values,
        Path(sm.output[0]),
        reference_path=Path(sm.input.reference),
    )


run_stage(snakemake, main)
