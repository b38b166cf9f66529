"""Snakemake adaptor for the index of every session: see spacepixels.report.build_index."""

from pathlib import Path

from spacepixels import report
from spacepixels.runner import run_stage


def main(sm):
    # The index lies at the top of the results folder; the sessions' folders are below it.
    report.build_index(Path(sm.output.index).parent, sm.params.sessions, sm.output.index)


run_stage(snakemake, main)
