"""How fast the convert stage makes previews, against the floor of reading the frames.

Writes a session of synthetic 16-bit star fields (``--frames`` frames of ``--size`` pixels
square, uint16 stored as int16 with BZERO 32768, as capture programs write them) to a
temporary folder, then times three things on it:

- the floor: reading each frame with ``astropy.io.fits.getdata``;
- :func:`spacepixels.frames.read_frame` alone (float32 mono);
- :func:`spacepixels.convert.convert_session`: session stretch, binning, 8-bit previews.

and prints seconds per frame and MB/s (of FITS read) for each, plus the cost of a preview
above the read. Run::

    python benchmarks/convert_speed.py               # 20 frames of 2048 x 2048
    python benchmarks/convert_speed.py --size 4096 --frames 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from spacepixels.convert import ConvertSettings, convert_session
from spacepixels.frames import read_frame


def star_field(
    size: int, rng: np.random.Generator, *, stars: int = 400, sky: float = 1200.0
) -> np.ndarray:
    """A uint16 frame: flat sky with Gaussian noise and Gaussian stars of power-law flux."""
    image = rng.normal(sky, 25.0, (size, size)).astype(np.float32)
    sigma = 1.8
    half = 8
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    ys = rng.uniform(half, size - half - 1, stars)
    xs = rng.uniform(half, size - half - 1, stars)
    fluxes = 3e3 * (1.0 - rng.random(stars)) ** -1.2
    for y, x, flux in zip(ys, xs, fluxes, strict=True):
        iy, ix = int(y), int(x)
        gy = np.exp(-0.5 * ((offsets + iy - y) / sigma) ** 2)
        gx = np.exp(-0.5 * ((offsets + ix - x) / sigma) ** 2)
        stamp = np.outer(gy, gx) * (flux / (2 * np.pi * sigma**2))
        image[iy - half : iy + half + 1, ix - half : ix + half + 1] += stamp
    return np.clip(image, 0, 65535).astype(np.uint16)


def _best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames in the session (20)")
    parser.add_argument("--size", type=int, default=2048, help="side of a frame, pixels (2048)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (3)")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(20260314)
    with tempfile.TemporaryDirectory(prefix="convert_speed_") as tmp:
        folder = Path(tmp)
        paths = []
        base = star_field(args.size, rng)
        for i in range(args.frames):
            # The same stars, fresh noise: a tracked session.
            noise = rng.integers(0, 20, base.shape, dtype=np.uint16)
            path = folder / f"light_{i:04d}.fits"
            fits.PrimaryHDU(base + noise).writeto(path)
            paths.append(path)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        settings = ConvertSettings(preview_format=args.format)

        def floor() -> None:
            for path in paths:
                fits.getdata(path)

        def reader() -> None:
            for path in paths:
                read_frame(path)

        def convert() -> None:
            convert_session(paths, folder / "previews", folder / "stretch.json", settings)

        results = {
            "astropy getdata (floor)": _best_of(args.repeats, floor),
            "read_frame (float32 mono)": _best_of(args.repeats, reader),
            f"convert_session ({args.format} previews)": _best_of(args.repeats, convert),
        }

    n = args.frames
    lines = [
        f"{n} frames of {args.size} x {args.size} uint16, {megabytes:.0f} MB of FITS",
        f"{'step':<32} {'s/frame':>9} {'MB/s':>8} {'x floor':>8}",
    ]
    floor_time = results["astropy getdata (floor)"]
    for name, seconds in results.items():
        lines.append(
            f"{name:<32} {seconds / n:9.4f} {megabytes / seconds:8.0f} {seconds / floor_time:8.2f}"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
