"""Snakemake adaptor for the sky model's maps: see spacepixels.skymodel.sky_maps."""

from pathlib import Path

from astropy.table import Table

from spacepixels import skymodel, tune
from spacepixels.runner import run_stage


def main(sm):
    settings = skymodel.SkySettings.from_mapping(sm.params.settings)
    table = Table.read(sm.input.checked, format="ascii.ecsv")
    tuned = tune.read_tuned(sm.input.tuned)
    skymodel.sky_maps(Path(sm.output.summary).parent, table, tuned, settings)


run_stage(snakemake, main)
