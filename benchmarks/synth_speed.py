"""How fast the synthetic generator writes the project's demo tree.

Run ``python benchmarks/synth_speed.py [OUT]``: it makes the demo (2 nights, 3 sessions of
16 frames of 1024x768) in a temporary folder, or in ``OUT`` if given (which must not hold a
tree yet), and prints the seconds it took and the rate in MB/s of frames written.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from spacepixels.synth import make_demo_tree


def measure(out: Path) -> tuple[float, float]:
    """Make the demo in ``out``; return (seconds, megabytes written)."""
    start = time.perf_counter()
    make_demo_tree(out)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return seconds, size / 1e6


def main(argv: list[str]) -> int:
    if argv:
        seconds, megabytes = measure(Path(argv[0]))
    else:
        with tempfile.TemporaryDirectory(prefix="synth-speed-") as tmp:
            seconds, megabytes = measure(Path(tmp))
    print(f"demo tree: {seconds:.2f} s, {megabytes:.1f} MB, {megabytes / seconds:.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
