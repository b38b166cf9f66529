"""Killed mid-run, the workflow picks up where it was and ends with the same answers.

The workflow runs as a subprocess in its own process group over two healthy sessions and
is killed (SIGKILL to the whole group: Snakemake and every job) at points chosen by a
seed: after a random delay, or the moment a given stage's output appears. After each kill
the outputs already there must be whole (every ``.ecsv`` and ``.json`` parses), then the
workflow is unlocked (``snakemake --unlock``: a killed Snakemake leaves its lock, as the
message of the next run says) and run again with the default profile, which reruns
incomplete jobs. The final ``candidates.ecsv`` of each session must equal that of a run
that was never interrupted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import badinput_corpus as corpus
import numpy as np
import pytest
from astropy.table import Table

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SEED = int(os.environ.get("SPACEPIXELS_INTERRUPT_SEED", "20260314"))
"""Chooses the kill points (set the variable to try others)."""

KILLS = 3
"""How many times the workflow is killed before it is let finish."""

SESSIONS = ("2026-03-14/M31", "2026-03-14/M42")

STAGE_FILES = (
    "check/frames.ecsv",
    "tune/settings.yaml",
    "extract/chunk_000.ecsv",
    "link/candidates.ecsv",
)
"""Outputs whose appearance may trigger a kill."""


def _start(work: Path, nights: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        corpus.snakemake_command(nights, results),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, jobs included
    )


def _kill_when(process: subprocess.Popen, trigger: Path | float, limit: float = 120.0) -> bool:
    """SIGKILL the whole group at ``trigger`` (a file appearing, or seconds); False if done."""
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < limit:
        if isinstance(trigger, Path) and trigger.exists():
            break
        if isinstance(trigger, float) and time.monotonic() - started >= trigger:
            break
        time.sleep(0.05)
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return True


def _whole(results: Path) -> list[str]:
    """Outputs that do not parse (half-written)."""
    broken = []
    for path in results.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".ecsv":
                Table.read(path, format="ascii.ecsv")
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the finding
            broken.append(f"{path.relative_to(results)}: {exc}")
    return broken


def _candidates(results: Path) -> dict[str, Table]:
    return {s: Table.read(results / s / "candidates.ecsv") for s in SESSIONS}


def test_killed_runs_end_as_an_uninterrupted_run(tmp_path: Path, robustness_summary) -> None:
    nights = tmp_path / "nights"
    base, _ = corpus.base_frames(tmp_path / "scratch")
    for session in SESSIONS:
        corpus._copy_base(base, nights / session)
    work = corpus.make_workdir(tmp_path)

    reference_dir = tmp_path / "reference"
    started = time.monotonic()
    first = subprocess.run(
        corpus.snakemake_command(nights, reference_dir),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    uninterrupted = time.monotonic() - started
    reference = _candidates(reference_dir)

    rng = random.Random(SEED)
    results = tmp_path / "results"
    points = []
    for _ in range(KILLS):
        if rng.random() < 0.5:
            trigger: Path | float = round(rng.uniform(1.0, max(2.0, 0.35 * uninterrupted)), 2)
        else:
            trigger = results / rng.choice(SESSIONS) / rng.choice(STAGE_FILES)
        process = _start(work, nights, results)
        killed = _kill_when(process, trigger)
        points.append(
            f"{'killed' if killed else 'finished before'} "
            f"{trigger if isinstance(trigger, float) else trigger.relative_to(results)}"
        )
        assert _whole(results) == []
        unlock = subprocess.run(
            corpus.snakemake_command(nights, results, "--unlock"),
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert unlock.returncode == 0, unlock.stderr[-2000:]

    last = subprocess.run(
        corpus.snakemake_command(nights, results),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert last.returncode == 0, last.stderr[-3000:]
    robustness_summary(f"interrupt (seed {SEED}): " + "; ".join(points))
    final = _candidates(results)
    for session in SESSIONS:
        got, want = final[session], reference[session]
        assert got.colnames == want.colnames
        assert len(got) == len(want), session
        for column in want.colnames:  # NaN equals NaN here
            np.testing.assert_array_equal(
                np.asarray(got[column]), np.asarray(want[column]), err_msg=f"{session} {column}"
            )
