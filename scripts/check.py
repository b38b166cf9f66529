"""Snakemake adaptor for the check stage: see spacepixels.check."""

from pathlib import Path

from spacepixels import check
from spacepixels.runner import run_stage


def main(sm):
    settings = check.CheckSettings.from_mapping(sm.params.settings)
    table, summary = check.check_session(
        [Path(p) for p in sm.input.frames],
        settings,
        other_files=sm.params.other_files,
        workers=sm.threads,
    )
    check.write_check(table, summary, Path(sm.output.frames), Path(sm.output.summary))


run_stage(snakemake, main)
