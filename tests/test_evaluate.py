"""Tests of spacepixels.evaluate: candidates matched against a hand-written truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from astropy.table import Table

from spacepixels.evaluate import evaluate_results, evaluate_session, summarize
from spacepixels.link import CANDIDATE_COLUMNS, DETECTION_COLUMNS

FRAMES = [f"s_{k:04d}.fits" for k in range(6)]


def _truth() -> dict:
    def positions(x0: float, y0: float, vx: float, vy: float, snr: float) -> list[dict]:
        return [
            {
                "frame": f,
                "index": k,
                "mjd": 61000.0 + k / 1000,
                "x": x0 + vx * k,
                "y": y0 + vy * k,
                "peak_snr": snr,
            }
            for k, f in enumerate(FRAMES)
        ]

    return {
        "session_id": "night/T",
        "frames": [{"file": f, "fwhm": 2.0} for f in FRAMES],
        "objects": [
            {
                "id": "mover_1",
                "kind": "mover",
                "snr": 6.0,
                "rate_px_per_frame": 2.0,
                "positions": positions(10, 20, 2, 0, 6.0),
            },
            {
                "id": "mover_2",
                "kind": "mover",
                "snr": 4.0,
                "rate_px_per_frame": 1.0,
                "positions": positions(100, 20, 0, 1, 4.0),
            },
            {
                "id": "slow_mover_1",
                "kind": "slow_mover",
                "snr": 10.0,
                "rate_px_per_frame": 0.3,
                "positions": positions(200, 200, 0.3, 0, 10.0),
            },
            {
                "id": "streak_1",
                "kind": "streak",
                "snr": 10.0,
                "rate_px_per_frame": 5000.0,
                "positions": [
                    {
                        "frame": FRAMES[2],
                        "x": 150.0,
                        "y": 100.0,
                        "peak_snr": 10.0,
                        "x0": 50.0,
                        "y0": 100.0,
                        "x1": 250.0,
                        "y1": 100.0,
                    }
                ],
            },
            {
                "id": "flash_1",
                "kind": "flash",
                "snr": 20.0,
                "rate_px_per_frame": 0.0,
                "positions": [{"frame": FRAMES[4], "x": 300.0, "y": 50.0, "peak_snr": 20.0}],
            },
        ],
    }


def _tables(rows: list[dict], kinds: dict[str, str]) -> tuple[Table, Table]:
    candidates = Table(
        rows=[
            {
                name: (cid if name == "id" else kind if name == "kind" else 0.5)
                for name in CANDIDATE_COLUMNS
            }
            for cid, kind in kinds.items()
        ]
    )
    full = []
    for row in rows:
        entry = {name: math.nan for name in DETECTION_COLUMNS}
        entry.update({"frame_index": 0, "flux": 1.0, "snr": 5.0})
        entry.update(row)
        full.append(entry)
    return candidates, Table(rows=full)


def _track(cid: str, x0: float, y0: float, vx: float, vy: float, frames: range) -> list[dict]:
    return [
        {
            "candidate_id": cid,
            "frame": FRAMES[k],
            "x": x0 + vx * k + 0.2,
            "y": y0 + vy * k,
            "x_fit": x0 + vx * k + 0.1,
            "y_fit": y0 + vy * k,
        }
        for k in frames
    ]


def test_found_false_and_duplicate_candidates_are_told_apart() -> None:
    rows = (
        _track("T0001", 10, 20, 2, 0, range(6))
        + _track("T0002", 10, 20, 2, 0, range(3, 6))  # a second candidate on mover_1
        + _track("M0001", 200, 200, 0.3, 0, range(6))
        + _track("T0003", 400, 400, 1, 1, range(6))  # nothing there: false
        + [
            {
                "candidate_id": "S0001",
                "frame": FRAMES[2],
                "x": 151.0,
                "y": 103.0,
                "x0": 52.0,
                "y0": 103.0,
                "x1": 250.0,
                "y1": 103.0,
            }
        ]
        + [{"candidate_id": "F0001", "frame": FRAMES[4], "x": 300.3, "y": 49.8}]
        + [{"candidate_id": "F0002", "frame": FRAMES[1], "x": 300.3, "y": 49.8}]  # wrong frame
    )
    kinds = {
        "T0001": "track",
        "T0002": "track",
        "M0001": "slow_mover",
        "T0003": "track",
        "S0001": "streak",
        "F0001": "anomaly",
        "F0002": "anomaly",
    }
    candidates, detections = _tables(rows, kinds)
    result = evaluate_session(_truth(), candidates, detections)
    found = {o.object_id: o for o in result.objects}
    assert found["mover_1"].found and found["mover_1"].candidate_id == "T0001"
    assert found["mover_1"].n_matched == 6
    assert found["mover_1"].position_error_px == pytest.approx(0.2)
    assert found["mover_1"].fit_error_px == pytest.approx(0.1)
    assert not found["mover_2"].found and found["mover_2"].candidate_id == ""
    assert found["slow_mover_1"].found and found["slow_mover_1"].candidate_kind == "slow_mover"
    assert found["streak_1"].found and found["flash_1"].found
    assert math.isnan(found["streak_1"].position_error_px)
    assert sorted(result.false_candidates) == [("F0002", "anomaly"), ("T0003", "track")]
    assert result.duplicates == [("T0002", "track")]
    assert result.n_candidates == 7


def test_a_streak_candidate_crossing_a_mover_counts_for_the_streak() -> None:
    truth = _truth()
    # The streak's centre is on the mover's position in that frame.
    truth["objects"][3]["positions"][0].update(
        {"x": 14.0, "y": 20.0, "x0": -86.0, "x1": 114.0, "y0": 20.0, "y1": 20.0}
    )
    rows = [
        {
            "candidate_id": "S0001",
            "frame": FRAMES[2],
            "x": 14.0,
            "y": 20.0,
            "x0": -80.0,
            "y0": 20.0,
            "x1": 110.0,
            "y1": 20.0,
        }
    ]
    candidates, detections = _tables(rows, {"S0001": "streak"})
    result = evaluate_session(truth, candidates, detections)
    assert {o.object_id: o.found for o in result.objects}["streak_1"]
    assert result.false_candidates == []


def test_summary_bins_and_targets() -> None:
    rows = _track("T0001", 10, 20, 2, 0, range(6)) + _track("M0001", 200, 200, 0.3, 0, range(6))
    candidates, detections = _tables(rows, {"T0001": "track", "M0001": "slow_mover"})
    evaluation = evaluate_session(_truth(), candidates, detections)
    summary = summarize([evaluation, evaluation])
    assert summary["sessions"] == 2
    assert summary["completeness_by_snr"]["5-8"] == {"found": 2, "total": 2, "fraction": 1.0}
    assert summary["completeness_by_snr"]["3-5"]["fraction"] == 0.0
    assert summary["completeness_by_rate"]["0.15-0.5"]["found"] == 2
    assert summary["targets"]["movers_snr5_rate0.5-8"]["fraction"] == 1.0
    assert summary["targets"]["movers_snr3-5"]["total"] == 2
    assert summary["targets"]["slow_movers_snr8"]["fraction"] == 1.0
    assert summary["targets"]["streaks"]["found"] == 0
    assert summary["false_per_session"] == 0.0
    assert summary["median_position_error_px"] == pytest.approx(0.2)
    assert summary["kind_agreement"]["mover"] == {"track": 2}
    assert len(summary["missed"]) == 6


def test_results_are_read_from_the_workflow_tree(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    truth_path.write_text(json.dumps({"sessions": {"night/T": _truth()}}))
    candidates, detections = _tables(_track("T0001", 10, 20, 2, 0, range(6)), {"T0001": "track"})
    folder = tmp_path / "results" / "night" / "T"
    folder.mkdir(parents=True)
    candidates.write(folder / "candidates.ecsv", format="ascii.ecsv")
    detections.write(folder / "detections.ecsv", format="ascii.ecsv")
    (result,) = evaluate_results(truth_path, tmp_path / "results")
    assert result.session == "night/T"
    assert [o.object_id for o in result.objects if o.found] == ["mover_1"]
