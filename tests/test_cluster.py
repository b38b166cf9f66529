"""The demo through the Slurm profile on a real one-node Slurm, against a local run.

``tests/local_slurm.py`` starts munged, slurmctld and slurmd on localhost (as root, state in
a temporary folder) and stops them by PID afterwards. The demo nights then run twice: once
locally and once with ``--profile profiles/slurm``. The test checks what a user on a
cluster would check: every job was a Slurm job that completed (Slurm's own controller log,
and the executor's per-job Slurm logs), extraction chunks travelled as group jobs, and each
session's ``candidates.ecsv`` is the same as the local run's.

Flags added to the profile for this one-node cluster, each for a known pitfall of Slurm
22.05 with ``snakemake-executor-plugin-slurm`` 2.8: ``--slurm-status-command squeue`` (no
accounting database, so ``sacct`` fails; the cluster keeps finished jobs for ``MinJobAge``
300 s), ``--slurm-no-account``, ``--cores 2`` and ``--resources mem_mb`` (a group job asks
for the sum of its members' CPUs and memory, which must fit the node), and
``timeout -k`` around snakemake (while it waits on jobs it ignores SIGTERM).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from workdir import make_workdir

from spacepixels import demo, sessions

sys.path.insert(0, str(Path(__file__).parent))
import local_slurm  # noqa: E402

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CORES = "2"
FRAMES_PER_JOB = 4
"""Small extraction chunks, so that the demo's 16-frame sessions have 4 chunks to group."""
TIMEOUT_S = 900


def _workdir(path: Path) -> Path:
    make_workdir(path)
    config = path / "config" / "config.yaml"
    text = config.read_text()
    assert "  frames_per_job: 25\n" in text
    config.write_text(
        text.replace("  frames_per_job: 25\n", f"  frames_per_job: {FRAMES_PER_JOB}\n")
    )
    return path


def _snakemake(
    work: Path, nights: Path, results: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    command = [
        "timeout",
        "-k",
        "20",
        str(TIMEOUT_S),
        SNAKEMAKE,
        "--cores",
        CORES,
        *args,
        "--config",
        f"input_root={nights}",
        f"results_root={results}",
    ]
    return subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)


def _failed_job_logs(log: str, lines: int = 15) -> str:
    """The end of each log named by a failed job, for the failure message."""
    parts = []
    for block in log.split("Error in rule ")[1:]:
        named = re.search(r"log: (.*?) \(check log", block)
        for path in named[1].split(", ") if named else []:
            if Path(path).exists():
                tail = Path(path).read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(tail))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def cluster():
    reason = local_slurm.why_unavailable()
    if reason:
        pytest.skip(f"no local Slurm cluster: {reason}")
    # munged needs every folder above its socket open to all (pytest's tmp is 0700).
    state = Path(tempfile.mkdtemp(prefix="spacepixels-slurm-"))
    try:
        # Twice the machine's 2 cores: short jobs of the three sessions overlap, so the
        # executor's status polls (which slow down while nothing finishes) find more done.
        with local_slurm.LocalSlurm(state, cpus=2 * int(CORES)) as running:
            yield running
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_demo_runs_under_slurm_like_it_runs_locally(tmp_path: Path, cluster) -> None:
    nights = demo.demo_input_root(ROOT)
    demo.ensure_demo_tree(nights, ROOT)
    session_ids = sorted(sessions.discover_sessions(nights, 5).sessions)
    assert len(session_ids) >= 3

    local = _snakemake(_workdir(tmp_path / "local"), nights, tmp_path / "local_results")
    assert local.returncode == 0, local.stderr[-3000:]

    work = _workdir(tmp_path / "cluster")
    results = tmp_path / "cluster_results"
    started = time.monotonic()
    run = _snakemake(
        work,
        nights,
        results,
        "--profile",
        "profiles/slurm",
        "--resources",
        f"mem_mb={cluster.memory_mb}",
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks",
        "2",
        env=cluster.env,
    )
    elapsed = time.monotonic() - started
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"{log[-4000:]}\n{_failed_job_logs(log)}\n{cluster.log_tail()}"
    print(f"cluster run: {elapsed:.0f} s")

    # Every job went to Slurm: one "submitted with SLURM jobid" line per job or group job,
    # each with its own Slurm log, and Slurm's controller saw each of them end with 0.
    submitted = dict(re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", log))
    job_stats = re.search(r"^total\s+(\d+)", log, flags=re.M)
    assert job_stats and submitted, log[-3000:]
    assert set(re.findall(r"localrule (\w+):", log)) <= {"all"}, "a job ran outside Slurm"
    slurm_logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in slurm_logs} == set(submitted.values())
    controller = (cluster.state / "slurmctld.log").read_text()
    for slurm_id in submitted.values():
        assert re.search(rf"JobId={slurm_id} .*WEXITSTATUS 0", controller), (
            f"Slurm job {slurm_id} did not end with status 0"
        )
    # The extraction chunks ran inside group jobs (up to 8 chunks each), not one job each:
    # every chunk of every session is named in exactly one group job's Slurm log.
    group_logs = [p for p in slurm_logs if "group_extract" in str(p)]
    chunk_output = re.compile(r"output: (\S+/extract/chunk_\d+\.ecsv)")
    grouped = [set(chunk_output.findall(p.read_text())) for p in group_logs]
    all_chunks = {str(p) for p in results.glob("*/*/extract/chunk_*.ecsv")}
    found = sessions.discover_sessions(nights, 5).sessions
    assert len(all_chunks) == sum(-(-len(found[s].frames) // FRAMES_PER_JOB) for s in found)
    assert sorted(c for g in grouped for c in g) == sorted(all_chunks)
    assert len(group_logs) < len(all_chunks)

    for session_id in session_ids:
        mine = Table.read(results / session_id / "candidates.ecsv", format="ascii.ecsv")
        theirs = Table.read(
            tmp_path / "local_results" / session_id / "candidates.ecsv", format="ascii.ecsv"
        )
        assert len(mine) > 0, session_id
        assert mine.colnames == theirs.colnames, session_id
        assert len(mine) == len(theirs), session_id
        for name in mine.colnames:
            same = np.array_equal(mine[name], theirs[name], equal_nan=mine[name].dtype.kind == "f")
            assert same, f"{session_id}: column {name} differs from the local run's"


def test_a_cluster_that_cannot_start_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in (local_slurm.why_unavailable() or "")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(local_slurm, "_which", lambda _program: None)
    assert "slurm-wlm" in (local_slurm.why_unavailable() or "")
