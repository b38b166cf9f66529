"""Tests of the check stage: bad frames rejected for the right reason, good frames kept,
offsets and calibration hints measured, on seeded synthetic star fields."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from spacepixels.check import CheckSettings, check_session, write_check

SHAPE = (320, 400)
"""(height, width) of the test frames: not square, to catch swapped axes."""

START = Time("2026-03-14T21:00:00", scale="utc")
EXPOSURE_S = 60.0
CADENCE_S = 70.0
PEDESTAL = 1000.0
SKY = 400.0
NOISE = 8.0


def _catalogue(seed: int = 7, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed star positions and fluxes (a field larger than the frame, for shifts).

    Counts grow as in the sky, about twice per magnitude (``N(>F) ~ F^-0.75``), from
    about the detection limit up.
    """
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    x = rng.uniform(-20, w + 20, n)
    y = rng.uniform(-20, h + 20, n)
    flux = np.minimum(300.0 * rng.uniform(0, 1, n) ** (-1 / 0.75), 2e5)
    return x, y, flux


def _render(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
    trail: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Gaussian stars (optionally trailed along ``trail`` px) on a zero image."""
    h, w = shape
    image = np.zeros(shape, dtype=np.float64)
    sigma = fwhm / 2.3548
    steps = 1 if trail == (0.0, 0.0) else 15
    half = int(math.ceil(4 * sigma + max(abs(trail[0]), abs(trail[1])) / 2)) + 1
    for xi, yi, fi in zip(x, y, flux, strict=True):
        x0, x1 = max(int(xi) - half, 0), min(int(xi) + half + 1, w)
        y0, y1 = max(int(yi) - half, 0), min(int(yi) + half + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        for t in np.linspace(-0.5, 0.5, steps) if steps > 1 else [0.0]:
            cx, cy = xi + t * trail[0], yi + t * trail[1]
            image[y0:y1, x0:x1] += (
                fi
                / steps
                / (2 * np.pi * sigma**2)
                * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
            )
    return image


def make_frame(
    path: Path,
    index: int,
    *,
    seed: int,
    shift: tuple[float, float] = (0.0, 0.0),
    fwhm: float = 2.8,
    trail: tuple[float, float] = (0.0, 0.0),
    sky: float = SKY,
    transparency: float = 1.0,
    pedestal: float = PEDESTAL,
    vignetting: float = 0.0,
    hot_pixels: np.ndarray | None = None,
    shape: tuple[int, int] = SHAPE,
    header_time: bool = True,
    extra_cards: dict[str, object] | None = None,
) -> Path:
    """Write one uint16 (BZERO 32768) frame of the fixed star field."""
    rng = np.random.default_rng(seed)
    x, y, flux = _catalogue()
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (
        ((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2
    )
    gain = 1.0 - vignetting * r2
    stars = _render(shape, x + shift[0], y + shift[1], flux * transparency, fwhm, trail)
    image = pedestal + (sky + stars) * gain + rng.normal(0, NOISE, shape)
    if hot_pixels is not None:
        image[hot_pixels[:, 1], hot_pixels[:, 0]] += 3000.0
    # A cosmic ray: a sharp pixel at a random place in every frame.
    image[rng.integers(5, h - 5), rng.integers(5, w - 5)] += 5000.0
    data = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    hdu = fits.PrimaryHDU(data)  # astropy writes uint16 as BZERO 32768
    if header_time:
        start = START + index * CADENCE_S * u.s
        hdu.header["DATE-OBS"] = start.isot
        hdu.header["EXPTIME"] = EXPOSURE_S
    for key, value in (extra_cards or {}).items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path


def make_session(folder: Path, n: int = 6, **per_frame: dict[int, dict]) -> list[Path]:
    """``n`` good frames, with keyword overrides for some: ``changes={2: {...}}``."""
    folder.mkdir(parents=True, exist_ok=True)
    changes = per_frame.get("changes", {})
    return [
        make_frame(folder / f"frame_{i:03d}.fits", i, seed=100 + i, **changes.get(i, {}))
        for i in range(n)
    ]


def rows_by_file(table: Table) -> dict[str, dict]:
    return {row["file"]: dict(zip(table.colnames, row, strict=True)) for row in table}


# --------------------------------------------------------------------------- settings


def test_settings_from_mapping_keeps_defaults_and_names_unknown_keys():
    settings = CheckSettings.from_mapping({"outlier_sigma": 4, "reference": "a.fits"})
    assert settings.outlier_sigma == 4
    assert settings.reference == "a.fits"
    assert settings.detect_sigma == CheckSettings().detect_sigma
    with pytest.raises(ValueError, match="outlier_sigmaa"):
        CheckSettings.from_mapping({"outlier_sigmaa": 4})
    with pytest.raises(ValueError, match="max_saturated_fraction"):
        CheckSettings.from_mapping({"max_saturated_fraction": 2})


def test_every_setting_is_documented():
    doc = CheckSettings.__doc__ or ""
    for f in fields(CheckSettings):
        assert f"{f.name} :" in doc, f.name


# --------------------------------------------------------------------------- good frames


def test_good_session_is_kept_in_time_order_with_offsets_measured(tmp_path):
    shifts = [(0.0, 0.0), (0.37, -0.21), (0.81, -0.45), (1.13, -0.62), (1.52, -0.95)]
    folder = tmp_path / "night"
    folder.mkdir()
    # Written in reverse name order of time, to check the table is sorted by time.
    paths = [
        make_frame(folder / f"z{9 - i}.fits", i, seed=10 + i, shift=shift)
        for i, shift in enumerate(shifts)
    ]
    table, summary = check_session(paths, CheckSettings())

    assert list(table["status"]) == ["ok"] * 5
    assert list(table["reason"]) == [""] * 5
    assert list(table["file"]) == [p.name for p in paths]
    assert list(table["index"]) == list(range(5))
    assert np.all(np.diff(table["mjd_mid"]) > 0)
    # The middle frame is the reference; a star at (x, y) there is at (x+dx, y+dy) here.
    assert summary["reference_frame"] == "z7.fits"
    ref = np.array(shifts[2])
    for row, shift in zip(table, shifts, strict=True):
        assert row["dx"] == pytest.approx(shift[0] - ref[0], abs=0.2)
        assert row["dy"] == pytest.approx(shift[1] - ref[1], abs=0.2)
    assert summary["hints"]["drift"]["aligned"] is True
    assert summary["aligned"] is True
    row = table[0]
    assert (row["width"], row["height"], row["bitpix"], row["colour"]) == (400, 320, 16, "mono")
    assert row["exposure_s"] == EXPOSURE_S
    assert row["time_source"] == "DATE-OBS+EXPTIME"
    assert row["date_obs"] == "2026-03-14T21:00:30.000"
    assert row["mjd_mid"] - row["mjd_start"] == pytest.approx(30.0 / 86400.0, abs=1e-8)
    assert row["background"] == pytest.approx(PEDESTAL + SKY, rel=0.01)
    assert row["noise"] == pytest.approx(NOISE, rel=0.15)
    assert row["fwhm"] == pytest.approx(2.8, rel=0.1)
    assert row["elongation"] == pytest.approx(1.0, abs=0.1)
    assert row["star_count"] > 100
    assert row["saturated_fraction"] == 0.0
    assert summary["counts"] == {"frames": 5, "ok": 5, "rejected": 0, "rejected_by_reason": {}}
    assert summary["shape"] == [320, 400]
    assert summary["time_span"]["duration_min"] == pytest.approx(4 * CADENCE_S / 60.0)
    assert summary["warnings"] == []


def test_small_sessions_keep_good_frames_with_ordinary_scatter(tmp_path):
    # Three frames with the scatter of a real night: sky, seeing and transparency vary.
    changes = {
        0: {"sky": 380.0, "fwhm": 2.6, "transparency": 1.0},
        1: {"sky": 430.0, "fwhm": 3.1, "transparency": 0.85},
        2: {"sky": 400.0, "fwhm": 2.8, "transparency": 0.95, "trail": (1.0, 0.5)},
    }
    paths = make_session(tmp_path / "tiny", 3, changes=changes)
    table, summary = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["ok"] * 3, list(table["reason"])
    assert summary["counts"]["ok"] == 3


# --------------------------------------------------------------------------- bad frames


def test_unreadable_and_truncated_frames_are_rejected_with_the_reader_message(tmp_path):
    paths = make_session(tmp_path / "s", 5)
    garbage = tmp_path / "s" / "garbage.fits"
    garbage.write_text("this is not a FITS file\n" * 200)
    truncated = tmp_path / "s" / "truncated.fits"
    raw = paths[0].read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    empty = tmp_path / "s" / "empty.fits"
    empty.write_bytes(b"")
    table, summary = check_session([*paths, garbage, truncated, empty], CheckSettings())
    rows = rows_by_file(table)
    for name in ("garbage.fits", "truncated.fits", "empty.fits"):
        assert rows[name]["status"] == "rejected"
        assert rows[name]["reason"].startswith("unreadable: ")
        assert "reason_kind" in rows[name] and rows[name]["reason_kind"] == "unreadable"
        assert str(tmp_path) not in rows[name]["reason"]
    assert "truncated" in rows["truncated.fits"]["reason"].lower()
    assert "empty" in rows["empty.fits"]["reason"].lower()
    # Unreadable frames have no time: they come last, by name.
    assert list(table["file"][-3:]) == ["empty.fits", "garbage.fits", "truncated.fits"]
    assert all(rows[p.name]["status"] == "ok" for p in paths)
    assert summary["counts"]["rejected_by_reason"] == {"unreadable": 3}


def test_frame_of_other_dimensions_is_rejected(tmp_path):
    paths = make_session(tmp_path / "s", 5, changes={3: {"shape": (200, 300)}})
    table, _ = check_session(paths, CheckSettings())
    rows = rows_by_file(table)
    assert rows["frame_003.fits"]["status"] == "rejected"
    assert rows["frame_003.fits"]["reason"] == "dimensions 300x200 unlike the session's 400x320"
    assert [r["status"] for n, r in rows.items() if n != "frame_003.fits"] == ["ok"] * 4


def _write_float(path: Path, data: np.ndarray, index: int) -> Path:
    hdu = fits.PrimaryHDU(data.astype(np.float32))
    hdu.header["DATE-OBS"] = (START + index * CADENCE_S * u.s).isot
    hdu.header["EXPTIME"] = EXPOSURE_S
    hdu.writeto(path)
    return path


def test_constant_and_non_finite_frames_are_rejected(tmp_path):
    paths = make_session(tmp_path / "s", 5)
    folder = tmp_path / "s"
    constant = _write_float(folder / "constant.fits", np.full(SHAPE, 1000.0), 5)
    mostly_nan = fits.getdata(paths[1]).astype(np.float32)
    mostly_nan[: int(SHAPE[0] * 0.8)] = np.nan
    mostly_nan[-5:, :10] = np.inf
    nan_frame = _write_float(folder / "mostly_nan.fits", mostly_nan, 6)
    all_nan = _write_float(folder / "all_nan.fits", np.full(SHAPE, np.nan), 7)
    some_nan = fits.getdata(paths[2]).astype(np.float32)
    some_nan[:10] = np.nan  # a few NaN rows (as after a registration) are fine
    partial = _write_float(folder / "some_nan.fits", some_nan, 8)
    table, summary = check_session([*paths, constant, nan_frame, all_nan, partial], CheckSettings())
    rows = rows_by_file(table)
    assert rows["constant.fits"]["status"] == "rejected"
    assert rows["constant.fits"]["reason"] == "constant frame: every pixel is 1000 ADU"
    assert rows["mostly_nan.fits"]["reason_kind"] == "non-finite"
    assert rows["mostly_nan.fits"]["reason"].startswith("non-finite: 8")
    assert rows["all_nan.fits"]["reason_kind"] == "non-finite"
    assert rows["some_nan.fits"]["status"] == "ok", rows["some_nan.fits"]["reason"]
    assert all(rows[p.name]["status"] == "ok" for p in paths)
    assert summary["counts"]["rejected_by_reason"] == {"constant": 1, "non-finite": 2}


@pytest.mark.parametrize(
    ("change", "kind", "words"),
    [
        ({"transparency": 0.3, "sky": 1400.0}, "cloud", "cloud or glow: background"),
        ({"transparency": 0.25}, "cloud", "stars"),
        ({"trail": (9.0, 4.0)}, "trailing", "trailing: elongation"),
        ({"fwhm": 6.5}, "defocus", "defocus or poor seeing: FWHM"),
    ],
    ids=["glow", "thin-cloud", "trailing", "defocus"],
)
def test_outlier_frame_is_rejected_for_the_right_reason(tmp_path, change, kind, words):
    paths = make_session(tmp_path / "s", 5, changes={1: change})
    table, summary = check_session(paths, CheckSettings())
    rows = rows_by_file(table)
    bad = rows["frame_001.fits"]
    assert bad["status"] == "rejected"
    assert kind in bad["reason_kind"].split(",")
    assert words in bad["reason"]
    assert [r["status"] for n, r in rows.items() if n != "frame_001.fits"] == ["ok"] * 4
    assert summary["counts"]["rejected_by_reason"][kind] == 1


def test_reasons_carry_the_numbers(tmp_path):
    paths = make_session(tmp_path / "s", 5, changes={2: {"sky": 2400.0}, 4: {"trail": (9.0, 0)}})
    table, _ = check_session(paths, CheckSettings())
    rows = rows_by_file(table)
    reason = rows["frame_002.fits"]["reason"]
    assert reason.startswith("cloud or glow: background 34")
    assert "sigma above the session median 140" in reason
    assert rows["frame_004.fits"]["reason"].startswith("trailing: elongation ")
    assert re.fullmatch(
        r"trailing: elongation \d\.\d\d vs session 1\.0\d", rows["frame_004.fits"]["reason"]
    )


def test_heavily_saturated_frame_is_rejected(tmp_path):
    paths = make_session(tmp_path / "s", 5)
    data = fits.getdata(paths[3]).astype(np.int64)
    data[100:160, 100:200] = 65535  # a headlight: 4.7% of the frame at the top of the range
    hdr = fits.getheader(paths[3])
    paths[3].unlink()
    fits.PrimaryHDU(data.astype(np.uint16), header=hdr).writeto(paths[3])
    table, summary = check_session(paths, CheckSettings())
    rows = rows_by_file(table)
    assert rows["frame_003.fits"]["status"] == "rejected"
    assert rows["frame_003.fits"]["reason_kind"].split(",")[0] == "saturation"
    assert rows["frame_003.fits"]["reason"] == (
        "heavy saturation: 4.7% of pixels saturated (session median 0.0%, limit 1.0% more)"
    )
    assert rows["frame_003.fits"]["saturated_fraction"] == pytest.approx(6000 / (320 * 400))
    assert summary["counts"]["ok"] == 4


def test_a_star_saturating_in_every_frame_rejects_none(tmp_path):
    paths = make_session(tmp_path / "s", 4)
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            data = hdul[0].data
            data[150:190, 180:230] = 65535  # a bright star's core: 1.6% of the pixels
            hdul[0].data = data
    table, summary = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["ok"] * 4
    assert table["saturated_fraction"][0] == pytest.approx(2000 / (320 * 400))
    assert any("saturated (median)" in w for w in summary["warnings"])


def test_saturation_below_the_type_maximum_is_found_as_a_plateau(tmp_path):
    # A 14-bit camera writing 16-bit files: its pixels top out at 16383.
    paths = make_session(tmp_path / "s", 5, changes={i: {"pedestal": 100.0} for i in range(5)})
    for i, path in enumerate(paths):
        with fits.open(path, mode="update") as hdul:
            data = np.minimum(hdul[0].data, 16383)
            if i == 2:
                data[0:120, :] = 16383  # twilight or a headlight in one frame
            hdul[0].data = data
    table, _ = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["ok", "ok", "rejected", "ok", "ok"]
    assert table["reason_kind"][2].split(",")[0] == "saturation"


def test_three_frame_session_rejects_its_one_glowing_frame(tmp_path):
    paths = make_session(tmp_path / "s", 3, changes={0: {"sky": 1400.0, "transparency": 0.5}})
    table, _ = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["rejected", "ok", "ok"]
    assert table["reason_kind"][0] == "cloud"


# --------------------------------------------------------------------------- time


def test_frames_without_time_are_kept_with_a_warning(tmp_path):
    changes = {0: {"header_time": False}, 3: {"header_time": False}}
    changes[4] = {"extra_cards": {"DATE-OBS": "yesterday evening"}, "header_time": False}
    paths = make_session(tmp_path / "s", 5, changes=changes)
    table, summary = check_session(paths, CheckSettings())
    rows = rows_by_file(table)
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["frame_000.fits"]["time_source"] == "none"
    assert math.isnan(rows["frame_000.fits"]["mjd_mid"])
    assert math.isnan(rows["frame_000.fits"]["exposure_s"])
    assert rows["frame_000.fits"]["date_obs"] == ""
    assert rows["frame_004.fits"]["time_source"].startswith("unreadable: DATE-OBS")
    # Linked by frame order: every frame in file-name order (the capture order).
    assert list(table["file"]) == [
        "frame_000.fits",
        "frame_001.fits",
        "frame_002.fits",
        "frame_003.fits",
        "frame_004.fits",
    ]
    warning = summary["warnings"][0]
    assert warning.startswith("3 frames have no usable time: they will be linked by frame order")
    assert "frame_000.fits" in warning and "frame_004.fits" in warning


# --------------------------------------------------------------------------- drift


def test_unaligned_session_is_reported(tmp_path):
    changes = {i: {"shift": (4.0 * i, 1.5 * i)} for i in range(5)}
    paths = make_session(tmp_path / "s", 5, changes=changes)
    table, summary = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["ok"] * 5
    drift = summary["hints"]["drift"]
    assert drift["aligned"] is False
    assert summary["aligned"] is False
    assert drift["max_px"] == pytest.approx(math.hypot(8.0, 3.0), abs=0.2)
    assert drift["total_px"] == pytest.approx(math.hypot(16.0, 6.0), abs=0.2)
    assert drift["rate_px_per_min"] == pytest.approx(
        math.hypot(16.0, 6.0) / (4 * 70 / 60), rel=0.02
    )
    assert "not aligned" in drift["message"]
    assert any("not aligned" in w for w in summary["warnings"])
    assert table["dx"][0] == pytest.approx(-8.0, abs=0.2)
    assert table["dy"][4] == pytest.approx(3.0, abs=0.2)


def test_reference_can_be_named_and_must_exist(tmp_path):
    paths = make_session(tmp_path / "s", 4, changes={i: {"shift": (0.5 * i, 0)} for i in range(4)})
    table, summary = check_session(paths, CheckSettings(reference="frame_000.fits"))
    assert summary["reference_frame"] == "frame_000.fits"
    assert table["dx"][3] == pytest.approx(1.5, abs=0.2)
    with pytest.raises(ValueError, match="nope.fits"):
        check_session(paths, CheckSettings(reference="nope.fits"))


# --------------------------------------------------------------------------- hints


def test_uncalibrated_frames_raise_pedestal_flat_and_dark_hints(tmp_path):
    rng = np.random.default_rng(3)
    hot = np.stack([rng.integers(5, SHAPE[1] - 5, 40), rng.integers(5, SHAPE[0] - 5, 40)], 1)
    change = {"hot_pixels": hot, "vignetting": 0.3}
    paths = make_session(tmp_path / "s", 5, changes=dict.fromkeys(range(5), change))
    table, summary = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["ok"] * 5
    hints = summary["hints"]
    assert hints["bias_pedestal"]["present"] is True
    assert hints["bias_pedestal"]["message"].startswith("frames carry a bias pedestal")
    assert hints["vignetting"]["present"] is True
    assert "darker than the centre: no flat applied?" in hints["vignetting"]["message"]
    assert hints["hot_pixels"]["present"] is True
    # Every injected hot pixel recurs; the cosmic rays, one per frame, do not.
    assert 36 <= hints["hot_pixels"]["count"] <= 40
    found = {tuple(xy) for xy in hints["hot_pixels"]["examples_xy"]}
    assert found <= {tuple(xy) for xy in hot.tolist()}


def test_calibrated_frames_raise_no_hint(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    paths = []
    for i in range(5):
        tmp = make_frame(tmp_path / f"raw{i}.fits", i, seed=i, pedestal=0.0)
        data = fits.getdata(tmp).astype(np.float32) - np.float32(SKY) + np.float32(30.0)
        paths.append(_write_float(folder / f"cal{i}.fits", data, i))
    _, summary = check_session(paths, CheckSettings())
    hints = summary["hints"]
    assert hints["bias_pedestal"]["present"] is False
    assert hints["vignetting"]["present"] is False
    assert hints["hot_pixels"]["present"] is False
    assert hints["hot_pixels"]["count"] == 0


def test_calibration_cards_silence_the_hints(tmp_path):
    rng = np.random.default_rng(4)
    hot = np.stack([rng.integers(5, SHAPE[1] - 5, 30), rng.integers(5, SHAPE[0] - 5, 30)], 1)
    cards = {"BIASFRM": "bias.fits", "DARKFRM": "dark.fits", "FLATFRM": "flat.fits"}
    change = {"hot_pixels": hot, "vignetting": 0.3, "extra_cards": cards}
    paths = make_session(tmp_path / "s", 4, changes=dict.fromkeys(range(4), change))
    _, summary = check_session(paths, CheckSettings())
    for name in ("bias_pedestal", "vignetting", "hot_pixels"):
        assert summary["hints"][name]["present"] is False
        assert "the headers record" in summary["hints"][name]["message"]


# --------------------------------------------------------------------------- files


def test_written_files_are_strict_and_complete(tmp_path):
    paths = make_session(tmp_path / "s", 4, changes={0: {"header_time": False}})
    (tmp_path / "s" / "notes.txt").write_text("seeing was poor")
    table, summary = check_session(paths, CheckSettings(), other_files=["notes.txt"], progress=True)
    out = tmp_path / "results" / "check"
    write_check(table, summary, out / "frames.ecsv", out / "summary.json")
    assert sorted(p.name for p in out.iterdir()) == ["frames.ecsv", "summary.json"]
    text = (out / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert loaded["skipped_files"] == ["notes.txt"]
    assert loaded["time_span"]["first_mjd"] is not None
    back = Table.read(out / "frames.ecsv", format="ascii.ecsv")
    assert back.colnames[:21] == [
        "file", "index", "date_obs", "mjd_start", "mjd_mid", "exposure_s", "time_source",
        "width", "height", "bitpix", "colour", "background", "noise", "star_count", "fwhm",
        "elongation", "dx", "dy", "saturated_fraction", "status", "reason",
    ]  # fmt: skip
    assert str(back["fwhm"].unit) == "pix"
    assert str(back["background"].unit) == "adu"
    assert list(back["file"]) == list(table["file"])
    assert math.isnan(back["mjd_mid"][0])  # untimed frame_000: the rows in file-name order


def test_empty_session_gives_an_empty_table(tmp_path):
    table, summary = check_session([], CheckSettings())
    assert len(table) == 0
    assert summary["counts"]["frames"] == 0
    write_check(table, summary, tmp_path / "f.ecsv", tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["reference_frame"] is None


# --------------------------------------------------------------------------- real data

from shared_data import REAL_FRAME  # noqa: E402


def test_real_frame_copies_keep_their_legacy_time(tmp_path):
    if not REAL_FRAME.exists():
        pytest.skip(f"real frame {REAL_FRAME} is absent")
    folder = tmp_path / "real"
    folder.mkdir()
    paths = [folder / f"long_{i}.fits" for i in range(3)]
    for path in paths:
        shutil.copyfile(REAL_FRAME, path)
    table, summary = check_session(paths, CheckSettings())
    assert list(table["status"]) == ["ok"] * 3
    assert list(table["date_obs"]) == ["2002-07-26T19:37:07.000"] * 3
    assert table["mjd_mid"][0] == pytest.approx(Time("2002-07-26T19:37:07").mjd, abs=1e-8)
    assert table["time_source"][0] == "DATE-OBS+TIME-OBS+EXPTIME"
    assert np.allclose(table["dx"], 0.0, atol=1e-6) and np.allclose(table["dy"], 0.0, atol=1e-6)
    # The header records bias and flat frames: no pedestal or flat hint.
    assert summary["hints"]["bias_pedestal"]["present"] is False
    assert summary["hints"]["vignetting"]["present"] is False
    assert any("share their mid-exposure time" in w for w in summary["warnings"])


# --------------------------------------------------------------------------- synthetic night


@pytest.fixture(scope="module")
def synth_night(tmp_path_factory):
    synth = pytest.importorskip("spacepixels.synth")
    out = tmp_path_factory.mktemp("synth")
    truth = synth.make_session(out, "2026-03-14/M31", seed=11, n_frames=8, shape=(384, 512))
    paths = sorted((out / "2026-03-14" / "M31").glob("*.fits"))
    table, summary = check_session(paths, CheckSettings())
    return truth, table, summary, paths


def test_two_workers_give_the_same_answer(synth_night):
    _, table, summary, paths = synth_night
    parallel, parallel_summary = check_session(paths, CheckSettings(), workers=2)
    assert parallel.pformat(max_lines=-1, max_width=-1) == table.pformat(max_lines=-1, max_width=-1)
    assert parallel_summary == summary


def test_synthetic_night_rejects_only_the_cloudy_frame(synth_night):
    truth, table, summary, _ = synth_night
    rows = rows_by_file(table)
    assert truth["cloudy_frames"]
    for name, row in rows.items():
        if name in truth["cloudy_frames"]:
            assert row["status"] == "rejected"
            assert row["reason"].startswith("cloud or glow: ")
        else:
            assert row["status"] == "ok", (name, row["reason"])
    assert summary["counts"]["rejected_by_reason"] == {"cloud": len(truth["cloudy_frames"])}


def test_synthetic_night_offsets_follow_the_jitter(synth_night):
    truth, table, summary, _ = synth_night
    jitter = {f["file"]: (f["jitter_dx"], f["jitter_dy"]) for f in truth["frames"]}
    ref = jitter[summary["reference_frame"]]
    for row in table[table["status"] == "ok"]:
        dx, dy = jitter[row["file"]]
        assert row["dx"] == pytest.approx(dx - ref[0], abs=0.2)
        assert row["dy"] == pytest.approx(dy - ref[1], abs=0.2)
    assert summary["hints"]["drift"]["aligned"] is True


def test_synthetic_night_is_recognised_as_uncalibrated(synth_night):
    truth, table, summary, _ = synth_night
    hints = summary["hints"]
    assert hints["bias_pedestal"]["present"] is True
    assert hints["bias_pedestal"]["darkest_adu"] > truth["camera"]["pedestal_adu"]
    assert hints["vignetting"]["present"] is True
    assert hints["hot_pixels"]["present"] is True
    injected = {tuple(xy) for xy in truth["hot_pixels"]}
    found = {tuple(xy) for xy in hints["hot_pixels"]["examples_xy"]}
    assert found <= injected
    assert hints["hot_pixels"]["count"] >= len(injected) // 2
    times = {f["file"]: f["mjd_mid"] for f in truth["frames"]}
    for row in table:
        assert row["mjd_mid"] == pytest.approx(times[row["file"]], abs=1e-7)
