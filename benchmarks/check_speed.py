"""How fast the check stage runs, next to the floor of reading every frame once.

Writes a synthetic session of 20 frames of 2048x2048 (uint16, as cameras write), then
times :func:`spacepixels.check.check_session` on it, and the floor: opening every frame
with astropy and taking its median. Both run on one core, with the files in the page
cache (they were just written). Prints seconds per frame and megapixels per second.

Usage::

    python benchmarks/check_speed.py [--frames 20] [--size 2048] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from spacepixels import synth
from spacepixels.check import CheckSettings, check_session
from spacepixels.frames import is_frame_name


def _floor(paths: list[Path]) -> float:
    """Seconds to read every frame with astropy and take its median."""
    start = time.perf_counter()
    for path in paths:
        with fits.open(path, memmap=False) as hdul:
            np.median(np.asarray(hdul[0].data, dtype=np.float32))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--keep", type=Path, help="write the session here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        folder = root / "2026-03-14" / "bench"
        if not folder.exists() or len(list(folder.iterdir())) < args.frames:
            synth.make_session(
                root, "2026-03-14/bench", seed=1, n_frames=args.frames, shape=(args.size,) * 2
            )
        paths = sorted(p for p in folder.iterdir() if is_frame_name(p.name))[: args.frames]
        megapixels = args.size * args.size / 1e6

        _floor(paths[:2])  # warm up imports and caches
        floor = _floor(paths)
        start = time.perf_counter()
        table, _ = check_session(paths, CheckSettings())
        check = time.perf_counter() - start

    n = len(paths)
    for label, seconds in (("check", check), ("floor (astropy read + median)", floor)):
        print(
            f"{label:30s} {seconds / n:6.3f} s/frame  {n * megapixels / seconds:6.1f} Mpx/s"
            f"  ({n} frames of {args.size}x{args.size})"
        )
    print(f"rejected: {list(table['file'][table['status'] == 'rejected'])}")


if __name__ == "__main__":
    main()
