"""How long the report takes to build, and how large the page is, for a big session.

Writes the stage files of one synthetic session the way the stages do (``--frames`` frames
in ``check/frames.ecsv`` with a few rejected, a preview listed per kept frame,
``--candidates`` tracks of ``--per-track`` detections each, tuned settings, benchmark
files, render.json), then times :func:`spacepixels.report.session_context` plus
:func:`spacepixels.report.build_report` and :func:`spacepixels.report.build_index` over
``--sessions`` copies of its summary, and prints seconds and sizes. The pictures themselves
are not made: building the page reads only the tables and JSON files. Run::

    python benchmarks/report_speed.py                     # 500 frames, 200 candidates
    python benchmarks/report_speed.py --frames 2000 --candidates 1000
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from astropy.table import Table

from spacepixels import report


def write_session(out: Path, frames: int, candidates: int, per_track: int, seed: int = 1) -> None:
    """The stage files of one session with ``frames`` frames and ``candidates`` tracks."""
    rng = np.random.default_rng(seed)
    names = [f"light_{i:05d}.fits" for i in range(frames)]
    rejected = set(rng.choice(frames, size=max(1, frames // 50), replace=False).tolist())
    mjd = 61113.9 + np.arange(frames) * 60 / 86400
    table = Table()
    table["file"] = names
    table["date_obs"] = [
        f"2026-03-14T21:{(i // 60) % 60:02d}:{i % 60:02d}.000" for i in range(frames)
    ]
    table["mjd_mid"] = mjd
    table["background"] = rng.normal(2000, 20, frames)
    table["star_count"] = rng.integers(180, 240, frames)
    table["fwhm"] = rng.normal(3.0, 0.1, frames)
    table["dx"] = rng.normal(0, 0.3, frames)
    table["dy"] = rng.normal(0, 0.3, frames)
    table["status"] = ["rejected" if i in rejected else "ok" for i in range(frames)]
    table["reason"] = [
        "cloud or glow: background high" if i in rejected else "" for i in range(frames)
    ]
    table["reason_kind"] = ["cloud" if i in rejected else "" for i in range(frames)]
    (out / "check").mkdir(parents=True)
    table.write(out / "check" / "frames.ecsv", format="ascii.ecsv")
    (out / "check" / "summary.json").write_text(json.dumps({"reference_frame": names[0]}))
    kept = [n for i, n in enumerate(names) if i not in rejected]
    (out / "convert").mkdir()
    (out / "convert" / "stretch.json").write_text(
        json.dumps(
            {
                "binning": 4,
                "preview_width": 1562,
                "preview_height": 1044,
                "previews": [{"file": n, "preview": n.replace(".fits", ".jpg")} for n in kept],
            }
        )
    )
    (out / "tune").mkdir()
    (out / "tune" / "settings.yaml").write_text(
        yaml.safe_dump({"extract": {"detect_sigma": {"value": 4.0, "why": "balanced"}}})
    )
    ids = [f"T{k + 1:04d}" for k in range(candidates)]
    cand = Table()
    cand["id"] = ids
    cand["kind"] = ["track"] * candidates
    cand["n_frames"] = [per_track] * candidates
    cand["score"] = rng.uniform(0.5, 1.0, candidates)
    for column in ("x_start", "y_start", "x_end", "y_end", "ra_start", "dec_start"):
        cand[column] = rng.uniform(0, 4000, candidates)
    link = "https://ssd-api.jpl.nasa.gov/sb_ident.api?mpc-code=500&obs-time=2461114.43"
    cand["links"] = [json.dumps({"jpl": link, "stellarium": link})] * candidates
    cand.write(out / "candidates.ecsv", format="ascii.ecsv")
    rows = []
    for cid in ids:
        start = int(rng.integers(0, max(1, len(kept) - per_track)))
        x, y = rng.uniform(0, 6000, 2)
        for j, name in enumerate(kept[start : start + per_track]):
            rows.append((cid, name, x + 2 * j, y + j))
    Table(rows=rows, names=("candidate_id", "frame", "x", "y")).write(
        out / "detections.ecsv", format="ascii.ecsv"
    )
    (out / "render").mkdir()
    (out / "render" / "render.json").write_text(
        json.dumps(
            {
                "candidates": [
                    {"id": c, "gifs": {"object": f"{c}_object.gif", "stars": f"{c}_stars.gif"}}
                    for c in ids
                ]
            }
        )
    )
    (out / "benchmarks").mkdir()
    for stage in ("check", "convert", "tune", "link", "measure"):
        (out / "benchmarks" / f"{stage}.tsv").write_text(
            "s\tmax_rss\tcpu_time\n12.5\t800.0\t11.0\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--per-track", type=int, default=40)
    parser.add_argument("--sessions", type=int, default=200, help="sessions in the index")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        out = results / "2026-03-14" / "M31"
        write_session(out, args.frames, args.candidates, args.per_track)
        started = time.perf_counter()
        context = report.session_context(
            "2026-03-14/M31",
            session_dir=out,
            frames_path=out / "check" / "frames.ecsv",
            summary_path=out / "check" / "summary.json",
            stretch_path=out / "convert" / "stretch.json",
            tuned_path=out / "tune" / "settings.yaml",
            candidates_path=out / "candidates.ecsv",
            detections_path=out / "detections.ecsv",
            render_path=out / "render" / "render.json",
            benchmarks_dir=out / "benchmarks",
        )
        read = time.perf_counter() - started
        html = report.build_report(context, out / "report.html", out / "report.json")
        total = time.perf_counter() - started
        data = re.search(r'id="blink-data">(.*?)</script>', html, re.S)
        print(
            f"session: {args.frames} frames, {args.candidates} candidates x {args.per_track}"
            f" detections"
        )
        print(f"  read the stage files   {read:6.2f} s")
        print(f"  page built and written {total:6.2f} s")
        print(f"  report.html            {len(html.encode()) / 1e6:6.2f} MB")
        print(f"  of which blink data    {len(data.group(1).encode()) / 1e6:6.2f} MB")
        summary = (out / "report.json").read_text()
        sessions = [
            f"2026-{(k // 30) % 12 + 1:02d}-{k % 28 + 1:02d}/T{k}" for k in range(args.sessions)
        ]
        for session in sessions:
            (results / session).mkdir(parents=True, exist_ok=True)
            (results / session / "report.json").write_text(summary)
            (results / session / "report.html").write_text("")
        started = time.perf_counter()
        report.build_index(results, sessions, results / "index.html")
        index_s = time.perf_counter() - started
        size = (results / "index.html").stat().st_size
        print(f"index: {args.sessions} sessions in {index_s:.2f} s, {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
