"""The session's public catalogues: ``candidates.ecsv`` and ``detections.ecsv``.

These two files are what users, other tools, the tests and the benchmarks read (see the
output contract in DESIGN.md). The linker's tables are in pixel coordinates and MJD; this
stage adds what a person reads directly, the UTC times of each candidate's first and last
detection, and keeps every column of the contract in a fixed order, whatever the linker
adds. Sky coordinates, sky rates and position angles join here once plate solving lands.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from astropy.table import Table

from spacepixels.times import mjd_to_iso

__all__ = ["CANDIDATE_COLUMNS", "DETECTION_COLUMNS", "publish"]

logger = logging.getLogger(__name__)

CANDIDATE_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "n_frames",
    "mjd_start",
    "mjd_end",
    "utc_start",
    "utc_end",
    "x_start",
    "y_start",
    "x_end",
    "y_end",
    "rate_px_per_min",
    "direction_deg",
    "snr_median",
    "score",
)
"""The contract's candidate columns, in order; the linker's other columns follow them."""

DETECTION_COLUMNS: tuple[str, ...] = (
    "candidate_id",
    "frame",
    "mjd",
    "x",
    "y",
    "flux",
    "snr",
    "x0",
    "y0",
    "x1",
    "y1",
)
"""The contract's detection columns, in order (``x0 .. y1``: a streak's end points)."""


def _utc(mjd: float) -> str:
    return mjd_to_iso(float(mjd)) if np.isfinite(mjd) else ""


def _ordered(table: Table, first: tuple[str, ...], what: str) -> Table:
    missing = [name for name in first if name not in table.colnames]
    if missing:
        raise ValueError(f"the linker's {what} lack the contract columns {missing}")
    rest = [name for name in table.colnames if name not in first]
    return table[list(first) + rest]


def _write_atomic(table: Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        table.write(temporary, format="ascii.ecsv", overwrite=True)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def publish(
    link_candidates: str | os.PathLike[str],
    link_detections: str | os.PathLike[str],
    candidates_path: str | os.PathLike[str],
    detections_path: str | os.PathLike[str],
) -> tuple[Table, Table]:
    """Write the session's public catalogues from the linker's.

    Parameters
    ----------
    link_candidates, link_detections : path-like
        ``link/candidates.ecsv`` and ``link/detections.ecsv``.
    candidates_path, detections_path : path-like
        Where the session's ``candidates.ecsv`` and ``detections.ecsv`` go.

    Returns
    -------
    (Table, Table)
        The candidates and detections as written.

    Raises
    ------
    ValueError
        When the linker's tables lack a contract column.
    """
    candidates = Table.read(link_candidates, format="ascii.ecsv")
    detections = Table.read(link_detections, format="ascii.ecsv")
    candidates["utc_start"] = [_utc(m) for m in candidates["mjd_start"]]
    candidates["utc_end"] = [_utc(m) for m in candidates["mjd_end"]]
    candidates = _ordered(candidates, CANDIDATE_COLUMNS, "candidates")
    detections = _ordered(detections, DETECTION_COLUMNS, "detections")
    candidates.meta = {
        "description": "SpacePixels candidates: one row per moving object, streak or flash",
        "pixel_convention": "0-based, x = column",
        "time_convention": "mid-exposure, MJD (UTC)",
        **{k: v for k, v in candidates.meta.items() if k not in ("description",)},
    }
    _write_atomic(candidates, Path(candidates_path))
    _write_atomic(detections, Path(detections_path))
    logger.info("published %d candidates, %d detections", len(candidates), len(detections))
    return candidates, detections
