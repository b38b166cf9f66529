"""How fast the render stage makes its GIFs, how big they are, and how often it reads a frame.

Draws a seeded synthetic session with :mod:`spacepixels.synth` (``--frames`` frames of
``--width`` x ``--height``, with ``--movers`` point movers, a slow mover, a flash, a
satellite streak and a streak track), runs the real check and sky model on it, and writes
its ``candidates.ecsv`` and ``detections.ecsv`` from the generator's truth in the public
contract's columns (render sees what measure would write; how well link finds them is
``benchmarks/detection_quality.py``'s business). Then it times
:func:`spacepixels.render.render_session` with every frame read counted, and prints:

- the whole stage's seconds, the part spent reading frames, and the floor of reading every
  good frame once with :func:`spacepixels.frames.read_frame`;
- frames read, against the reads a renderer that read each candidate's frames for itself
  would make;
- per candidate: kind, GIF frames, crop, GIF sizes and seconds (cutting and encoding);
- a 200 x 200 px, 50-frame object GIF's size (the issue's target: well under 1 MB).

Run::

    python benchmarks/render_speed.py                      # 50 frames of 1024 x 768
    python benchmarks/render_speed.py --frames 100 --movers 10
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from spacepixels import check, render, skymodel, synth, tune
from spacepixels.frames import read_frame

SESSION = "2026-03-14/M31"
KINDS = {
    "mover": ("T", "track"),
    "slow_mover": ("M", "slow_mover"),
    "flash": ("F", "anomaly"),
    "streak": ("S", "streak"),
    "streak_track": ("K", "streak_track"),
}


def contract_tables(truth: dict, good: list[str]) -> tuple[Table, Table]:
    """candidates.ecsv and detections.ecsv from the truth, in the contract's columns."""
    candidates, detections = [], []
    counts: dict[str, int] = {}
    for obj in truth["objects"]:
        letter, kind = KINDS[obj["kind"]]
        counts[letter] = counts.get(letter, 0) + 1
        cid = f"{letter}{counts[letter]:04d}"
        rows = [p for p in obj["positions"] if p["frame"] in good]
        if not rows:
            continue
        streak = obj["kind"] in ("streak", "streak_track")
        for p in rows:
            detections.append(
                {
                    "candidate_id": cid,
                    "frame": p["frame"],
                    "mjd": p["mjd"],
                    "x": p["x"],
                    "y": p["y"],
                    "flux": 1000.0,
                    "snr": p["peak_snr"],
                    **{k: (p[k] if streak else math.nan) for k in ("x0", "y0", "x1", "y1")},
                }
            )
        candidates.append(
            {
                "id": cid,
                "kind": kind,
                "n_frames": len(rows),
                "mjd_start": rows[0]["mjd"],
                "mjd_end": rows[-1]["mjd"],
                "x_start": rows[0]["x"],
                "y_start": rows[0]["y"],
                "x_end": rows[-1]["x"],
                "y_end": rows[-1]["y"],
                "score": 1.0,
            }
        )
    return Table(rows=candidates), Table(rows=detections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--movers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    objects = [
        synth.ObjectSpec("mover", snr=(8.0, 25.0), rate_px_per_frame=(0.6, 5.0))
        for _ in range(args.movers)
    ]
    objects += [
        synth.ObjectSpec("slow_mover"),
        synth.ObjectSpec("flash", snr=30.0),
        synth.ObjectSpec("streak"),
        synth.ObjectSpec("streak_track"),
    ]
    with tempfile.TemporaryDirectory(prefix="render_speed_") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        truth = synth.make_session(
            base / "nights",
            SESSION,
            seed=args.seed,
            n_frames=args.frames,
            shape=(args.height, args.width),
            objects=objects,
        )
        folder = base / "nights" / SESSION
        table, _ = check.check_session(sorted(folder.glob("*.fits")), check.CheckSettings())
        results = base / "results" / SESSION
        (results / "check").mkdir(parents=True)
        table.write(results / "check" / "frames.ecsv", format="ascii.ecsv")
        good = [str(n) for n in table[table["status"] == "ok"]["file"]]
        tuned = tune.tune_session([folder / n for n in good[:5]], table, tune.TuneSettings())
        skymodel.model_sky(
            [folder / n for n in good], table, tuned, skymodel.SkySettings(), results / "sky"
        )
        candidates, detections = contract_tables(truth, good)
        candidates.write(results / "candidates.ecsv", format="ascii.ecsv")
        detections.write(results / "detections.ecsv", format="ascii.ecsv")
        print(
            f"session: {args.frames} frames of {args.width} x {args.height} ({len(good)} good), "
            f"{len(candidates)} candidates; prepared in {time.perf_counter() - started:.1f} s"
        )

        floor_start = time.perf_counter()
        for name in good:
            read_frame(folder / name)
        floor = time.perf_counter() - floor_start

        reads: list[str] = []
        original = render.read_frame

        def counting(path):  # type: ignore[no-untyped-def]
            reads.append(Path(path).name)
            return original(path)

        render.read_frame = counting  # type: ignore[assignment]
        cpu_start = time.process_time()
        try:
            manifest = render.render_session(
                SESSION,
                folder,
                results / "check" / "frames.ecsv",
                results / "candidates.ecsv",
                results / "detections.ecsv",
                results / "sky",
                results / "render",
                render.RenderSettings(),
            )
        finally:
            render.read_frame = original  # type: ignore[assignment]
        cpu = time.process_time() - cpu_start
        naive = sum(
            len(set(c["frames"])) * len(set(c["gifs"].values())) for c in manifest["candidates"]
        )
        print(
            f"render: {manifest['seconds']:.2f} s in all, reading {manifest['read_seconds']:.2f} s "
            f"(floor: every good frame read once, {floor:.2f} s); CPU {cpu:.2f} s, "
            f"{cpu / max(1, len(manifest['candidates'])):.3f} s per candidate (a loaded machine "
            "stretches the wall-clock figures, not this one)"
        )
        print(
            f"frames read: {manifest['frames_read']} ({len(reads)} reader calls, "
            f"{len(set(reads))} distinct); one read per GIF frame would be {naive}"
        )
        sizes = []
        print(f"{'id':6} {'kind':13} {'frames':>6} {'crop px':>10} {'GIF KB':>16} {'s':>6}")
        for c in manifest["candidates"]:
            kb = [c["bytes"][n] / 1024 for n in dict.fromkeys(c["gifs"].values())]
            sizes += kb
            crop = "x".join(str(v) for v in c["crop_px"])
            print(
                f"{c['id']:6} {c['kind']:13} {c['n_gif_frames']:>6} {crop:>10} "
                f"{' + '.join(f'{k:.0f}' for k in kb):>16} {c['seconds']:>6.3f}"
            )
        per = [c["seconds"] for c in manifest["candidates"]]
        print(
            f"seconds per candidate: median {np.median(per):.3f}, max {max(per):.3f}; "
            f"GIF KB: median {np.median(sizes):.0f}, max {max(sizes):.0f}"
        )

        big = render.render_session(
            SESSION,
            folder,
            results / "check" / "frames.ecsv",
            results / "candidates.ecsv",
            results / "detections.ecsv",
            results / "sky",
            base / "big",
            render.RenderSettings(object_crop_px=200, min_gif_px=200, max_gif_frames=50),
        )
        entry = next(c for c in big["candidates"] if c["kind"] == "track")
        name = entry["gifs"]["object"]
        print(
            f"200 px GIF: {entry['gif_px'][name]} px x {entry['n_gif_frames']} frames = "
            f"{entry['bytes'][name] / 1e6:.2f} MB (target: well under 1 MB)"
        )
        print(json.dumps({"frames_read": manifest["frames_read"], "naive_reads": naive}))


if __name__ == "__main__":
    main()
