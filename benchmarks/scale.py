"""Planning at scale: 100 sessions x 200 frames (20,000 frames), dry run, no-op rerun, one change.

What it measures, each with the real ``snakemake`` command over the whole tree:

1. **dry run** (``snakemake -n``) over the tree with no results yet: wall time and the
   planner's peak memory (max RSS). Target: <= 15 s on a 2-core machine.
2. **no-op rerun** (``snakemake --cores 2``) once every output exists: wall time; it must
   say "Nothing to be done". Target: <= 15 s.
3. **one override changed**: ``config/sessions/<one session>.yaml`` gets a new ``link:``
   value; the run's wall time and which jobs ran (only that session's link and what
   follows it, plus the index over all sessions).

The tree holds 16-bit 64x48 frames with stars, a WCS and times (``spacepixels synth``): one
session of 200 frames is generated, the other 99 are hard links to the same files in their
own folders, under the same file names (the planner only sees names; the pixels do not matter
for planning).

How the "everything done" state is reached, honestly but within minutes: running ~1,900
jobs of the real workflow here takes hours, so the workflow first runs for real on one
session (every rule of it, through ``snakemake``), then that session's results *and*
Snakemake's own records of them (``.snakemake/metadata``: inputs, params, code, software
hashes) are copied to the other 99 sessions with the session id replaced, exactly as the same
rules would have written them for those identical frames. Then the real workflow runs once
over the whole tree and must redo only what the copy cannot stand for (the index page over
all sessions). The no-op rerun that is timed after that is the workflow's own, with every
rerun trigger (mtime, params, input, software-env, code) checked against real records.
``--real`` skips the copy and runs every job (hours).

Usage::

    python benchmarks/scale.py                    # 100 x 200, in a temporary folder
    python benchmarks/scale.py --sessions 20 --frames 50 --keep /tmp/scale
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spacepixels import synth

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TARGET_DRY_RUN_S = 15.0
TARGET_NOOP_S = 15.0
SHAPE = (48, 64)
"""Frame size (rows, columns): tiny, so that the tree costs seconds to write."""
LAST_CPU_S = [0.0]
"""CPU seconds of the last snakemake run (planner and the jobs it waited for)."""
TEXT_SUFFIXES = {".ecsv", ".json", ".yaml", ".html", ".log", ".tsv", ".txt"}
"""Result files whose text may name the session, rewritten when a session is copied."""


def session_ids(n_sessions: int) -> list[str]:
    """Session ids spread over nights of 10 targets each: ``2026-01-01/T00`` ..."""
    return [f"2026-01-{1 + k // 10:02d}/T{k % 10:02d}" for k in range(n_sessions)]


def make_tree(nights: Path, n_sessions: int, n_frames: int) -> list[str]:
    """Write one synthetic session and hard-link its frames into the other sessions."""
    ids = session_ids(n_sessions)
    synth.make_session(nights, ids[0], seed=1, n_frames=n_frames, shape=SHAPE)
    seed_frames = sorted((nights / ids[0]).iterdir())
    for session_id in ids[1:]:
        folder = nights / session_id
        folder.mkdir(parents=True)
        for frame in seed_frames:
            os.link(frame, folder / frame.name)
    return ids


def _target(session_id: str) -> str:
    return session_id.split("/")[-1]


def make_workdir(work: Path) -> Path:
    """A working folder that links the workflow and has its own copy of ``config/``."""
    work.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "scripts", "envs", "src", "profiles"):
        (work / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "config", work / "config")
    # The synthetic frames carry their WCS: no solver run (solving is benchmarked apart).
    config = work / "config" / "config.yaml"
    config.write_text(config.read_text().replace("  method: auto", "  method: header"))
    return work


def snakemake(
    work: Path, nights: Path, results: Path, *args: str, check: bool = True
) -> tuple[float, float, str]:
    """Run snakemake; return wall seconds, peak memory (MB) of the planner, and its output.

    The planner's CPU seconds (user + system) are kept in ``LAST_CPU_S``: on a shared
    machine they say what the wall time would be with the cores to itself.
    """
    command = [
        SNAKEMAKE,
        "--cores",
        "2",
        "--config",
        f"input_root={nights}",
        f"results_root={results}",
        *args,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with process.stdout:  # type: ignore[union-attr]  # stdout is a pipe
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    LAST_CPU_S[0] = usage.ru_utime + usage.ru_stime
    if check and process.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{output[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, output


def _decode_record_name(path: Path, metadata: Path) -> str:
    parts = path.relative_to(metadata).parts
    return base64.urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode()


def _record_path(metadata: Path, key: str) -> Path:
    """Where Snakemake keeps the record of output ``key`` (as snakemake.persistence.file)."""
    max_len = os.pathconf(metadata, "PC_NAME_MAX") or 255
    encoded = base64.urlsafe_b64encode(key.encode()).decode()
    parts = [encoded[i : i + max_len - 1] for i in range(0, len(encoded), max_len - 1)]
    return metadata.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def clone_session(work: Path, nights: Path, results: Path, source: str, target: str) -> int:
    """Copy one finished session's results and Snakemake records to another session id.

    Returns the number of records copied.
    """
    swaps = [
        (str(nights / source), str(nights / target)),
        (str(results / source), str(results / target)),
        (source, target),
    ]
    shutil.copytree(results / source, results / target, symlinks=True)
    for path in (results / target).rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            text = path.read_text(errors="surrogateescape")
            for old, new in swaps:
                text = text.replace(old, new)
            kept = path.stat()
            path.write_text(text, errors="surrogateescape")
            os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    metadata = work / ".snakemake" / "metadata"
    copied = 0
    prefix = str(results / source) + "/"
    for path in [p for p in metadata.rglob("*") if p.is_file()]:
        key = _decode_record_name(path, metadata)
        if not key.startswith(prefix):
            continue
        text = path.read_text()
        new_key = key
        for old, new in swaps:
            text = text.replace(old, new)
            new_key = new_key.replace(old, new)
        record = json.loads(text)
        destination = _record_path(metadata, new_key)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(json.dumps(record))
        copied += 1
    return copied


def jobs_run(output: str) -> list[str]:
    """``rule (session)`` for every job a snakemake run started, from its log."""
    found = []
    for block in re.split(r"\n(?=\[|\s*localrule |\s*rule )", output):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, flags=re.M)
        if rule and rule[1] != "all":
            session = re.search(r"wildcards: .*?session=([^,\n]+)", block)
            found.append(f"{rule[1]} ({session[1] if session else '-'})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--real", action="store_true", help="run every job (hours)")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="spacepixels-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    nights, results, work = base / "nights", base / "results", base / "work"
    try:
        started = time.perf_counter()
        ids = make_tree(nights, args.sessions, args.frames)
        made = time.perf_counter() - started
        print(f"tree: {len(ids)} sessions x {args.frames} frames, written in {made:.1f} s")
        make_workdir(work)

        dry, peak, output = snakemake(work, nights, results, "--dry-run", "--quiet", "rules")
        n_jobs = re.search(r"^total\s+(\d+)", output, flags=re.M)
        jobs = n_jobs[1] if n_jobs else "?"
        print(
            f"dry run: {dry:.1f} s ({LAST_CPU_S[0]:.1f} s CPU), peak {peak:.0f} MB, "
            f"{jobs} jobs planned "
            f"(target <= {TARGET_DRY_RUN_S:.0f} s): "
            + ("PASS" if dry <= TARGET_DRY_RUN_S else "FAIL")
        )

        if args.real:
            full, _, _ = snakemake(work, nights, results, "--quiet")
            print(f"full run, every job: {full:.0f} s")
        else:
            # The real workflow over a tree of the first session alone, then the copy.
            alone = base / "first_session_alone"
            (alone / ids[0]).parent.mkdir(parents=True)
            (alone / ids[0]).symlink_to(nights / ids[0])
            one, _, _ = snakemake(work, alone, results, "--quiet")
            _rename_inputs(work, results, alone, nights)
            print(f"real run of one session ({ids[0]}): {one:.0f} s")
            records = sum(clone_session(work, nights, results, ids[0], other) for other in ids[1:])
            print(f"copied its results and {records} Snakemake records to {len(ids) - 1} sessions")
            rest, _, output = snakemake(work, nights, results)
            print(f"real run over the tree after the copy: {rest:.1f} s, ran {jobs_run(output)}")

        noop, peak, output = snakemake(work, nights, results)
        if "Nothing to be done" not in output:
            raise SystemExit(f"the rerun was not a no-op: {jobs_run(output)[:10]} ...")
        print(
            f"no-op rerun: {noop:.1f} s ({LAST_CPU_S[0]:.1f} s CPU), peak {peak:.0f} MB "
            f"(target <= {TARGET_NOOP_S:.0f} s): " + ("PASS" if noop <= TARGET_NOOP_S else "FAIL")
        )

        changed = ids[len(ids) // 2]
        override = work / "config" / "sessions" / f"{changed}.yaml"
        override.parent.mkdir(parents=True, exist_ok=True)
        override.write_text("link:\n  max_gap_frames: 3\n")
        run, _, output = snakemake(work, nights, results)
        ran = jobs_run(output)
        others = [j for j in ran if changed not in j and not j.startswith("index")]
        print(
            f"one session's link: override changed ({changed}): {run:.1f} s, "
            f"{len(ran)} jobs: {', '.join(ran)}; "
            + ("only that session (and the index)" if not others else f"ALSO RAN {others}")
        )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def _rename_inputs(work: Path, results: Path, old_root: Path, new_root: Path) -> None:
    """Records of the first run name its frames under ``old_root``: point them at the tree."""
    metadata = work / ".snakemake" / "metadata"
    for path in [p for p in metadata.rglob("*") if p.is_file()]:
        text = path.read_text()
        if str(old_root) in text and str(results) in _decode_record_name(path, metadata):
            path.write_text(text.replace(str(old_root), str(new_root)))


if __name__ == "__main__":
    main()
