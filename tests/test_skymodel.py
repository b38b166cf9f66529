"""The sky model keeps what stands still (stars, hot pixels, the bad column) and not what
moves, in strips of bounded memory that give the same stack as the whole frames would."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from spacepixels import synth
from spacepixels.check import CheckSettings, check_session
from spacepixels.frames import is_frame_name, read_frame
from spacepixels.skymodel import SKY_FILES, SkySettings, model_sky
from spacepixels.synth import ObjectSpec

SHAPE = (512, 576)
N_FRAMES = 13
MEMORY_MB = 2
"""Small enough that the stack takes several strips."""


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A checked session with a bright mover, and its sky model computed in strips."""
    root = tmp_path_factory.mktemp("sky")
    truth = synth.make_session(
        root,
        "2026-03-14/M13",
        seed=21,
        n_frames=N_FRAMES,
        shape=SHAPE,
        objects=[ObjectSpec("mover", snr=30.0, rate_px_per_frame=4.0, direction_deg=20.0)],
    )
    paths = sorted(p for p in (root / "2026-03-14/M13").iterdir() if is_frame_name(p.name))
    table, _ = check_session(paths, CheckSettings())
    good = [paths[0].parent / name for name in table["file"][table["status"] == "ok"]]
    tuned = {"measured": {"fwhm_px": float(np.median([f["fwhm"] for f in truth["frames"]]))}}
    out = root / "sky"
    summary = model_sky(good, table, tuned, SkySettings(memory_mb=MEMORY_MB), out)
    return {"truth": truth, "table": table, "good": good, "out": out, "summary": summary}


def _levels(night: dict[str, Any]) -> np.ndarray:
    table: Table = night["table"]
    by_name = dict(zip(table["file"], table["background"], strict=True))
    return np.array([by_name[p.name] for p in night["good"]], dtype=np.float32)


def test_strips_give_the_median_of_the_whole_frames(night: dict[str, Any]) -> None:
    summary = night["summary"]
    n = len(night["good"])
    assert summary["n_frames"] == n
    assert summary["n_strips"] > 1
    assert n * summary["strip_rows"] * SHAPE[1] * 4 <= MEMORY_MB * 2**20
    frames = np.stack([read_frame(p).data for p in night["good"]])
    frames -= _levels(night)[:, None, None]
    stack = fits.getdata(night["out"] / "stack.fits")
    assert stack.dtype == np.dtype(">f4")
    np.testing.assert_allclose(stack, np.median(frames, axis=0), atol=1e-3)
    third = max(1, round(n / 3))
    np.testing.assert_allclose(
        fits.getdata(night["out"] / "early.fits"), np.median(frames[:third], axis=0), atol=1e-3
    )
    np.testing.assert_allclose(
        fits.getdata(night["out"] / "late.fits"), np.median(frames[-third:], axis=0), atol=1e-3
    )
    assert summary["early_frames"] == [p.name for p in night["good"][:third]]


def test_stack_sky_is_near_zero_and_quieter_than_a_frame(night: dict[str, Any]) -> None:
    summary = night["summary"]
    table: Table = night["table"]
    frame_noise = float(np.median(table["noise"][table["status"] == "ok"]))
    assert abs(summary["stack_background_adu"]) < 0.5 * frame_noise
    # sep's RMS of the stack: below a frame's, though the faint stars the stack reveals
    # in this crowded field keep it above 1.25 / sqrt(n) of it.
    assert summary["stack_noise_adu"] < frame_noise


def test_stack_holds_the_stars_and_not_the_mover(night: dict[str, Any]) -> None:
    stack = fits.getdata(night["out"] / "stack.fits").astype(np.float64)
    mask = fits.getdata(night["out"] / "stationary_mask.fits")
    levels = _levels(night)
    (mover,) = night["truth"]["objects"]
    index = {p.name: i for i, p in enumerate(night["good"])}
    kept = []
    for pos in mover["positions"]:
        if pos["frame"] not in index or pos["peak_snr"] < 10:
            continue
        frame = read_frame(night["good"][index[pos["frame"]]]).data - levels[index[pos["frame"]]]
        x, y = int(round(pos["x"])), int(round(pos["y"]))
        box = (slice(y - 1, y + 2), slice(x - 1, x + 2))
        # What the frame has above the stack there is the mover, whole.
        kept.append(float((frame[box] - stack[box]).max()) / pos["peak_adu"])
    assert len(kept) >= N_FRAMES - 3
    assert np.median(kept) == pytest.approx(1.0, abs=0.25)
    # The stars are in the stack: a frame's brightest pixels are there, and in the mask.
    frame = read_frame(night["good"][0]).data - levels[0]
    bright = frame > np.percentile(frame, 99.9)
    assert np.median(stack[bright] / frame[bright]) == pytest.approx(1.0, abs=0.3)
    assert mask[bright].mean() > 0.95
    fraction = night["summary"]["mask_fraction"]
    assert 0.005 < fraction < 0.5
    assert fraction == pytest.approx(mask.mean(), abs=1e-6)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


def test_defects_hold_the_hot_pixels_and_the_bad_column(night: dict[str, Any]) -> None:
    defects = fits.getdata(night["out"] / "defects.fits")
    truth = night["truth"]
    hot = np.array(truth["hot_pixels"])
    found = (defects[hot[:, 1], hot[:, 0]] & 1).astype(bool)
    assert found.mean() >= 0.95
    hot_map = (defects & 1).astype(bool)
    hot_map[hot[:, 1], hot[:, 0]] = False
    assert hot_map.sum() <= 0.05 * len(hot)
    (column,) = truth["bad_columns"]
    assert (defects[:, column] & 2).all()
    assert not (defects[:, column - 1] & 2).any() and not (defects[:, column + 1] & 2).any()
    summary = night["summary"]
    assert summary["bad_columns"] == [column]
    assert summary["bad_column_offsets_adu"][0] == pytest.approx(
        truth["bad_column_offsets_adu"][0], rel=0.1
    )
    assert summary["hot_pixel_count"] == int((defects & 1).sum())
    # The bad column is in the defect map, not in the stationary mask.
    mask = fits.getdata(night["out"] / "stationary_mask.fits")
    assert mask[:, column].mean() < 0.5


def test_every_file_is_written_and_described(night: dict[str, Any]) -> None:
    out: Path = night["out"]
    assert sorted(p.name for p in out.iterdir()) == sorted(SKY_FILES)
    on_disk = json.loads((out / "sky.json").read_text())
    assert on_disk == json.loads(json.dumps(night["summary"]))
    for key in ("n_frames", "strip_rows", "mask_fraction", "hot_pixel_count", "bad_columns"):
        assert key in on_disk
    sources = Table.read(out / "stationary_sources.ecsv")
    assert on_disk["stationary_sources"] == len(sources) > 20


def test_two_threads_give_the_same_model(night: dict[str, Any], tmp_path: Path) -> None:
    threaded = tmp_path / "threaded"
    model_sky(
        night["good"], night["table"], None, SkySettings(memory_mb=MEMORY_MB), threaded, threads=2
    )
    for name in ("stack.fits", "early.fits", "late.fits", "reference.fits", "defects.fits"):
        np.testing.assert_array_equal(
            fits.getdata(threaded / name), fits.getdata(night["out"] / name), err_msg=name
        )


def test_the_reference_is_the_stack_less_its_sky(night: dict[str, Any]) -> None:
    """What extraction subtracts: the stack with the sky near zero, the stars in it, and
    the noise it adds to a difference written beside it."""
    reference = fits.getdata(night["out"] / "reference.fits").astype(np.float64)
    stack = fits.getdata(night["out"] / "stack.fits").astype(np.float64)
    noise = float(fits.getheader(night["out"] / "reference.fits")["NOISE"])
    frame_noise = float(np.median(night["table"]["noise"]))
    assert 0 < noise < frame_noise
    assert abs(float(np.median(reference))) < noise
    assert np.corrcoef(reference.ravel(), stack.ravel())[0, 1] > 0.99


def test_a_strip_of_one_row_still_works(night: dict[str, Any], tmp_path: Path) -> None:
    good = night["good"][:4]
    summary = model_sky(good, night["table"], None, SkySettings(memory_mb=1), tmp_path)
    assert summary["n_frames"] == 4
    assert summary["strip_rows"] == min(SHAPE[0], 2**20 // (4 * SHAPE[1] * 4))


def test_settings_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="memory_gb"):
        SkySettings.from_mapping({"memory_gb": 1})
    with pytest.raises(ValueError, match="early_late_fraction"):
        SkySettings.from_mapping({"early_late_fraction": 0.9})
    assert SkySettings.from_mapping({"mask_sigma": None}).mask_sigma == SkySettings().mask_sigma
    doc = SkySettings.__doc__ or ""
    for f in fields(SkySettings):
        assert f"{f.name} :" in doc, f.name


def test_no_frames_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no good frames"):
        model_sky([], None, None, SkySettings(), tmp_path)


def test_float_frames_with_blank_areas_stack_without_nan(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    paths = []
    for i in range(5):
        data = rng.normal(200.0, 5.0, (96, 80)).astype(np.float32)
        data[40:44, 30:34] += 500.0  # a star, in every frame
        if i == 2:
            data[:10, :10] = np.nan
        path = tmp_path / f"f{i}.fits"
        fits.PrimaryHDU(data).writeto(path)
        paths.append(path)
    summary = model_sky(paths, None, None, SkySettings(), tmp_path / "sky")
    stack = fits.getdata(tmp_path / "sky" / "stack.fits")
    assert np.isfinite(stack).all()
    assert stack[41, 31] > 400.0 and abs(float(np.median(stack))) < 5.0
    mask = fits.getdata(tmp_path / "sky" / "stationary_mask.fits")
    assert mask[41, 31] == 1 and summary["mask_fraction"] < 0.1


def test_frames_named_in_any_script_make_a_sky_model(night: dict[str, Any], tmp_path: Path) -> None:
    # A FITS header holds printable ASCII only; the names go there escaped, and as they
    # are into sky.json.
    names = ["Mond über Málaga 月.fits", "Mond über Málaga 月 (2).fits"]
    renamed = []
    for name, source in zip(names, night["good"][:2], strict=True):
        target = tmp_path / "in" / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(source.read_bytes())
        renamed.append(target)
    renamed += night["good"][2:]
    table = night["table"].copy()
    table["file"] = [
        {p.name: r.name for p, r in zip(night["good"], renamed, strict=True)}.get(str(f), str(f))
        for f in table["file"]
    ]
    summary = model_sky(renamed, table, {}, SkySettings(memory_mb=MEMORY_MB), tmp_path / "sky")
    assert summary["n_frames"] == len(renamed)
    first = fits.getheader(tmp_path / "sky" / "early.fits")["FIRST"]
    assert first == "Mond \\xfcber M\\xe1laga \\u6708.fits"
    info = json.loads((tmp_path / "sky" / "sky.json").read_text(encoding="utf-8"))
    assert names[0] in json.dumps(info, ensure_ascii=False)
