"""How fast and how well a session's reference frame is plate-solved.

Run ``python benchmarks/solve_speed.py``: it draws frames with the real Tycho-2 stars at
real pointings (``synth.make_session(..., catalog=True, wcs=False)``), solves each with
:func:`spacepixels.solve.solve_session` and the hints in its header, and prints for each:
the size, the method, the seconds taken (the whole stage, and the solver alone), the
error of the solved centre and of the injected movers' positions against the truth
(arcsec), and the fit residuals. It also times the check of a frame's own WCS.

Needs Debian's ``astrometry.net`` and ``astrometry-data-tycho2-10-19`` (and ``-09``,
``-08`` for narrow fields); without them it says so and stops.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from spacepixels import solve, synth
from spacepixels.starlist import angular_distance_deg, find_index_files

CASES: tuple[tuple[str, tuple[int, int], float, str], ...] = (
    ("M31", (768, 1024), 7.0, "auto"),
    ("M51", (768, 1024), 7.0, "auto"),
    ("ECL165", (768, 1024), 7.0, "auto"),
    ("M42", (1500, 2000), 4.5, "auto"),
    ("M101", (1500, 2000), 4.5, "auto"),
    ("M31", (768, 1024), 7.0, "header"),
)
"""(target, (height, width), pixel scale arcsec/px, solve.method) of each run."""


def _errors(truth: dict[str, Any], header: Any, info: dict[str, Any]) -> tuple[float, float]:
    """Centre error and worst mover error (arcsec) in the solved (first) frame."""
    from astropy.io import fits
    from astropy.wcs import WCS

    frame = truth["frames"][0]
    height, width = truth["shape"]
    nominal = WCS(fits.Header(truth["astrometry"]["wcs"]))
    cx = (width - 1) / 2.0 - frame["jitter_dx"]
    cy = (height - 1) / 2.0 - frame["jitter_dy"]
    ra, dec = nominal.pixel_to_world_values(cx, cy)
    centre = float(angular_distance_deg(ra, dec, info["centre_ra_deg"], info["centre_dec_deg"]))
    wcs = solve.header_wcs(header)
    worst = 0.0
    for body in truth["objects"]:
        for position in body["positions"]:
            if position["index"] == 0:
                sra, sdec = wcs.pixel_to_world_values(position["x"], position["y"])
                error = float(angular_distance_deg(sra, sdec, position["ra"], position["dec"]))
                worst = max(worst, error * 3600.0)
    return centre * 3600.0, worst


def main() -> int:
    if shutil.which("solve-field") is None or not find_index_files():
        print(
            "solve-field or its index files are missing: "
            "apt-get install astrometry.net astrometry-data-tycho2-10-19"
        )
        return 1
    print(
        f"{'target':8} {'size':>9} {'scale':>5} {'method':>14} {'stage s':>7} {'solver s':>8} "
        f"{'centre err':>10} {'mover err':>9} {'residual':>8} {'stars':>5}"
    )
    with tempfile.TemporaryDirectory(prefix="solve-speed-") as tmp:
        for index, (target, shape, scale, method) in enumerate(CASES):
            root = Path(tmp) / f"case{index}"
            truth = synth.make_session(
                root,
                f"2026-03-14/{target}",
                seed=100 + index,
                n_frames=1,
                shape=shape,
                catalog=True,
                pixel_scale_arcsec=scale,
                wcs=method == "header",
                cloudy=[],
                gap=False,
            )
            frame = root / "2026-03-14" / target / truth["frames"][0]["file"]
            settings = solve.SolveSettings(method=method)
            start = time.perf_counter()
            header, info = solve.solve_session(frame, settings, root / "work")
            seconds = time.perf_counter() - start
            if header is None:
                print(f"{target:8} {shape[1]}x{shape[0]} {info['status']}: {info['message']}")
                continue
            centre, mover = _errors(truth, header, info)
            residual = info["residual_rms_arcsec"]
            print(
                f"{target:8} {shape[1]:>4}x{shape[0]:<4} {scale:5.1f} {info['method']:>14} "
                f'{seconds:7.2f} {info["solver_seconds"] or 0.0:8.2f} {centre:9.2f}" '
                f'{mover:8.2f}" {residual if residual is not None else np.nan:7.2f}" '
                f"{info['n_matched_stars'] or 0:5d}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
