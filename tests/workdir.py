"""A working folder for running the real workflow in a test: the workflow's files linked
from the checkout, and a copy of ``config/`` the test may edit."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LINKED = ("Snakefile", "workflow", "scripts", "envs", "src", "profiles")
"""What a working folder links from the checkout (``config/`` is copied instead)."""


def make_workdir(work: Path, *, solve_method: str | None = None) -> Path:
    """Create ``work`` (and its parents) as a working folder; return it.

    ``solve_method``, when given, replaces the shipped ``solve.method`` (synthetic frames
    that carry a WCS over random stars use ``header`` rather than spend a solver's time on
    a sky that does not exist).
    """
    work.mkdir(parents=True)
    for name in LINKED:
        (work / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "config", work / "config")
    if solve_method is not None:
        config = work / "config" / "config.yaml"
        text = config.read_text()
        assert "  method: auto\n" in text, "the shipped solve.method is no longer auto"
        config.write_text(text.replace("  method: auto\n", f"  method: {solve_method}\n"))
    return work
