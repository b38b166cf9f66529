"""Extraction finds faint movers where they are, few noise detections, and tells a cosmic
ray from a star by its sharpness; on a seeded synthetic session with ground truth."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.spatial import cKDTree

from spacepixels import extract as extract_module
from spacepixels import synth
from spacepixels.check import CheckSettings, check_session
from spacepixels.extract import (
    EXTRACT_COLUMNS,
    FLAG_SATURATED,
    ExtractSettings,
    conv_threshold_factor,
    extract_frames,
    extract_sources,
    gaussian_kernel,
    read_catalogue,
    single_pixel_sharpness,
)
from spacepixels.frames import is_frame_name, read_frame
from spacepixels.skymodel import SkySettings, model_sky
from spacepixels.synth import ObjectSpec
from spacepixels.tune import TuneSettings, resolve, tune_session

SHAPE = (700, 800)
N_FRAMES = 16


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A session with movers at peak S/N 5 and 3, checked, tuned, modelled and extracted."""
    root = tmp_path_factory.mktemp("extract")
    objects = [
        ObjectSpec("mover", snr=5.0, rate_px_per_frame=1.0, id="bright_1"),
        ObjectSpec("mover", snr=5.0, rate_px_per_frame=2.0, id="bright_2"),
        ObjectSpec("mover", snr=3.0, rate_px_per_frame=1.5, id="faint_1"),
        ObjectSpec("mover", snr=3.0, rate_px_per_frame=0.8, id="faint_2"),
    ]
    truth = synth.make_session(
        root, "2026-03-14/M31", seed=31, n_frames=N_FRAMES, shape=SHAPE, objects=objects
    )
    folder = root / "2026-03-14/M31"
    paths = sorted(p for p in folder.iterdir() if is_frame_name(p.name))
    table, _ = check_session(paths, CheckSettings())
    good = [folder / name for name in table["file"][table["status"] == "ok"]]
    tuned = tune_session(good, table, TuneSettings())
    model_sky(good, table, tuned, SkySettings(), root / "sky")
    values, _ = resolve({"frames_per_job": 25}, tuned["extract"])
    out = root / "extract" / "chunk_0.ecsv"
    catalogue = extract_frames(paths, table, values, out)
    return {
        "truth": truth,
        "table": table,
        "good": good,
        "paths": paths,
        "tuned": tuned,
        "catalogue": catalogue,
        "out": out,
        "mask": fits.getdata(root / "sky" / "stationary_mask.fits").astype(bool),
        "defects": fits.getdata(root / "sky" / "defects.fits"),
    }


def _trees(catalogue: Table) -> dict[str, tuple[cKDTree, np.ndarray]]:
    trees = {}
    for name in np.unique(catalogue["frame"]):
        rows = np.flatnonzero(catalogue["frame"] == name)
        trees[str(name)] = (cKDTree(np.c_[catalogue["x"][rows], catalogue["y"][rows]]), rows)
    return trees


def _distances(night: dict[str, Any], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each truth position of the movers ``prefix*`` to the nearest source,
    and whether that position lies off the stationary mask (away from stars)."""
    trees = _trees(night["catalogue"])
    distance, free = [], []
    for obj in night["truth"]["objects"]:
        if not obj["id"].startswith(prefix):
            continue
        for pos in obj["positions"]:
            if pos["frame"] not in trees:
                continue  # a frame the check rejected
            tree, _ = trees[pos["frame"]]
            distance.append(tree.query([pos["x"], pos["y"]])[0])
            free.append(not night["mask"][int(round(pos["y"])), int(round(pos["x"]))])
    return np.array(distance), np.array(free)


def test_movers_at_peak_snr_5_are_found_where_they_are(night: dict[str, Any]) -> None:
    distance, free = _distances(night, "bright")
    assert free.sum() >= 15
    # Away from stars: in 95 % of the frames, within half a pixel of the truth.
    assert np.mean(distance[free] < 0.5) >= 0.95
    # Over a star's wing a mover may blend with it, but not often.
    assert np.mean(distance < 1.0) >= 0.8


def test_movers_at_peak_snr_3_are_found_in_most_frames(night: dict[str, Any]) -> None:
    distance, free = _distances(night, "faint")
    assert free.sum() >= 15
    assert np.mean(distance[free] < 1.0) >= 0.6
    assert np.mean(distance[free] < 1.0) >= 0.75  # measured: about 0.9


def test_few_noise_detections_away_from_stars(night: dict[str, Any]) -> None:
    catalogue: Table = night["catalogue"]
    mask, defects, truth = night["mask"], night["defects"], night["truth"]
    h, w = mask.shape
    xi = np.clip(np.rint(catalogue["x"]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(catalogue["y"]).astype(int), 0, h - 1)
    explained = mask[yi, xi].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            explained |= defects[np.clip(yi + dy, 0, h - 1), np.clip(xi + dx, 0, w - 1)] > 0
    trees = _trees(catalogue)
    known = [(p["frame"], p["x"], p["y"]) for o in truth["objects"] for p in o["positions"]]
    known += [(c["frame"], c["x"], c["y"]) for c in truth["cosmic_rays"]]
    for frame, x, y in known:
        if frame in trees:
            tree, rows = trees[frame]
            explained[rows[tree.query_ball_point([x, y], 3.0)]] = True
    n_frames = len(trees)
    free_megapixels = (~mask).sum() / 1e6
    rate = np.count_nonzero(~explained) / n_frames / free_megapixels
    # Measured: 1.9 per frame per megapixel here at the balanced settings (2-5 on other seeds).
    assert rate < 5.0


def test_cosmic_rays_are_far_sharper_than_stars(night: dict[str, Any]) -> None:
    catalogue: Table = night["catalogue"]
    trees = _trees(catalogue)
    hits = []
    for ray in night["truth"]["cosmic_rays"]:
        if ray["frame"] in trees:
            tree, rows = trees[ray["frame"]]
            distance, j = tree.query([ray["x"], ray["y"]])
            if distance < 1.5:
                hits.append(catalogue["sharpness"][rows[j]])
    assert len(hits) >= 10
    h, w = night["mask"].shape
    xi = np.clip(np.rint(catalogue["x"]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(catalogue["y"]).astype(int), 0, h - 1)
    defects = night["defects"]
    near_defect = np.zeros(len(catalogue), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near_defect |= defects[np.clip(yi + dy, 0, h - 1), np.clip(xi + dx, 0, w - 1)] > 0
    stars = (
        night["mask"][yi, xi]
        & ~near_defect
        & (catalogue["snr"] > 20)
        & (catalogue["flags"] & 0xFF == 0)
    )
    star_sharpness = np.median(catalogue["sharpness"][stars])
    assert 0.7 < star_sharpness < 1.3
    assert np.median(hits) > 4 * star_sharpness
    limit = night["tuned"]["link"]["cosmic_ray_sharpness"]["value"]
    assert np.mean(np.array(hits) > limit) >= 0.9
    assert np.mean(catalogue["sharpness"][stars] > limit) < 0.01
    assert np.max(catalogue["sharpness"]) <= catalogue.meta["single_pixel_sharpness"] + 1e-3


def test_catalogue_has_the_contract_columns_and_metadata(night: dict[str, Any]) -> None:
    catalogue: Table = night["catalogue"]
    assert catalogue.colnames == list(EXTRACT_COLUMNS)
    table: Table = night["table"]
    rejected = set(table["file"][table["status"] != "ok"])
    assert rejected, "the synthetic session has a cloudy frame the check rejects"
    assert rejected.isdisjoint(set(catalogue["frame"]))
    assert {s["file"] for s in catalogue.meta["skipped"]} == rejected
    per_frame = {f["file"]: f for f in catalogue.meta["frames"]}
    assert set(per_frame) == {p.name for p in night["good"]}
    by_file = {row["file"]: row for row in table}
    for name, info in per_frame.items():
        rows = catalogue[catalogue["frame"] == name]
        assert info["sources"] == len(rows) > 100
        assert (rows["frame_index"] == by_file[name]["index"]).all()
        assert np.allclose(rows["mjd"], by_file[name]["mjd_mid"])
        assert info["threshold_sigma"] == catalogue.meta["values"]["detect_sigma"]
        assert info["sky_adu"] == pytest.approx(by_file[name]["background"], rel=0.05)
    assert catalogue.meta["values"]["kernel_fwhm_px"] == pytest.approx(
        night["tuned"]["measured"]["fwhm_px"]
    )
    snr = catalogue["flux"] / catalogue["flux_err"]
    assert np.allclose(catalogue["snr"], snr, equal_nan=True)
    assert np.allclose(catalogue["elongation"], catalogue["a"] / catalogue["b"])
    assert (catalogue["xmin"] <= catalogue["x"] + 1).all() and (
        catalogue["x"] <= catalogue["xmax"] + 1
    ).all()
    assert (np.abs(catalogue["theta"]) <= math.pi / 2 + 1e-6).all()
    assert ((catalogue["flags"] & FLAG_SATURATED) > 0).any()  # the saturated stars


def test_written_catalogue_reads_back_the_same(night: dict[str, Any]) -> None:
    catalogue: Table = night["catalogue"]
    fast = read_catalogue(night["out"])
    slow = Table.read(night["out"], format="ascii.ecsv")
    assert fast.colnames == slow.colnames == list(EXTRACT_COLUMNS)
    assert len(fast) == len(slow) == len(catalogue)
    assert fast.meta == slow.meta
    for name in EXTRACT_COLUMNS:
        if catalogue[name].dtype.kind in "fc":
            np.testing.assert_allclose(fast[name], slow[name], equal_nan=True)
            np.testing.assert_allclose(fast[name], catalogue[name], rtol=1e-3, atol=1e-3)
        else:
            assert (fast[name] == slow[name]).all() and (fast[name] == catalogue[name]).all()
    assert fast["x"].unit == "pix"
    assert not [p for p in night["out"].parent.iterdir() if p.name.startswith(".")]


def test_a_subset_of_columns_reads_back_the_same(night: dict[str, Any]) -> None:
    full = read_catalogue(night["out"])
    some = read_catalogue(night["out"], columns=["y", "frame", "flags", "not_a_column"])
    assert some.colnames == ["frame", "y", "flags"]  # the file's order; unknown ones skipped
    assert len(some) == len(full)
    for name in some.colnames:
        assert (some[name] == full[name]).all()
    assert some["y"].unit == "pix"


def test_matched_filter_threshold_is_in_sigmas_of_the_filtered_noise() -> None:
    kernel = gaussian_kernel(3.0)
    assert kernel.dtype == np.float32 and kernel.shape[0] % 2 == 1 and kernel.max() == 1.0
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 10.0, (512, 512)).astype(np.float32) + np.float32(1000.0)
    values = ExtractSettings(detect_sigma=4.0, kernel_fwhm_px=3.0).completed()
    columns, info = extract_sources(noise, values)
    # Pure noise: a 4-sigma matched filter finds about one peak per megapixel or less.
    assert info["sources"] <= 3
    low = ExtractSettings(detect_sigma=2.5, kernel_fwhm_px=3.0).completed()
    assert extract_sources(noise, low)[1]["sources"] > 20
    factor = conv_threshold_factor(kernel)
    assert factor == pytest.approx(math.sqrt((kernel.astype(float) ** 2).sum()) / kernel.sum())
    assert set(columns) == set(EXTRACT_COLUMNS[3:])


def test_a_hot_pixel_is_as_sharp_as_one_pixel_can_be() -> None:
    rng = np.random.default_rng(6)
    image = rng.normal(500.0, 5.0, (128, 128)).astype(np.float32)
    image[40, 50] += 400.0
    sigma = 2.8 / 2.3548
    yy, xx = np.mgrid[0:128, 0:128]
    image += (400.0 * np.exp(-((xx - 90.3) ** 2 + (yy - 70.6) ** 2) / (2 * sigma**2))).astype(
        np.float32
    )
    values = ExtractSettings(detect_sigma=5.0, kernel_fwhm_px=2.8).completed()
    columns, _ = extract_sources(image, values)
    hot = np.argmin(np.hypot(columns["x"] - 50, columns["y"] - 40))
    star = np.argmin(np.hypot(columns["x"] - 90.3, columns["y"] - 70.6))
    single = single_pixel_sharpness(2.8, float(values.aperture_radius_px))
    assert columns["sharpness"][hot] == pytest.approx(single, rel=0.1)
    assert columns["sharpness"][star] == pytest.approx(1.0, abs=0.15)
    assert abs(columns["x"][star] - 90.3) < 0.05 and abs(columns["y"][star] - 70.6) < 0.05


def test_bad_pixels_and_bad_columns_do_not_break_a_frame() -> None:
    rng = np.random.default_rng(7)
    image = rng.normal(300.0, 4.0, (200, 240)).astype(np.float32)
    image[:, 101] += 60.0  # a bad column, 15 sigma per pixel
    image[20:30, 20:30] = np.nan
    values = ExtractSettings(detect_sigma=4.0, kernel_fwhm_px=2.5).completed()
    columns, info = extract_sources(image, values)
    assert info["columns_levelled"] == [101]
    assert info["sources"] <= 3
    assert not (
        (columns["x"] > 18) & (columns["x"] < 31) & (columns["y"] > 18) & (columns["y"] < 31)
    ).any()


def test_overflowing_frames_are_retried_with_a_higher_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(8)
    image = rng.normal(300.0, 4.0, (128, 128)).astype(np.float32)
    image[60:63, 60:63] += 200.0
    real = extract_module._sep_extract
    calls: list[float] = []

    def overflowing(*args: Any) -> Any:
        calls.append(args[-1])
        if len(calls) <= 2:
            raise Exception("internal pixel buffer full: The limit of 300000 active ...")
        return real(*args)

    monkeypatch.setattr(extract_module, "DEFAULT_PIXSTACK", 128 * 128)
    monkeypatch.setattr(extract_module, "_sep_extract", overflowing)
    values = ExtractSettings(detect_sigma=4.0, kernel_fwhm_px=2.5).completed()
    columns, info = extract_sources(image, values)
    assert calls == [4.0, 6.0, 9.0]
    assert info["threshold_sigma"] == 9.0
    assert len(info["retries"]) == 2 and "threshold raised" in info["retries"][0]
    assert info["sources"] >= 1


def test_settings_refuse_unknown_keys_and_fill_the_untuned_ones() -> None:
    with pytest.raises(ValueError, match="detect_sigmaa"):
        ExtractSettings.from_mapping({"detect_sigmaa": 3})
    with pytest.raises(ValueError, match="deblend_cont"):
        ExtractSettings.from_mapping({"deblend_cont": 2.0})
    settings = ExtractSettings.from_mapping({"detect_sigma": None, "min_area": 7})
    assert settings.detect_sigma is None and settings.min_area == 7
    completed = settings.completed(fallback_fwhm=2.5)
    assert completed.min_area == 7
    assert completed.kernel_fwhm_px == 2.5 and completed.detect_sigma == 4.0
    assert completed.aperture_radius_px == pytest.approx(2.0)
    assert ExtractSettings().completed().kernel_fwhm_px == 3.0
    doc = ExtractSettings.__doc__ or ""
    for f in fields(ExtractSettings):
        assert f"{f.name} :" in doc, f.name


def test_an_empty_chunk_writes_an_empty_catalogue(tmp_path: Path) -> None:
    table = Table({"file": ["a.fits"], "index": [0], "status": ["rejected"], "reason": ["x"]})
    out = tmp_path / "chunk_3.ecsv"
    catalogue = extract_frames([tmp_path / "a.fits"], table, {}, out)
    assert len(catalogue) == 0 and catalogue.colnames == list(EXTRACT_COLUMNS)
    assert len(read_catalogue(out)) == 0
    assert catalogue.meta["skipped"] == [{"file": "a.fits", "reason": "x"}]


def test_a_float_frame_among_integer_ones_knows_where_it_saturates(
    night: dict[str, Any], tmp_path: Path
) -> None:
    # The same frame stored as float32 with no SATURATE card: the reader cannot tell its
    # level, so the session's (from the check) marks its saturated stars as before.
    source = night["good"][0]
    frame = read_frame(source)
    data, header = frame.data, frame.header.copy()
    for key in ("SATURATE", "BZERO", "BSCALE", "DATAMAX"):
        header.remove(key, ignore_missing=True)
    as_float = tmp_path / source.name
    fits.writeto(as_float, data, header)
    assert not np.isfinite(read_frame(as_float).saturation_adu)
    table = night["table"].copy()
    table["saturation_adu"][table["file"] == source.name] = np.nan
    values, _ = resolve({"frames_per_job": 25}, night["tuned"]["extract"])
    floated = extract_frames([as_float], table, values, None)
    usual = night["catalogue"][night["catalogue"]["frame"] == source.name]
    flagged = (floated["flags"] & FLAG_SATURATED) > 0
    assert flagged.sum() > 0
    assert flagged.sum() == ((usual["flags"] & FLAG_SATURATED) > 0).sum()
