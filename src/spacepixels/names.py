"""Which files are frames, by name alone.

Session discovery runs while Snakemake plans the workflow, on every run; it reads names,
never pixels, so it needs this module and not the frame reader (:mod:`spacepixels.frames`,
which imports astropy and re-exports these names).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FRAME_SUFFIXES", "frame_stem", "is_frame_name"]

FRAME_SUFFIXES: tuple[str, ...] = (".fit", ".fits", ".fts", ".fz", ".xisf")
"""File name endings taken as frames (compared case-insensitively; ``.fits.fz`` ends in
``.fz``)."""

_STEM_SUFFIXES: tuple[str, ...] = (
    ".fits.fz",
    ".fit.fz",
    ".fts.fz",
    ".fits",
    ".fit",
    ".fts",
    ".fz",
    ".xisf",
)
"""Endings removed by :func:`frame_stem`, longest first."""


def is_frame_name(name: str) -> bool:
    """Whether a file name looks like a frame (by its ending, case-insensitively)."""
    lower = name.lower()
    return not lower.startswith(".") and lower.endswith(FRAME_SUFFIXES)


def frame_stem(name: str) -> str:
    """A frame's file name without its frame ending.

    ``light_001.fits``, ``light_001.FIT``, ``light_001.fits.fz`` and ``light_001.xisf``
    all give ``light_001``; a name with another ending is returned unchanged.
    """
    name = Path(name).name
    lower = name.lower()
    for suffix in _STEM_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name
