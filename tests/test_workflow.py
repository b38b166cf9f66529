"""The workflow end to end: what runs, what reruns, and what a bad night does to the rest.

Each test builds a small seeded tree of nights, links the workflow into a temporary working
folder (with its own copy of ``config/``, so session overrides can be written), and runs the
real ``snakemake`` command on it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits
from astropy.table import Table
from workdir import make_workdir

from spacepixels import synth

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SHAPE = (240, 320)
N_FRAMES = 6


def _workdir(tmp_path: Path) -> Path:
    # These nights carry a synthetic WCS over random stars: trust it rather than spend the
    # solver's timeout on a sky that does not exist (solving is tested on real stars).
    return make_workdir(tmp_path / "work", solve_method="header")


def _snakemake(
    work: Path, nights: Path, *args: str, results: Path | None = None
) -> subprocess.CompletedProcess:
    command = [
        SNAKEMAKE,
        "--cores",
        "2",
        "--config",
        f"input_root={nights}",
        f"results_root={results or work / 'results'}",
        *args,
    ]
    return subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600)


def _output_times(results: Path) -> dict[str, int]:
    return {
        str(p.relative_to(results)): p.stat().st_mtime_ns
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and "benchmarks" not in p.parts
    }


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Three sessions over two nights; each has a cloudy frame."""
    root = tmp_path_factory.mktemp("tree") / "nights"
    truth = {}
    for seed, session_id in enumerate(["2026-03-14/M31", "2026-03-14/M42", "2026-03-15/NGC 7331"]):
        truth[session_id] = synth.make_session(
            root, session_id, seed=100 + seed, n_frames=N_FRAMES, shape=SHAPE
        )
    return root, truth


def test_runs_reruns_nothing_and_only_what_changed(tmp_path: Path, nights) -> None:
    root, truth = nights
    tree = tmp_path / "nights"
    shutil.copytree(root, tree, symlinks=True)
    work = _workdir(tmp_path)
    results = work / "results"

    first = _snakemake(work, tree)
    assert first.returncode == 0, first.stderr[-3000:]

    for session_id, session_truth in truth.items():
        frames = Table.read(results / session_id / "check" / "frames.ecsv")
        assert len(frames) == N_FRAMES
        rejected = {str(r["file"]) for r in frames if r["status"] == "rejected"}
        assert rejected == set(session_truth["cloudy_frames"]), session_id
        previews = sorted((results / session_id / "convert" / "previews").glob("*.jpg"))
        assert len(previews) == N_FRAMES - len(rejected)
        assert not list((results / session_id / "convert" / "mono").glob("*.fits"))

    # A second run with nothing changed does nothing.
    before = _output_times(results)
    second = _snakemake(work, tree)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Nothing to be done" in second.stdout + second.stderr
    assert _output_times(results) == before

    # One session's convert override reruns convert for that session alone.
    override = work / "config" / "sessions" / "2026-03-14" / "M42.yaml"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("convert:\n  keep: true\n")
    third = _snakemake(work, tree)
    assert third.returncode == 0, third.stderr[-3000:]
    after = _output_times(results)
    changed = {path for path in after if after[path] != before.get(path)}
    assert changed, "the override changed nothing"
    # ...and the pages that show its previews: its report and the index.
    pages = {"2026-03-14/M42/report.html", "2026-03-14/M42/report.json", "index.html"}
    assert all(p.startswith("2026-03-14/M42/convert/") or p in pages for p in changed), changed
    mono = list((results / "2026-03-14/M42/convert/mono").glob("*.fits"))
    assert len(mono) == N_FRAMES - len(truth["2026-03-14/M42"]["cloudy_frames"])

    # A new session folder runs only the new session.
    synth.make_session(tree, "2026-03-16/M1", seed=7, n_frames=N_FRAMES, shape=SHAPE)
    fourth = _snakemake(work, tree)
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    latest = _output_times(results)
    changed = {path for path in latest if latest[path] != after.get(path)}
    assert changed and all(p.startswith("2026-03-16/M1/") or p == "index.html" for p in changed)
    assert "2026-03-16/M1/report.html" in (results / "index.html").read_text()

    # A frame that changed (re-exported with another header) reruns its session from
    # the check on: the later stages find the frames through check/frames.ecsv.
    frame = sorted((tree / "2026-03-14" / "M42").glob("*.fits"))[3]
    with fits.open(frame, mode="update") as hdul:
        hdul[0].header["OBSERVER"] = "re-exported"
    fifth = _snakemake(work, tree)
    assert fifth.returncode == 0, fifth.stderr[-3000:]
    final = _output_times(results)
    changed = {path for path in final if final[path] != latest.get(path)}
    assert all(p.startswith("2026-03-14/M42/") or p == "index.html" for p in changed), changed
    for stage_output in ("check/frames.ecsv", "sky/stack.fits", "candidates.ecsv", "report.html"):
        assert f"2026-03-14/M42/{stage_output}" in changed, stage_output


def test_bad_night_fails_alone_with_a_clear_message(tmp_path: Path, nights) -> None:
    root, truth = nights
    tree = tmp_path / "nights"
    shutil.copytree(root / "2026-03-14" / "M31", tree / "n1" / "good")
    good = tree / "n1" / "good"
    names = sorted(p.name for p in good.iterdir())
    (good / "notes.txt").write_text("seeing 2.1 arcsec")
    (good / "stack.tif").write_bytes(b"II*\x00")
    data = (good / names[1]).read_bytes()
    (good / names[1]).write_bytes(data[: len(data) // 2])  # truncated
    (tree / "n1" / "empty").mkdir()
    broken = tree / "n2" / "broken"
    broken.mkdir(parents=True)
    for i in range(5):
        (broken / f"light_{i}.fits").write_text("not a FITS file")
    synth.make_session(
        tree, "n2/no times", seed=3, n_frames=N_FRAMES, shape=SHAPE, variant="nodate"
    )
    work = _workdir(tmp_path)
    results = work / "results"

    run = _snakemake(work, tree)
    output = run.stdout + run.stderr

    assert run.returncode != 0
    assert "n1/empty: empty of frames" in output
    # The broken session fails with one line naming what is wrong.
    log = (results / "n2/broken/logs/convert.log").read_text()
    assert "only 0 of 5 frames passed the check" in log
    assert "light_0.fits: unreadable: not a FITS file" in log
    assert "Traceback" not in log
    assert not (results / "n2/broken/convert/stretch.json").exists()
    # The other sessions complete.
    frames = Table.read(results / "n1/good/check/frames.ecsv")
    reasons = {str(r["file"]): str(r["reason"]) for r in frames}
    assert reasons[names[1]].startswith("truncated") or "truncated" in reasons[names[1]]
    summary = json.loads((results / "n1/good/check/summary.json").read_text())
    assert summary["skipped_files"] == ["notes.txt", "stack.tif"]
    assert (results / "n1/good/convert/stretch.json").exists()
    summary = json.loads((results / "n2/no times/check/summary.json").read_text())
    assert any("no usable time" in w for w in summary["warnings"])
    assert (results / "n2/no times/convert/stretch.json").exists()
    # The index is written all the same: the good sessions linked, the broken one failed.
    index = (results / "index.html").read_text()
    assert 'href="n1/good/report.html"' in index
    assert "only 0 of 5 frames passed the check" in index


def test_bad_configuration_stops_before_any_job(tmp_path: Path, nights) -> None:
    root, _ = nights
    work = _workdir(tmp_path)
    bad = work / "config" / "sessions" / "2026-03-14" / "M31.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("convert:\n  keep: sometimes\n")

    run = _snakemake(work, root, "--dry-run")

    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "M31.yaml: convert.keep: 'sometimes' is not of type 'boolean'" in output
    assert "Traceback" not in output

    inside = _snakemake(work, root, "--dry-run", results=root / "out")
    assert inside.returncode != 0
    assert "lies inside input_root" in inside.stdout + inside.stderr
