"""The embedded demo: a small seeded tree of two nights, made on first use.

``snakemake --cores 8`` with the shipped configuration reads ``demo/nights``. When that
folder is missing, the workflow makes it (and ``demo/truth.json`` beside it) with the
synthetic generator before it plans any job, so a fresh clone runs end to end without
any data. The tree is built in a temporary folder and moved into place in one rename, so
two workflows started together never see half a demo.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["DEMO_FOLDER", "demo_input_root", "ensure_demo_tree"]

logger = logging.getLogger(__name__)

DEMO_FOLDER = "demo"
"""Folder, relative to the workflow, that holds the demo: ``nights/`` and ``truth.json``."""


def demo_input_root(workflow_dir: str | os.PathLike[str]) -> Path:
    """Where the demo's tree of nights lives for a workflow folder."""
    return Path(workflow_dir) / DEMO_FOLDER / "nights"


def ensure_demo_tree(
    input_root: str | os.PathLike[str], workflow_dir: str | os.PathLike[str]
) -> bool:
    """Make the demo tree when ``input_root`` is the demo's folder and it is missing.

    Any other ``input_root`` is left alone: the demo is never written into a user's folder.

    Returns
    -------
    bool
        True when the tree was made now.
    """
    target = demo_input_root(workflow_dir)
    if Path(input_root).resolve() != target.resolve() or target.exists():
        return False
    from spacepixels import synth

    demo_dir = target.parent
    demo_dir.parent.mkdir(parents=True, exist_ok=True)
    logger.info("making the demo tree of nights in %s (first run only)", demo_dir)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=demo_dir.parent))
    try:
        synth.make_demo_tree(staging, catalog=True, wcs=False)
        try:
            os.rename(staging, demo_dir)
        except OSError:
            if not target.exists():  # not a race with another run: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True
