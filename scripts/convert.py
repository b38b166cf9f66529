"""Snakemake adaptor for the convert stage: see spacepixels.convert."""

from pathlib import Path

from spacepixels import convert, sessions
from spacepixels.runner import run_stage


def main(sm):
    settings = convert.ConvertSettings.from_mapping(sm.params.settings)
    frames = sessions.good_frames(sm.input.checked, sm.params.session_folder, sm.params.min_frames)
    mono_dir = Path(sm.output.mono)
    mono_dir.mkdir(parents=True, exist_ok=True)
    convert.convert_session(
        frames,
        Path(sm.output.previews),
        Path(sm.output.stretch),
        settings,
        mono_dir=mono_dir if settings.keep else None,
    )


run_stage(snakemake, main)
