"""Detection benchmark: what the pipeline finds in seeded synthetic sessions, against truth.

Builds ``--sessions`` sessions (default 10) of ``--frames`` frames at 1024x768 with
:mod:`spacepixels.synth`, each with its own seed and a mix of injected objects (point
movers at per-frame peak S/N 3-5 and 5-20 and 0.5-8 px per frame, slow movers at
0.15-0.5 px per frame and S/N 8-20, satellite streaks, streak tracks and flashes; the
seeing, exposure, sky and camera are drawn per session), runs the detection pipeline, and
matches the candidates against the truth with :mod:`spacepixels.evaluate`.

By default the Snakemake workflow runs from the repository root::

    snakemake --cores 2 --config input_root=OUT/nights results_root=OUT/results

and each session's ``candidates.ecsv`` and ``detections.ecsv`` are read. ``--in-process``
calls the package instead (check, tune, sky model, extract, link), which is quicker to
iterate on and needs no Snakemake.

It prints completeness by per-frame peak S/N and by rate, streak and flash recovery,
false candidates per session by kind, the median position error, and PASS or FAIL for
each target of issue 3:

- point movers with per-frame peak S/N >= 5 at 0.5-8 px/frame: >= 95 % found;
- point movers at S/N 3-5: >= 60 % found;
- slow movers at 0.15-0.5 px/frame and S/N >= 8: >= 80 % found;
- streaks (and streak tracks) and flashes: >= 90 % found each;
- false candidates: <= 1 per session on average;
- median position error (measured centroids of the matched detections): <= 0.5 px.

Usage::

    python benchmarks/detection_quality.py [--sessions 10] [--frames 20] [--out DIR]
                                           [--in-process | --link-only] [--cores 2]
                                           [--seed 3100] [--link-setting KEY=VALUE ...]
                                           [--extract-setting KEY=VALUE ...]

``--link-only`` runs the workflow up to link (no plate solving, previews or measure) and
reads ``results/<session>/link/``; ``--link-setting`` and ``--extract-setting`` set a
``link:`` or ``extract:`` key as the configuration would (``--configfile`` overlay, or the
configured section in process), e.g. ``--extract-setting subtract_reference=false`` to
search the frames as they are.

The exit status is 0 when every target passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from spacepixels import synth  # noqa: E402
from spacepixels.evaluate import (  # noqa: E402
    SessionEvaluation,
    evaluate_results,
    evaluate_session,
    summarize,
)
from spacepixels.synth import ObjectSpec  # noqa: E402

SHAPE = (768, 1024)
FIRST_NIGHT = date(2026, 4, 1)

TARGETS: list[tuple[str, float, str]] = [
    # (population in summarize()["targets"], least fraction found, what it is)
    ("movers_snr5_rate0.5-8", 0.95, "point movers S/N >= 5, 0.5-8 px/frame"),
    ("movers_snr3-5", 0.60, "point movers S/N 3-5"),
    ("slow_movers_snr8", 0.80, "slow movers 0.15-0.5 px/frame, S/N >= 8"),
    ("streaks", 0.90, "streaks and streak tracks"),
    ("flashes", 0.90, "flashes"),
]


def session_objects(i: int) -> list[ObjectSpec]:
    """The injected objects of session ``i``: a fixed core and one of three extra mixes."""
    objects = [
        ObjectSpec("mover", snr=(5.0, 8.0), rate_px_per_frame=(0.5, 2.0)),
        ObjectSpec("mover", snr=(5.0, 10.0), rate_px_per_frame=(2.0, 8.0)),
        ObjectSpec("mover", snr=(10.0, 20.0), rate_px_per_frame=(0.5, 8.0)),
        ObjectSpec("mover", snr=(3.0, 5.0), rate_px_per_frame=(0.5, 8.0)),
        ObjectSpec("mover", snr=(3.0, 5.0), rate_px_per_frame=(0.5, 8.0)),
        ObjectSpec("slow_mover", snr=(8.0, 20.0), rate_px_per_frame=(0.15, 0.5)),
        ObjectSpec("streak"),
        ObjectSpec("streak_track"),
        ObjectSpec("flash"),
    ]
    extra = {
        0: [
            ObjectSpec("mover", snr=(3.0, 5.0), rate_px_per_frame=(0.5, 3.0)),
            ObjectSpec("slow_mover", snr=(8.0, 15.0), rate_px_per_frame=(0.15, 0.3)),
        ],
        1: [
            ObjectSpec("mover", snr=(5.0, 8.0), rate_px_per_frame=(5.0, 8.0)),
            ObjectSpec("flash", snr=(10.0, 15.0)),
        ],
        2: [
            ObjectSpec("streak", snr=(8.0, 12.0)),
            ObjectSpec("mover", snr=(3.0, 5.0), rate_px_per_frame=(3.0, 8.0)),
        ],
    }
    return objects + extra[i % 3]


def build_tree(out: Path, n_sessions: int, n_frames: int, seed: int) -> Path:
    """Write the sessions under ``out/nights`` and their truth to ``out/truth.json``."""
    names = list(synth.TARGETS)
    sessions: dict[str, Any] = {}
    for i in range(n_sessions):
        night = FIRST_NIGHT + timedelta(days=i // 2)
        sid = f"{night.isoformat()}/{names[i % len(names)]}"
        truth = synth.make_session(
            out / "nights",
            sid,
            seed=seed + i,
            n_frames=n_frames,
            shape=SHAPE,
            objects=session_objects(i),
            catalog=True,  # real Tycho-2 stars, so the workflow's plate solving is real too
            wcs=False,
        )
        sessions[sid] = truth
    path = out / "truth.json"
    path.write_text(json.dumps({"schema": synth.TRUTH_SCHEMA, "sessions": sessions}))
    return path


def run_workflow(
    out: Path, cores: int, sections: dict[str, dict[str, Any]], targets: list[str]
) -> float:
    """Run the Snakemake workflow from the repository root; return its wall time."""
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), *targets]
    sections = {name: values for name, values in sections.items() if values}
    if sections:
        overlay = out / "settings.yaml"
        overlay.write_text(json.dumps(sections))  # JSON is YAML
        command += ["--configfile", str(REPO / "config" / "config.yaml"), str(overlay)]
    command += [
        "--config",
        f"input_root={out / 'nights'}",
        f"results_root={out / 'results'}",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(f"the workflow failed (exit {done.returncode})")
    return time.perf_counter() - start


def run_in_process(
    out: Path, truth_path: Path, sections: dict[str, dict[str, Any]]
) -> tuple[list[SessionEvaluation], float]:
    """Run check, tune, sky model, extract and link through the package, per session."""

    from spacepixels import check, extract, link, skymodel, tune

    truth = json.loads(truth_path.read_text())
    evaluations = []
    start = time.perf_counter()
    for sid in sorted(truth["sessions"]):
        folder = out / "nights" / sid
        work = out / "results" / sid
        paths = sorted(folder.glob("*.fits"))
        table, _ = check.check_session(paths, check.CheckSettings())
        good = [folder / str(name) for name in table[table["status"] == "ok"]["file"]]
        tuned = tune.tune_session(good, table, tune.TuneSettings())
        skymodel.model_sky(good, table, tuned, skymodel.SkySettings(), work / "sky")
        # The intermediate files the workflow would keep, for a look afterwards.
        (work / "check").mkdir(parents=True, exist_ok=True)
        table.write(work / "check" / "frames.ecsv", format="ascii.ecsv", overwrite=True)
        tune.write_tuned(tuned, work / "tune" / "settings.yaml")
        values, _ = tune.resolve(sections["extract"], tuned["extract"])
        detections = extract.extract_frames(
            good,
            table,
            values,
            work / "extract" / "chunk_000.ecsv",
            reference_path=work / "sky" / "reference.fits",
        )
        link_values, _ = tune.resolve(sections["link"], tuned["link"])
        settings = link.LinkSettings.from_mapping(link_values)
        candidates, rows, stats = link.link_session(detections, table, work / "sky", settings)
        link.write_link(
            candidates,
            rows,
            stats,
            work / "candidates.ecsv",
            work / "detections.ecsv",
            work / "link.json",
        )
        evaluations.append(evaluate_session(truth["sessions"][sid], candidates, rows))
    return evaluations, time.perf_counter() - start


def _pct(entry: dict[str, Any]) -> str:
    if not entry["total"]:
        return "   -   (0/0)"
    return f"{100 * entry['fraction']:5.1f} % ({entry['found']}/{entry['total']})"


def report(
    summary: dict[str, Any],
    evaluations: list[SessionEvaluation],
    seconds: float,
    truth: dict[str, Any],
    mode: str,
) -> bool:
    """Print the figures and the targets; return whether every target passed."""
    n = summary["sessions"]
    print(f"Detection benchmark: {n} sessions ({mode}), {seconds:.0f} s")
    for sid, s in sorted(truth["sessions"].items()):
        fwhm = float(np.median([f["fwhm"] for f in s["frames"]]))
        e = next(e for e in evaluations if e.session == sid)
        found = sum(o.found for o in e.objects)
        print(
            f"  {sid:24s} FWHM {fwhm:4.2f} px, exposure {s['exptime']:.0f} s: "
            f"{found}/{len(e.objects)} found, {len(e.false_candidates)} false, "
            f"{e.n_candidates} candidates"
        )
    print("\nCompleteness of point movers (mover and slow_mover) by per-frame peak S/N:")
    for label, entry in summary["completeness_by_snr"].items():
        print(f"  S/N {label:>6s}: {_pct(entry)}")
    print("Completeness of point movers by rate (px/frame):")
    for label, entry in summary["completeness_by_rate"].items():
        print(f"  {label:>9s}: {_pct(entry)}")
    print("Recovery by kind:")
    for kind, entry in summary["by_kind"].items():
        print(f"  {kind:12s}: {_pct(entry)}")
    print("How the found objects were classified:")
    for kind, got in summary["kind_agreement"].items():
        print(f"  {kind:12s}: " + ", ".join(f"{k} {v}" for k, v in sorted(got.items())))
    print(
        f"False candidates: {summary['false_total']} in {n} sessions, "
        f"{summary['false_per_session']:.2f} per session"
    )
    for kind, rate in summary["false_per_session_by_kind"].items():
        print(f"  {kind:12s}: {rate:.2f} per session")
    print(f"Duplicate candidates (a second candidate on a found object): {summary['duplicates']}")
    print(
        f"Median position error: {summary['median_position_error_px']:.3f} px measured, "
        f"{summary['median_fit_error_px']:.3f} px on the fitted track"
    )
    if summary["missed"]:
        print("Missed objects:")
        for o in summary["missed"]:
            print(
                f"  {o['session']} {o['object_id']:16s} {o['kind']:12s} peak S/N "
                f"{o['peak_snr']:5.1f}, rate {o['rate_px_per_frame']:8.2f} px/frame"
            )
    print("\nTargets:")
    ok_all = True
    for population, threshold, what in TARGETS:
        entry = summary["targets"][population]
        value = entry["fraction"]
        ok = entry["total"] > 0 and value >= threshold
        ok_all &= ok
        print(f"  {'PASS' if ok else 'FAIL'}  {what}: {_pct(entry)} (target >= {threshold:.0%})")
    false_ok = summary["false_per_session"] <= 1.0
    error_ok = summary["median_position_error_px"] <= 0.5
    ok_all &= false_ok and error_ok
    print(
        f"  {'PASS' if false_ok else 'FAIL'}  false candidates: "
        f"{summary['false_per_session']:.2f} per session (target <= 1)"
    )
    print(
        f"  {'PASS' if error_ok else 'FAIL'}  median position error: "
        f"{summary['median_position_error_px']:.3f} px (target <= 0.5)"
    )
    return ok_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seed", type=int, default=3100)
    parser.add_argument("--out", type=Path, default=None, help="work folder (kept)")
    parser.add_argument("--in-process", action="store_true", help="call the package directly")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--link-only",
        action="store_true",
        help="run the workflow up to link (no plate solving, previews or measure) and read "
        "results/<session>/link/",
    )
    parser.add_argument(
        "--link-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a link: key as the configuration would (repeatable), e.g. slow_min_motion_px=1.5",
    )
    parser.add_argument(
        "--extract-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an extract: key as the configuration would (repeatable), e.g. "
        "subtract_reference=false",
    )
    args = parser.parse_args(argv)
    sections: dict[str, dict[str, Any]] = {"extract": {}, "link": {}}
    for name, items in (("link", args.link_setting), ("extract", args.extract_setting)):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--{name}-setting wants KEY=VALUE, not {item!r}")
            sections[name][key.strip()] = json.loads(value)
    if args.sessions < 1 or args.frames < 3:
        parser.error("need at least 1 session of 3 frames")
    temporary = None
    if args.out is None:
        temporary = tempfile.TemporaryDirectory(prefix="spacepixels-detection-")
        out = Path(temporary.name)
    else:
        out = args.out.resolve()
        if (out / "nights").exists() or (out / "results").exists():
            parser.error(f"{out} already holds a benchmark run; give an empty folder")
        out.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        truth_path = build_tree(out, args.sessions, args.frames, args.seed)
        print(f"Built {args.sessions} sessions in {time.perf_counter() - start:.0f} s in {out}")
        truth = json.loads(truth_path.read_text())
        if args.in_process:
            evaluations, seconds = run_in_process(out, truth_path, sections)
            mode = "in process"
        else:
            targets = []
            if args.link_only:
                targets = [
                    str(out / "results" / sid / "link" / name)
                    for sid in sorted(truth["sessions"])
                    for name in ("candidates.ecsv", "detections.ecsv")
                ]
            seconds = run_workflow(out, args.cores, sections, targets)
            evaluations = evaluate_results(truth_path, out / "results", link_only=args.link_only)
            mode = f"Snakemake workflow, --cores {args.cores}"
            if args.link_only:
                mode += ", up to link"
        for name, values in sections.items():
            if values:
                mode += f", {name}: " + ", ".join(f"{k}={v}" for k, v in values.items())
        summary = summarize(evaluations)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        ok = report(summary, evaluations, seconds, truth, mode)
    finally:
        if temporary is not None:
            temporary.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
