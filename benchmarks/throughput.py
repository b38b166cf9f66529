"""Throughput and memory of the detection stages, against the floor of reading the frames.

For each session size (frames x width x height) the benchmark writes a synthetic session,
runs the workflow's detection stages (check, tune, sky, extract, link) with
``snakemake --cores 2``, and prints

- per-stage seconds and peak memory (max RSS) from the rules' ``benchmark:`` files,
- the wall time of the whole run and its megapixels per second,
- the floor: reading every frame once with astropy and taking its median,
- the ratio of the run to the floor,

and first the fixed cost of any session: the same stages on 20 frames of 256 x 256.

A size ``KxFRAMESxSIDE`` is a night of K such sessions (different seeds) in one run, the way
a night tree is processed: the sessions' jobs share the two cores, so that one session's
start-up and serial steps overlap another's pixel work.

Targets (issue 3): the detection stages together at >= 15 megapixels/s with 2 cores, and no
job above 1.5 GB peak memory for 100 frames of 4096x4096.

Usage::

    python benchmarks/throughput.py                      # 20 and 100 frames at 2048 and 4096
    python benchmarks/throughput.py --sizes 20x2048      # one size
    python benchmarks/throughput.py --sizes 4x20x2048    # a night of four such sessions
    python benchmarks/throughput.py --keep DIR           # keep the data and results in DIR
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from astropy.io import fits

from spacepixels import synth

ROOT = Path(__file__).resolve().parents[1]
TARGET_MPIX_PER_S = 15.0
TARGET_PEAK_MB = 1500.0
STAGES = ("check", "tune", "sky", "extract", "link")


def _session_ids(n_sessions: int) -> list[str]:
    if n_sessions == 1:
        return ["2026-03-14/BENCH"]
    return [f"2026-03-14/BENCH{k + 1}" for k in range(n_sessions)]


def _make_session(nights: Path, n_frames: int, side: int, seed: int, session: str) -> None:
    synth.make_session(nights, session, seed=seed, n_frames=n_frames, shape=(side, side))


def _floor_seconds(frames: list[Path]) -> float:
    started = time.perf_counter()
    for path in frames:
        np.median(fits.getdata(path))
    return time.perf_counter() - started


def _run_workflow(nights: Path, results: Path, sessions: list[str]) -> tuple[float, str]:
    targets = [str(results / session / "link" / "candidates.ecsv") for session in sessions]
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--cores",
        "2",
        "--quiet",
        "all",
        "--config",
        f"input_root={nights}",
        f"results_root={results}",
        "--",
        *targets,
    ]
    started = time.perf_counter()
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"the workflow failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return elapsed, run.stdout


def _stage_figures(results: Path, sessions: list[str]) -> dict[str, dict[str, float]]:
    """Seconds (summed over jobs), peak memory and jobs per stage, from the benchmark
    files (a stage's several jobs, ``extract_000`` or ``sky_stack``, count as one stage)."""
    figures: dict[str, dict[str, float]] = defaultdict(
        lambda: {"s": 0.0, "max_rss_mb": 0.0, "jobs": 0}
    )
    for session in sessions:
        for path in (results / session / "benchmarks").glob("*.tsv"):
            stage = path.stem.split("_")[0]
            with path.open() as handle:
                row = next(csv.DictReader(handle, delimiter="\t"))
            entry = figures[stage]
            entry["s"] += float(row["s"])
            rss = row.get("max_rss", "NA")
            if rss not in ("NA", "", "-"):
                entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss))
            entry["jobs"] += 1
    return figures


def bench(
    n_frames: int, side: int, workdir: Path, seed: int, n_sessions: int = 1
) -> dict[str, float]:
    label = f"{n_sessions}x{n_frames}x{side}" if n_sessions > 1 else f"{n_frames}x{side}"
    nights = workdir / f"nights_{label}"
    results = workdir / f"results_{label}"
    sessions = _session_ids(n_sessions)
    shutil.rmtree(results, ignore_errors=True)
    if not nights.exists():
        print(f"  writing {n_sessions * n_frames} frames of {side}x{side} ...", flush=True)
        for k, session in enumerate(sessions):
            _make_session(nights, n_frames, side, seed + k, session)
    frames = sorted(p for session in sessions for p in (nights / session).glob("*.fits"))
    megapixels = len(frames) * side * side / 1e6
    floor = _floor_seconds(frames)
    wall, _ = _run_workflow(nights, results, sessions)
    stages = _stage_figures(results, sessions)
    detection = sum(stages[s]["s"] for s in STAGES if s in stages)
    peak = max((stages[s]["max_rss_mb"] for s in stages), default=float("nan"))
    what = f"{n_frames} frames of {side}x{side}"
    if n_sessions > 1:
        what = f"a night of {n_sessions} sessions of {what}, in one run"
    print(f"\n{what} ({megapixels:.0f} megapixels)")
    print(f"  {'stage':<9} {'jobs':>4} {'seconds':>8} {'Mpix/s':>8} {'peak MB':>8}")
    for stage in STAGES:
        if stage in stages:
            entry = stages[stage]
            rate = megapixels / entry["s"] if entry["s"] > 0 else float("inf")
            print(
                f"  {stage:<9} {entry['jobs']:>4d} {entry['s']:>8.2f} {rate:>8.1f} "
                f"{entry['max_rss_mb']:>8.0f}"
            )
    rate = megapixels / wall
    print(f"  workflow wall time (--cores 2, incl. planning): {wall:.1f} s = {rate:.1f} Mpix/s")
    print(f"  sum of detection-stage job times: {detection:.1f} s")
    print(
        f"  floor (astropy read + median of every frame once): {floor:.1f} s = "
        f"{megapixels / floor:.1f} Mpix/s; run / floor = {wall / floor:.1f}x"
    )
    verdict = "PASS" if rate >= TARGET_MPIX_PER_S else "FAIL"
    print(f"  target >= {TARGET_MPIX_PER_S:.0f} Mpix/s: {verdict}")
    if n_frames >= 100 and side >= 4096:
        verdict = "PASS" if peak <= TARGET_PEAK_MB else "FAIL"
        print(f"  target peak memory per job <= {TARGET_PEAK_MB:.0f} MB: {peak:.0f} MB {verdict}")
    return {"rate": rate, "peak": peak, "floor": floor, "wall": wall}


def fixed_cost(workdir: Path, seed: int) -> float:
    """The wall time of the detection stages on 20 frames of 256 x 256: what any session
    costs before its pixels (Snakemake's planning and six jobs' start-up)."""
    nights = workdir / "nights_fixed"
    results = workdir / "results_fixed"
    sessions = _session_ids(1)
    shutil.rmtree(results, ignore_errors=True)
    if not nights.exists():
        _make_session(nights, 20, 256, seed, sessions[0])
    wall, _ = _run_workflow(nights, results, sessions)
    print(
        f"\nfixed cost of a session (20 frames of 256x256, 1.3 megapixels): {wall:.1f} s "
        "of every session's wall time"
    )
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="20x2048,4x20x2048,100x2048,20x4096,100x4096",
        help="comma-separated FRAMESxSIDE session sizes, or SESSIONSxFRAMESxSIDE for a night "
        "of several sessions in one run",
    )
    parser.add_argument("--keep", type=Path, help="keep data and results in this folder")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="spacepixels-throughput-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        fixed_cost(workdir, args.seed)
        for size in args.sizes.split(","):
            numbers = [int(v) for v in size.lower().split("x")]
            n_sessions, n_frames, side = ([1] + numbers)[-3:]
            bench(n_frames, side, workdir, args.seed, n_sessions)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
