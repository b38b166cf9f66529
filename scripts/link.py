"""Snakemake adaptor for the link stage: see spacepixels.link."""

from pathlib import Path

from astropy.table import Table

from spacepixels import link, tune
from spacepixels.runner import run_stage


def main(sm):
    tuned = tune.read_tuned(sm.input.tuned)
    values, provenance = tune.resolve(sm.params.settings, tuned["link"])
    settings = link.LinkSettings.from_mapping(values)
    table = Table.read(sm.input.checked, format="ascii.ecsv")
    sky_dir = Path(sm.input.sky[0]).parent
    # Given the paths, link reads the chunks itself and lets the table go once it is in.
    candidates, found, stats = link.link_session(list(sm.input.chunks), table, sky_dir, settings)
    stats["settings"] = provenance
    out = sm.output
    link.write_link(candidates, found, stats, out.candidates, out.detections, out.stats)


run_stage(snakemake, main)
