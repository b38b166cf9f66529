"""A messy tree of nights: every kind of bad input gets its documented behaviour.

One run of the real workflow (``--keep-going``) over a tree holding a healthy session and
one session per case of the bad-input corpus (``tests/badinput_corpus.py``, where the
behaviour decided for each case is written down). For each case the test reads what a
user would read: the rejected-frame rows of ``check/frames.ecsv`` and their reasons, the
session summary's warnings, the one-line session errors in the rule logs, the folders the
workflow names as "not a session" when it starts, and whether the session's
``candidates.ecsv`` was written and agrees with the healthy session's. A summary line says
how many cases were tried and how each ended.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import badinput_corpus as corpus
import numpy as np
import pytest
from astropy.table import Table

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@dataclass
class CorpusRun:
    cases: dict[str, corpus.Case]
    nights: Path
    results: Path
    output: str
    returncode: int
    seconds: float


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    where = tmp_path_factory.mktemp("badinput")
    nights = where / "nights"
    cases, _ = corpus.build_corpus(nights, where / "scratch")
    work = corpus.make_workdir(where)
    results = where / "results"
    started = time.monotonic()
    done = subprocess.run(
        corpus.snakemake_command(nights, results),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    return CorpusRun(
        cases,
        nights,
        results,
        done.stdout + done.stderr,
        done.returncode,
        time.monotonic() - started,
    )


def _frames(run: CorpusRun, key: str) -> dict[str, dict]:
    table = Table.read(run.results / run.cases[key].session / "check" / "frames.ecsv")
    return {str(row["file"]): dict(zip(table.colnames, row, strict=True)) for row in table}


def _summary(run: CorpusRun, key: str) -> dict:
    path = run.results / run.cases[key].session / "check" / "summary.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _candidates(run: CorpusRun, key: str) -> Table | None:
    path = run.results / run.cases[key].session / "candidates.ecsv"
    return Table.read(path) if path.exists() else None


def _error_lines(run: CorpusRun, key: str) -> list[str]:
    """The ERROR lines of a session's rule logs."""
    logs = run.results / run.cases[key].session / "logs"
    lines = []
    for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        lines += [ln for ln in log.read_text(encoding="utf-8").splitlines() if " ERROR " in ln]
    return lines


def _outcome(run: CorpusRun, key: str) -> str:
    """How a case ended, in a few words, from the outputs alone."""
    case = run.cases[key]
    folder = run.results / case.session
    if not folder.exists():
        return "not a session" if f"not a session: {case.session}:" in run.output else "absent"
    if _candidates(run, key) is None:
        return "session error" if _error_lines(run, key) else "incomplete"
    rows = _frames(run, key)
    kinds = sorted({str(r["reason_kind"]) for r in rows.values() if r["status"] != "ok"})
    warned = bool(_summary(run, key)["warnings"])
    if kinds:
        return "rejected-frame rows (" + ", ".join(kinds) + ")"
    return "kept, with a warning" if warned else "kept"


# --------------------------------------------------------------------------- the healthy one


def test_healthy_session_completes(run: CorpusRun) -> None:
    assert run.returncode != 0, "the all-bad session should have failed its own jobs"
    rows = _frames(run, corpus.HEALTHY)
    assert [r["status"] for r in rows.values()] == ["ok"] * corpus.N_GOOD
    candidates = _candidates(run, corpus.HEALTHY)
    assert candidates is not None and "track" in set(candidates["kind"])
    assert _error_lines(run, corpus.HEALTHY) == []


# --------------------------------------------------------------------------- per case

_COMPLETING = [
    key
    for key, build in corpus.BUILDERS.items()
    if build not in (corpus._too_few, corpus._path_variable_folder, corpus._all_bad)
]


@pytest.mark.parametrize("key", list(corpus.BUILDERS))
def test_each_case_gets_its_documented_behaviour(run: CorpusRun, key: str) -> None:
    case = run.cases[key]
    if case.expect == "not a session":
        why = case.reason[""]
        assert f"spacepixels: not a session: {case.session}: " in run.output
        line = next(ln for ln in run.output.splitlines() if f"not a session: {case.session}:" in ln)
        assert why in line
        assert not (run.results / case.session).exists()
        return
    rows = _frames(run, key)
    for name, kind in case.files.items():
        assert name in rows, f"{name} has no row in {case.session}/check/frames.ecsv"
        row = rows[name]
        if kind == "ok":
            assert row["status"] == "ok", (name, row["reason"])
        else:
            assert row["status"] == "rejected", name
            assert row["reason_kind"] == kind, (name, row["reason"])
            assert row["reason"].startswith(kind if kind != "constant" else "constant frame")
    for name, phrase in case.reason.items():
        assert phrase in rows[name]["reason"], (name, rows[name]["reason"])
    summary = _summary(run, key)
    if case.warning:
        assert any(case.warning in w for w in summary["warnings"]), summary["warnings"]
    assert summary["counts"]["frames"] == len(rows)
    if case.expect == "session error":
        errors = _error_lines(run, key)
        assert errors, f"no error line for {case.session}"
        for line in errors:
            assert f"for session {case.session}: " in line
        named = [ln for ln in errors if "only 0 of 5 frames passed the check" in ln]
        assert named and all(any(f in ln for f in case.files) for ln in named), errors
        logs = run.results / case.session / "logs"
        assert "Traceback" not in (logs / "convert.log").read_text(encoding="utf-8")
        assert _candidates(run, key) is None
        assert not (run.results / case.session / "convert" / "stretch.json").exists()


@pytest.mark.parametrize("key", _COMPLETING)
def test_every_other_session_completes(run: CorpusRun, key: str) -> None:
    case = run.cases[key]
    candidates = _candidates(run, key)
    assert candidates is not None, (case.session, _error_lines(run, key))
    assert _error_lines(run, key) == []
    healthy = _candidates(run, corpus.HEALTHY)
    assert healthy is not None
    if case.compare in ("same", "pixels"):
        columns = ["kind", "n_frames", "x_start", "y_start", "x_end", "y_end"]
        if case.compare == "same":
            columns += ["mjd_start", "mjd_end", "rate_px_per_min", "snr_median"]
        assert len(candidates) == len(healthy), (list(candidates["kind"]), list(healthy["kind"]))
        for column in columns:
            got, want = np.asarray(candidates[column]), np.asarray(healthy[column])
            if got.dtype.kind in "fi":
                np.testing.assert_allclose(got, want, atol=0.01, err_msg=column)
            else:
                assert list(got) == list(want), column
    elif case.compare == "found":  # the clear tracks; a faint one may come and go
        tracks = healthy[(healthy["kind"] == "track") & (healthy["snr_median"] >= 8)]
        assert len(tracks) >= 1
        for track in tracks:
            distance = np.hypot(
                np.asarray(candidates["x_start"]) - track["x_start"],
                np.asarray(candidates["y_start"]) - track["y_start"],
            ) + np.hypot(
                np.asarray(candidates["x_end"]) - track["x_end"],
                np.asarray(candidates["y_end"]) - track["y_end"],
            )
            assert distance.min() < 1.0, f"track {track['id']} of the healthy session is lost"


def test_non_finite_pixels_are_masked_not_detected(run: CorpusRun) -> None:
    key = "2026-03-20/nonfinite"
    rows = _frames(run, key)
    holed = next(name for name, kind in run.cases[key].files.items() if kind == "ok")
    # 300 NaN pixels, a column of +inf and 4 pixels of -inf: about 0.9% of the frame.
    assert rows[holed]["nonfinite_fraction"] == pytest.approx((300 + 256 + 4) / 256**2)
    detections = Table.read(run.results / run.cases[key].session / "detections.ecsv")
    mine = detections[detections["frame"] == holed]
    near_column = np.abs(np.asarray(mine["x"]) - 200) < 3
    in_block = (np.asarray(mine["y"]) < 22) & (np.abs(np.asarray(mine["x"]) - 45) < 17)
    assert not near_column.any() and not in_block.any()


def test_bit_depths_read_as_the_same_adu(run: CorpusRun) -> None:
    healthy = _frames(run, corpus.HEALTHY)
    rows = _frames(run, "2026-03-21/bitpix")
    assert sorted(int(r["bitpix"]) for r in rows.values()) == [-64, -32, 16, 16, 32, 64]
    for name, row in rows.items():
        assert row["background"] == pytest.approx(healthy[name]["background"], abs=0.5), name
    eight = _frames(run, "2026-03-21/bitpix8")
    assert {int(r["bitpix"]) for r in eight.values()} == {8}


def test_frames_out_of_name_order_are_sorted_by_time(run: CorpusRun) -> None:
    rows = _frames(run, "2026-03-21/out_of_order")
    names = list(rows)
    assert names == sorted(names, reverse=True)  # shot_06 was exposed first
    times = [r["mjd_mid"] for r in rows.values()]
    assert times == sorted(times)


def test_untimed_frames_keep_the_capture_order(run: CorpusRun) -> None:
    for key in ("2026-03-21/garbage_date", "2026-03-21/date_only"):
        rows = _frames(run, key)
        assert list(rows) == sorted(rows), key  # file-name order, the untimed one in place
        untimed = [r for r in rows.values() if not np.isfinite(r["mjd_mid"])]
        assert untimed and all(r["time_source"].startswith("unreadable: DATE-OBS") for r in untimed)


def test_duplicate_times_are_kept_with_a_warning(run: CorpusRun) -> None:
    key = "2026-03-21/duplicate_times"
    rows = _frames(run, key)
    times = Counter(r["mjd_mid"] for r in rows.values())
    assert sorted(times.values()) == [1, 1, 1, 1, 2]
    assert _candidates(run, key) is not None


def test_a_link_loop_is_visited_once(run: CorpusRun) -> None:
    assert "not a session: 2026-03-22/loop/back_to_night: a link back to a folder" in run.output
    assert "not a session: 2026-03-22/loop/here_again: a link back to a folder" in run.output
    sessions = {p.parent.parent.relative_to(run.results) for p in run.results.rglob("frames.ecsv")}
    assert not any("back_to_night" in str(s) or "here_again" in str(s) for s in sessions)
    summary = _summary(run, "2026-03-22/loop")
    assert summary["skipped_files"] == ["itself"]  # the link to itself, never followed


def test_unreadable_file_message_as_another_user(tmp_path: Path) -> None:
    """Root reads a file whatever its mode; a child process that is not root cannot."""
    base, _ = corpus.base_frames(tmp_path)
    # A folder every user may enter (pytest's own temporary folders are root's alone).
    folder = Path(tempfile.mkdtemp(prefix="spacepixels-locked-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        locked = folder / "light_locked.fits"
        locked.write_bytes(base[0].read_bytes())
        locked.chmod(0)
        # Imports and a first read as the test's user, then the locked file as nobody.
        script = (
            "import os, sys\n"
            "from spacepixels.frames import FrameReadError, read_frame\n"
            "read_frame(sys.argv[2])\n"
            "if os.geteuid() == 0:\n"
            "    os.setgid(65534)\n"
            "    os.setuid(65534)\n"
            "try:\n"
            "    read_frame(sys.argv[1])\n"
            "except FrameReadError as exc:\n"
            "    print(exc)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(locked), str(base[0])],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(corpus.ROOT / "src")},
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.stdout.strip() == f"{locked}: cannot be read (Permission denied)", done.stderr


# --------------------------------------------------------------------------- the summary


def test_summary_line(run: CorpusRun, record_property, robustness_summary) -> None:
    outcomes = {key: _outcome(run, key) for key in corpus.BUILDERS}
    tally = Counter(o.split(" (")[0] for o in outcomes.values())
    skipped = [s for case in run.cases.values() for s in case.skipped]
    line = (
        f"bad-input corpus: {len(outcomes)} cases tried in {run.seconds:.0f} s: "
        + ", ".join(f"{n} {what}" for what, n in sorted(tally.items()))
        + (f"; {len(skipped)} sub-case skipped ({'; '.join(skipped)})" if skipped else "")
    )
    table = "\n".join(f"  {run.cases[key].name:<48} {outcome}" for key, outcome in outcomes.items())
    print(line + "\n" + table)
    record_property("bad_input_summary", line)
    robustness_summary(line + "\n" + table)
    assert len(outcomes) == len(corpus.BUILDERS)
    assert "absent" not in tally and "incomplete" not in tally
    expected = {key: run.cases[key].expect for key in outcomes}
    for key, outcome in outcomes.items():
        if expected[key] == "not a session":
            assert outcome == "not a session", key
        elif expected[key] == "session error":
            assert outcome == "session error", key
        elif expected[key] == "rejected":
            assert outcome.startswith("rejected-frame rows"), (key, outcome)
        else:
            assert outcome.startswith("kept"), (key, outcome)


# --------------------------------------------------------------------------- the reader alone


def test_reader_names_what_is_not_a_frame(tmp_path: Path) -> None:
    from spacepixels.frames import FrameReadError, FrameRows, read_frame, read_header

    os.mkfifo(tmp_path / "pipe.fits")  # opening it would wait for a writer forever
    (tmp_path / "gone.fits").symlink_to(tmp_path / "elsewhere.fits")
    (tmp_path / "loop.fits").symlink_to("loop.fits")
    expected = {
        "pipe.fits": "not a regular file (a named pipe), so it was not opened",
        "gone.fits": f"a link to a missing file ({tmp_path / 'elsewhere.fits'})",
        "loop.fits": "a symbolic link loop (it leads back to itself)",
    }
    for name, message in expected.items():
        for reader in (read_frame, read_header, FrameRows):
            with pytest.raises(FrameReadError) as caught:
                reader(tmp_path / name)
            assert str(caught.value) == f"{tmp_path / name}: {message}"


def test_infinite_pixels_read_as_nan(tmp_path: Path) -> None:
    from astropy.io import fits

    from spacepixels.frames import FrameRows, read_frame

    data = np.full((8, 6), 100.0, dtype=np.float64)
    data[2, 3], data[5, 1], data[6, 4] = np.inf, -np.inf, np.nan
    data[7, 0] = 1e300  # more than float32 can hold
    fits.PrimaryHDU(data).writeto(tmp_path / "f.fits")
    frame = read_frame(tmp_path / "f.fits").data
    assert np.isnan(frame).sum() == 4 and not np.isinf(frame).any()
    rows = FrameRows(tmp_path / "f.fits").read(0, 8, out=np.empty((8, 6), np.float32))
    np.testing.assert_array_equal(rows, frame)


def test_discovery_keeps_snakemake_path_variables_away(tmp_path: Path) -> None:
    from spacepixels.check import CheckSettings, check_session
    from spacepixels.sessions import discover_sessions

    base, _ = corpus.base_frames(tmp_path / "scratch")
    good = tmp_path / "nights" / "n1" / "M31"
    corpus._copy_base(base, good)
    (good / "light <results>.fits").write_bytes(base[0].read_bytes())
    corpus._copy_base(base, tmp_path / "nights" / "n1" / "<m42>")
    found = discover_sessions(tmp_path / "nights", 5)
    assert list(found.sessions) == ["n1/M31"]
    assert "light <results>.fits" not in found.sessions["n1/M31"].frames
    assert dict(found.skipped)["n1/<m42>"].startswith("its path holds '<m42>'")
    session = found.sessions["n1/M31"]
    table, summary = check_session(
        session.frame_paths, CheckSettings(), other_files=session.other_files
    )
    row = table[table["file"] == "light <results>.fits"][0]
    assert row["status"] == "rejected" and row["reason_kind"] == "unreadable"
    assert "'<results>', which Snakemake reads as a path variable" in row["reason"]
    assert summary["skipped_files"] == []
