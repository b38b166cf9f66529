"""The workflow finds what moved: the injected movers are in the session's candidates.ecsv.

Runs the real ``snakemake`` on a seeded synthetic session through check, tune, sky model,
extract, link and measure, and compares the public catalogues with the generator's truth.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from badinput_corpus import snakemake_command
from workdir import make_workdir

from spacepixels import synth

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SESSION = "2026-03-14/M31"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("detect")
    nights = base / "nights"
    truth = synth.make_session(
        nights, SESSION, seed=5, n_frames=16, shape=(600, 800), catalog=True, wcs=False
    )
    work = make_workdir(base / "work")
    results = work / "results"
    command = snakemake_command(nights, results)
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results / SESSION, truth


def _matches(track: Table, positions: list[dict], tolerance: float) -> int:
    """How many truth positions a candidate's detections hit, frame by frame."""
    by_frame = {str(row["frame"]): (float(row["x"]), float(row["y"])) for row in track}
    hits = 0
    for truth in positions:
        found = by_frame.get(truth["frame"])
        if found and np.hypot(found[0] - truth["x"], found[1] - truth["y"]) <= tolerance:
            hits += 1
    return hits


def test_public_catalogues_follow_the_contract(run) -> None:
    session, _ = run
    candidates = Table.read(session / "candidates.ecsv")
    detections = Table.read(session / "detections.ecsv")
    for column in (
        "id",
        "kind",
        "n_frames",
        "mjd_start",
        "mjd_end",
        "x_start",
        "y_start",
        "x_end",
        "y_end",
        "rate_px_per_min",
        "direction_deg",
        "snr_median",
        "score",
    ):
        assert column in candidates.colnames, column
    for column in ("candidate_id", "frame", "mjd", "x", "y", "flux", "snr"):
        assert column in detections.colnames, column
    assert set(detections["candidate_id"]) <= set(candidates["id"])
    assert set(candidates["kind"]) <= {"track", "streak_track", "streak", "anomaly", "slow_mover"}
    assert list(candidates["score"]) == sorted(candidates["score"], reverse=True)


def test_injected_movers_are_found_where_they_were(run) -> None:
    session, truth = run
    candidates = Table.read(session / "candidates.ecsv")
    detections = Table.read(session / "detections.ecsv")
    movers = [o for o in truth["objects"] if o["kind"] == "mover"]
    assert movers
    for mover in movers:
        visible = [p for p in mover["positions"] if p["frame"] not in truth["cloudy_frames"]]
        best = max(
            (_matches(detections[detections["candidate_id"] == cid], visible, 1.0), cid)
            for cid in candidates["id"]
        )
        hits, cid = best
        assert hits >= 0.8 * len(visible), f"{mover['id']}: best candidate {cid} hit {hits}"
        row = candidates[candidates["id"] == cid][0]
        assert row["kind"] == "track"
        rate = mover["rate_px_per_min"]
        assert abs(row["rate_px_per_min"] - rate) <= 0.05 * rate + 0.02, (row, rate)


def test_movers_have_their_true_place_and_rate_on_the_sky(run) -> None:
    """Solved offline from the real Tycho-2 stars: RA/Dec within 2 arcsec, rate within 2 %."""
    session, truth = run
    solution = json.loads((session / "solve" / "solve.json").read_text())
    if solution["status"] != "solved":
        pytest.skip(f"not plate solved here ({solution['message']}): install astrometry.net")
    centre = truth["astrometry"]["centre"]
    assert solution["centre_ra_deg"] == pytest.approx(centre["ra_deg"], abs=0.02)
    candidates = Table.read(session / "candidates.ecsv")
    detections = Table.read(session / "detections.ecsv")
    for mover in (o for o in truth["objects"] if o["kind"] == "mover"):
        by_frame = {p["frame"]: p for p in mover["positions"]}
        errors, owner = [], None
        for row in detections:
            true = by_frame.get(str(row["frame"]))
            if true and np.hypot(row["x"] - true["x"], row["y"] - true["y"]) < 1.0:
                cos_dec = np.cos(np.radians(true["dec"]))
                d_ra = (row["ra"] - true["ra"]) * cos_dec * 3600
                errors.append(np.hypot(d_ra, (row["dec"] - true["dec"]) * 3600))
                owner = str(row["candidate_id"])
        assert errors, mover["id"]
        assert np.median(errors) <= 2.0, (mover["id"], np.median(errors))
        rate = candidates[candidates["id"] == owner][0]["rate_arcsec_per_min"]
        assert rate == pytest.approx(mover["rate_arcsec_per_min"], rel=0.02), mover["id"]


def test_stationary_sources_and_defects_are_not_candidates(run) -> None:
    session, truth = run
    detections = Table.read(session / "detections.ecsv")
    hot = np.array(truth["hot_pixels"], dtype=float)
    xy = np.column_stack([detections["x"], detections["y"]])
    if len(xy) and len(hot):
        nearest = np.min(np.hypot(*(xy[:, None, :] - hot[None, :, :]).transpose(2, 0, 1)), axis=1)
        assert np.count_nonzero(nearest < 1.0) == 0, "a hot pixel became a candidate"
    for column in truth["bad_columns"]:
        on_column = np.abs(np.asarray(detections["x"]) - column) < 1.0
        assert np.count_nonzero(on_column) <= 2, f"bad column {column} produced candidates"
