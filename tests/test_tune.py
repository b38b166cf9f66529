"""Tune measures the night (seeing, elongation, jitter, noise) as the synthetic truth has it,
and chooses settings that follow the measurements, each with its reason."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from spacepixels import synth
from spacepixels.check import CheckSettings, check_session
from spacepixels.frames import is_frame_name
from spacepixels.tune import (
    EXTRACT_KEYS,
    LINK_KEYS,
    PROFILES,
    TuneSettings,
    read_tuned,
    resolve,
    tune_session,
    write_tuned,
)

SHAPE = (600, 700)
N_FRAMES = 12


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A checked synthetic session: its truth, check table and good frames in time order."""
    root = tmp_path_factory.mktemp("tune")
    truth = synth.make_session(
        root, "2026-03-14/M42", seed=11, n_frames=N_FRAMES, shape=SHAPE, objects=[]
    )
    paths = sorted(p for p in (root / "2026-03-14/M42").iterdir() if is_frame_name(p.name))
    table, _ = check_session(paths, CheckSettings())
    good = [paths[0].parent / name for name in table["file"][table["status"] == "ok"]]
    return {"truth": truth, "table": table, "good": good, "root": root}


@pytest.fixture(scope="module")
def tuned(night: dict[str, Any]) -> dict[str, Any]:
    return tune_session(night["good"], night["table"], TuneSettings())


def test_two_workers_tune_as_one_does(night: dict[str, Any], tuned: dict[str, Any]) -> None:
    assert tune_session(night["good"], night["table"], TuneSettings(), workers=2) == tuned


def _truth_frames(night: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    by_name = {f["file"]: f for f in night["truth"]["frames"]}
    return [by_name[name] for name in names]


def _truth_jitter(frames: list[dict[str, Any]]) -> float:
    offsets = np.array([[f["jitter_dx"], f["jitter_dy"]] for f in frames])
    return float(np.sqrt(np.mean((offsets - offsets.mean(axis=0)) ** 2)))


def test_seeing_and_elongation_are_those_of_the_truth(
    night: dict[str, Any], tuned: dict[str, Any]
) -> None:
    measured = tuned["measured"]
    sampled = _truth_frames(night, measured["frames_sampled"])
    assert len(sampled) == TuneSettings().sample_frames
    true_fwhm = float(np.median([f["fwhm"] for f in sampled]))
    true_elongation = float(np.median([f["elongation"] for f in sampled]))
    assert measured["fwhm_px"] == pytest.approx(true_fwhm, rel=0.10)
    assert measured["elongation"] == pytest.approx(true_elongation, abs=0.05)
    assert measured["stars_used"] >= 20


def test_jitter_is_that_of_the_truth_within_half(
    night: dict[str, Any], tuned: dict[str, Any]
) -> None:
    good_names = [p.name for p in night["good"]]
    true_jitter = _truth_jitter(_truth_frames(night, good_names))
    assert true_jitter / 1.5 <= tuned["measured"]["jitter_px"] <= 1.5 * true_jitter
    # From the stars of the sample alone (no check offsets), it is still the jitter.
    sample_jitter = _truth_jitter(_truth_frames(night, tuned["measured"]["frames_sampled"]))
    star_jitter = tuned["measured"]["star_jitter_px"]
    assert sample_jitter / 1.5 <= star_jitter <= 1.5 * sample_jitter
    assert tuned["measured"]["centroid_scatter_px"] < 0.2


def test_jitter_is_measured_from_stars_without_a_check_table(night: dict[str, Any]) -> None:
    alone = tune_session(night["good"], None, TuneSettings(sample_frames=6))
    measured = alone["measured"]
    assert "sample frames" in measured["jitter_source"]
    true_jitter = _truth_jitter(_truth_frames(night, measured["frames_sampled"]))
    assert true_jitter / 1.5 <= measured["jitter_px"] <= 1.5 * true_jitter


def test_noise_and_background_match_the_frames(
    night: dict[str, Any], tuned: dict[str, Any]
) -> None:
    table = night["table"]
    ok = table[table["status"] == "ok"]
    assert tuned["measured"]["noise_adu"] == pytest.approx(float(np.median(ok["noise"])), rel=0.15)
    assert tuned["measured"]["background_adu"] == pytest.approx(
        float(np.median(ok["background"])), rel=0.05
    )


def test_every_choice_has_a_value_and_the_measurement_behind_it(tuned: dict[str, Any]) -> None:
    assert list(tuned) == ["profile", "measured", "extract", "link"]
    assert set(tuned["extract"]) == set(EXTRACT_KEYS)
    assert set(tuned["link"]) == set(LINK_KEYS)
    for section in ("extract", "link"):
        for key, entry in tuned[section].items():
            assert set(entry) == {"value", "why"}, key
            switch = key in ("clean", "subtract_reference")
            kind = bool if switch else int | float
            assert isinstance(entry["value"], kind), key
            assert switch or not isinstance(entry["value"], bool), key
            assert entry["why"], key
    fwhm = tuned["measured"]["fwhm_px"]
    jitter = tuned["measured"]["jitter_px"]
    assert tuned["extract"]["kernel_fwhm_px"]["value"] == pytest.approx(fwhm, abs=1e-3)
    assert f"{fwhm:.2f}" in tuned["extract"]["kernel_fwhm_px"]["why"]
    match = tuned["link"]["match_radius_px"]
    assert match["value"] == pytest.approx(3 * jitter + 0.5 * fwhm, abs=0.01)
    assert f"jitter {jitter:.2f} px" in match["why"] and f"FWHM {fwhm:.2f} px" in match["why"]
    mesh = tuned["extract"]["background_mesh_px"]["value"]
    assert mesh >= 4 * fwhm and mesh >= tuned["measured"]["largest_star_px"]
    assert mesh % 16 == 0


def test_cosmic_ray_limit_lies_between_stars_and_single_pixels(tuned: dict[str, Any]) -> None:
    measured = tuned["measured"]
    limit = tuned["link"]["cosmic_ray_sharpness"]["value"]
    assert 0.8 < measured["star_sharpness_median"] < 1.2
    assert measured["star_sharpness_top"] < limit < measured["single_pixel_sharpness"]
    assert tuned["link"]["streak_min_elongation"]["value"] >= 2.0


def test_min_points_follow_the_number_of_good_frames(
    night: dict[str, Any], tuned: dict[str, Any]
) -> None:
    n_good = len(night["good"])
    assert tuned["measured"]["good_frames"] == n_good
    assert tuned["link"]["min_points"]["value"] == max(3, math.ceil(0.25 * n_good))
    assert str(n_good) in tuned["link"]["min_points"]["why"]


def test_profiles_trade_completeness_for_false_alarms(night: dict[str, Any]) -> None:
    chosen = {
        name: tune_session(night["good"][:6], night["table"], TuneSettings(profile=name))
        for name in PROFILES
    }
    sigma = [chosen[name]["extract"]["detect_sigma"]["value"] for name in PROFILES]
    assert sigma[0] > sigma[1] > sigma[2]
    radius = [chosen[name]["link"]["match_radius_px"]["value"] for name in PROFILES]
    assert radius[0] < radius[1] < radius[2]
    assert all(chosen[name]["profile"] == name for name in PROFILES)
    assert [chosen[name]["extract"]["clean"]["value"] for name in PROFILES] == [
        True,
        False,
        False,
    ]


def test_written_settings_read_back_as_yaml(tmp_path: Path, tuned: dict[str, Any]) -> None:
    path = tmp_path / "tune" / "settings.yaml"
    write_tuned(tuned, path)
    assert read_tuned(path) == yaml.safe_load(path.read_text())
    assert read_tuned(path)["measured"]["fwhm_px"] == tuned["measured"]["fwhm_px"]
    assert not [p for p in path.parent.iterdir() if p.name != "settings.yaml"]
    (tmp_path / "bad.yaml").write_text("just: text\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        read_tuned(tmp_path / "bad.yaml")


def test_configured_values_win_and_say_so(tuned: dict[str, Any]) -> None:
    config = {"detect_sigma": 6.0, "min_area": None, "frames_per_job": 10}
    values, provenance = resolve(config, tuned["extract"])
    assert values["detect_sigma"] == 6.0 and provenance["detect_sigma"] == "configured"
    assert values["min_area"] == tuned["extract"]["min_area"]["value"]
    assert provenance["min_area"].startswith("tuned: ")
    assert tuned["extract"]["min_area"]["why"] in provenance["min_area"]
    assert values["frames_per_job"] == 10
    assert values["kernel_fwhm_px"] == tuned["extract"]["kernel_fwhm_px"]["value"]
    values, provenance = resolve({"streak_limit": None}, {})
    assert values == {"streak_limit": None} and provenance == {"streak_limit": "default"}


def test_settings_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="sample_framez"):
        TuneSettings.from_mapping({"sample_framez": 3})
    with pytest.raises(ValueError, match="profile"):
        TuneSettings.from_mapping({"profile": "reckless"})
    assert TuneSettings.from_mapping({"profile": None}).profile == "balanced"
    doc = TuneSettings.__doc__ or ""
    for f in fields(TuneSettings):
        assert f"{f.name} :" in doc, f.name


def test_no_frames_is_an_error() -> None:
    with pytest.raises(ValueError, match="no good frames"):
        tune_session([], Table(), TuneSettings())


def test_a_starless_session_falls_back_and_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(4):
        path = tmp_path / f"blank_{i}.fits"
        data = rng.normal(1000.0, 10.0, (128, 160)).astype(np.float32)
        fits.PrimaryHDU(data).writeto(path)
        paths.append(path)
    tuned = tune_session(paths, None, TuneSettings())
    measured = tuned["measured"]
    assert measured["fwhm_px"] == 3.0 and "no isolated stars" in measured["fwhm_source"]
    assert measured["jitter_px"] == 0.3 and "assumed" in measured["jitter_source"]
    assert measured["noise_adu"] == pytest.approx(10.0, rel=0.1)
    assert set(tuned["link"]) == set(LINK_KEYS)
