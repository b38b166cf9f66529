"""The synthetic night generator: what a user of its frames and its truth would check.

The truth must be the truth: the injected objects are where it says, at the S/N it says;
the defects stay put; the cloudy frame looks cloudy; every variant is the file it claims to
be; and the same seed writes the same bytes.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from numpy.typing import NDArray
from scipy import ndimage

from spacepixels import cli, synth
from spacepixels.synth import ObjectSpec

SHAPE = (200, 256)
N_FRAMES = 10

OBJECTS = [
    ObjectSpec("mover", snr=20.0, rate_px_per_frame=2.0, id="bright"),
    ObjectSpec("mover", snr=15.0, rate_px_per_frame=6.0, direction_deg=10.0, id="fast"),
    ObjectSpec("slow_mover", snr=15.0, rate_px_per_frame=0.3),
    ObjectSpec("streak", snr=20.0),
    ObjectSpec("streak_track", snr=20.0, n_frames=3, length_px=40.0),
    ObjectSpec("flash", snr=30.0),
]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("session")
    truth = synth.make_session(
        root,
        "2026-03-14/M31",
        seed=21,
        n_frames=N_FRAMES,
        shape=SHAPE,
        objects=OBJECTS,
        exptime=120.0,
    )
    return root / "2026-03-14" / "M31", truth


def _frames(folder: Path, truth: dict) -> list[NDArray[np.float64]]:
    return [fits.getdata(folder / f["file"]).astype(np.float64) for f in truth["frames"]]


def _noise(truth: dict, frame: dict) -> float:
    """Background noise (ADU) of a frame, at its centre (good to the gradient's few %)."""
    camera = truth["camera"]
    sky = frame["sky_adu"]
    return math.sqrt(sky / camera["gain_e_per_adu"] + camera["read_noise_adu"] ** 2)


def _local_background(image: NDArray[np.float64], x: float, y: float, r: int = 12) -> float:
    ix, iy = round(x), round(y)
    box = image[max(0, iy - r) : iy + r + 1, max(0, ix - r) : ix + r + 1]
    return float(np.median(box))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    options = dict(nights=2, sessions_per_night=(2, 1), n_frames=3, shape=(64, 96))
    options["variant"] = ["uint16", "fz", "bayer"]
    synth.make_night_tree(tmp_path / "a", seed=5, **options)
    synth.make_night_tree(tmp_path / "b", seed=5, **options)
    synth.make_night_tree(tmp_path / "c", seed=6, **options)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(a) == 3 * 3 + 1
    assert a == b
    assert a["truth.json"] != c["truth.json"]
    shared = set(a) & set(c)
    assert not any(a[name] == c[name] for name in shared)


def test_layout_and_truth_beside_the_tree(tmp_path: Path) -> None:
    truth_path = synth.make_night_tree(
        tmp_path, seed=2, nights=2, sessions_per_night=2, n_frames=3, shape=(48, 64)
    )
    assert truth_path == tmp_path / "truth.json"
    assert not list((tmp_path / "nights").rglob("*.json"))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    truth = synth.read_truth(truth_path)
    assert truth["schema"] == synth.TRUTH_SCHEMA and truth["frames_root"] == "nights"
    assert [s.split("/")[0] for s in truth["sessions"]] == ["2026-03-14"] * 2 + ["2026-03-15"] * 2
    for session_id, session in truth["sessions"].items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}/[A-Z0-9]+", session_id)
        target = session_id.split("/")[1]
        names = sorted(p.name for p in (tmp_path / "nights" / session_id).iterdir())
        assert names == [f"{target}_{k:04d}.fits" for k in (1, 2, 3)]
        assert [f["file"] for f in session["frames"]] == names
        # Sessions of one night follow each other in the evening (UTC).
        start = datetime.fromisoformat(session["frames"][0]["date_obs"])
        assert start.date().isoformat() == session_id[:10] and 19 <= start.hour <= 23
    # An existing tree is not replaced unless asked, and then only a synthetic one.
    with pytest.raises(FileExistsError):
        synth.make_night_tree(tmp_path, seed=2, nights=1, n_frames=2, shape=(48, 64))
    synth.make_night_tree(tmp_path, seed=2, nights=1, n_frames=2, shape=(48, 64), overwrite=True)
    assert len(list((tmp_path / "nights").rglob("*.fits"))) == 2


def test_truth_schema_times_and_gap(session: tuple[Path, dict]) -> None:
    folder, truth = session
    assert truth["session_id"] == "2026-03-14/M31" and truth["shape"] == list(SHAPE)
    assert {o["kind"] for o in truth["objects"]} == set(synth.OBJECT_KINDS)
    frame_keys = {"file", "date_obs", "mjd_start", "mjd_mid", "exptime", "jitter_dx"}
    frame_keys |= {"jitter_dy", "fwhm", "elongation", "degraded", "variant"}
    for frame in truth["frames"]:
        assert frame_keys <= set(frame)
        header = fits.getheader(folder / frame["file"])
        assert header["DATE-OBS"] == frame["date_obs"] and header["EXPTIME"] == 120.0
        start = datetime.fromisoformat(frame["date_obs"])
        mjd = (start - datetime(1858, 11, 17)) / timedelta(days=1)
        assert frame["mjd_start"] == pytest.approx(mjd, abs=1e-8)
        assert frame["mjd_mid"] - frame["mjd_start"] == pytest.approx(60.0 / 86400.0, abs=1e-8)
        assert 0.0 < abs(frame["jitter_dx"]) + abs(frame["jitter_dy"]) <= 1.0
        assert 1.8 <= frame["fwhm"] <= 4.5 and 1.0 <= frame["elongation"] <= 1.3
    starts = np.array([f["mjd_start"] for f in truth["frames"]]) * 86400.0
    steps = np.diff(starts)
    gap = truth["gap"]
    assert steps[gap["after_index"]] >= 120.0 + 3 * 120.0
    regular = np.delete(steps, gap["after_index"])
    assert np.all((regular > 120.0) & (regular < 126.0))
    for obj in truth["objects"]:
        assert {"id", "kind", "rate_px_per_frame", "rate_px_per_min", "direction_deg"} <= set(obj)
        for pos in obj["positions"]:
            assert {"frame", "x", "y", "peak_snr"} <= set(pos)
            if obj["kind"] in ("streak", "streak_track"):
                assert {"x0", "y0", "x1", "y1"} <= set(pos)
    assert truth["cloudy_frames"] == [f["file"] for f in truth["frames"] if f["degraded"]]
    assert len(truth["cloudy_frames"]) == 1


def test_objects_follow_their_specs(session: tuple[Path, dict]) -> None:
    _, truth = session
    objects = {o["id"]: o for o in truth["objects"]}
    fast = objects["fast"]
    assert fast["rate_px_per_frame"] == pytest.approx(6.0)
    assert fast["direction_deg"] == pytest.approx(10.0)
    assert fast["rate_px_per_min"] == pytest.approx(6.0 / truth["cadence_s"] * 60.0, rel=1e-3)
    assert len(fast["positions"]) == N_FRAMES
    # Trailed: it moves about 6 px, two FWHM, during each exposure.
    for pos in fast["positions"]:
        assert math.hypot(pos["x1"] - pos["x0"], pos["y1"] - pos["y0"]) == pytest.approx(
            6.0 * 120.0 / truth["cadence_s"], rel=1e-3
        )
    track = objects["streak_track_1"]
    assert len(track["positions"]) == 3
    indices = [p["index"] for p in track["positions"]]
    assert indices == list(range(indices[0], indices[0] + 3))
    # One line: the centres are collinear with the streak's direction.
    xs = np.array([p["x"] for p in track["positions"]])
    ys = np.array([p["y"] for p in track["positions"]])
    cross = (xs[2] - xs[0]) * (ys[1] - ys[0]) - (ys[2] - ys[0]) * (xs[1] - xs[0])
    assert abs(cross) / math.hypot(xs[2] - xs[0], ys[2] - ys[0]) < 1.5
    streak = objects["streak_1"]["positions"][0]
    assert math.hypot(streak["x1"] - streak["x0"], streak["y1"] - streak["y0"]) > 0.5 * SHAPE[0]
    flash = objects["flash_1"]
    assert len(flash["positions"]) == 1
    clear = {f["file"] for f in truth["frames"] if not f["degraded"]}
    for kind in ("streak_1", "flash_1"):
        assert set(objects[kind]["frames"]) <= clear


def test_truth_positions_hold_the_objects(session: tuple[Path, dict]) -> None:
    folder, truth = session
    images = _frames(folder, truth)
    frames = truth["frames"]
    clear = [k for k, f in enumerate(frames) if not f["degraded"]]
    for obj in truth["objects"]:
        for pos in obj["positions"]:
            k = pos["index"]
            if frames[k]["degraded"]:
                continue
            x, y = pos["x"], pos["y"]
            noise = _noise(truth, frames[k])
            ix, iy = round(x), round(y)
            here = images[k][iy, ix]
            assert here - _local_background(images[k], x, y) > max(
                4.0 * noise, 0.3 * pos["peak_adu"]
            )
            # In a frame where the object is elsewhere, the same pixel is just background.
            elsewhere = [j for j in clear if _far(obj, j, x, y)]
            if obj["kind"] == "slow_mover":
                continue  # it never gets far
            assert elsewhere, obj["id"]
            j = elsewhere[0]
            assert here - images[j][iy, ix] > max(4.0 * noise, 0.3 * pos["peak_adu"]), obj["id"]


def _far(obj: dict, index: int, x: float, y: float, distance: float = 10.0) -> bool:
    """Whether the object's light in frame ``index`` is far from ``(x, y)``."""
    for pos in obj["positions"]:
        if pos["index"] != index:
            continue
        if "x0" in pos:
            return _distance_to_segment(x, y, pos["x0"], pos["y0"], pos["x1"], pos["y1"]) > distance
        return math.hypot(pos["x"] - x, pos["y"] - y) > distance
    return True


def _distance_to_segment(x: float, y: float, x0: float, y0: float, x1: float, y1: float) -> float:
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((x - x0) * dx + (y - y0) * dy) / length2))
    return math.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def test_streak_covers_its_line(session: tuple[Path, dict]) -> None:
    folder, truth = session
    streak = next(o for o in truth["objects"] if o["kind"] == "streak")["positions"][0]
    image = fits.getdata(folder / streak["frame"]).astype(np.float64)
    frame = truth["frames"][streak["index"]]
    noise = _noise(truth, frame)
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        x = streak["x0"] + t * (streak["x1"] - streak["x0"])
        y = streak["y0"] + t * (streak["y1"] - streak["y0"])
        assert image[round(y), round(x)] - _local_background(image, x, y) > 5.0 * noise


def test_peak_snr_is_what_the_pixels_show(session: tuple[Path, dict]) -> None:
    folder, truth = session
    images = _frames(folder, truth)
    ratios = []
    for obj in truth["objects"]:
        if obj["kind"] not in ("mover", "slow_mover", "flash"):
            continue
        for pos in obj["positions"]:
            frame = truth["frames"][pos["index"]]
            if frame["degraded"]:
                continue
            image = images[pos["index"]]
            ix, iy = round(pos["x"]), round(pos["y"])
            peak = image[iy - 2 : iy + 3, ix - 2 : ix + 3].max()
            ratios.append((peak - _local_background(image, pos["x"], pos["y"])) / pos["peak_adu"])
            assert pos["peak_snr"] == pytest.approx(
                pos["peak_adu"] / _noise(truth, frame), rel=0.15
            )
    # The brightest pixel of 5x5 picks up noise upwards; on average the truth holds.
    assert 0.9 < float(np.median(ratios)) < 1.3, ratios


def test_noise_is_consistent_with_the_gain(session: tuple[Path, dict]) -> None:
    folder, truth = session
    camera = truth["camera"]
    frame = truth["frames"][0]
    image = fits.getdata(folder / frame["file"]).astype(np.float64)
    header = fits.getheader(folder / frame["file"])
    assert header["GAIN"] == pytest.approx(camera["gain_e_per_adu"], rel=1e-3)
    patch = image[70:130, 90:170]
    values = patch[patch < np.median(patch) + 3 * np.std(patch)]
    for _ in range(5):
        centre, spread = np.median(values), np.std(values)
        values = values[np.abs(values - centre) < 3 * spread]
    sky = np.median(values) - camera["pedestal_adu"]
    expected = math.sqrt(sky / camera["gain_e_per_adu"] + camera["read_noise_adu"] ** 2)
    assert np.std(values) == pytest.approx(expected, rel=0.12)
    assert 700.0 < sky < 3200.0
    assert 300.0 <= camera["pedestal_adu"] <= 1300.0


def test_hot_pixels_and_bad_column_stay_put(session: tuple[Path, dict]) -> None:
    folder, truth = session
    images = _frames(folder, truth)
    hot = np.array(truth["hot_pixels"])
    assert len(hot) >= 3
    assert truth["bad_columns"]
    for image, frame in zip(images, truth["frames"], strict=True):
        noise = _noise(truth, frame)
        around = ndimage.median_filter(image, size=5)
        excess = image[hot[:, 1], hot[:, 0]] - around[hot[:, 1], hot[:, 0]]
        assert np.mean(excess > 3.0 * noise) >= 0.9, frame["file"]
        for col, offset in zip(truth["bad_columns"], truth["bad_column_offsets_adu"], strict=True):
            step = np.median(image[:, col] - (image[:, col - 2] + image[:, col + 2]) / 2)
            assert step == pytest.approx(offset, abs=0.25 * offset + 2 * noise)
    # Cosmic rays, by contrast, are in one frame only.
    cosmic = truth["cosmic_rays"]
    assert cosmic and {c["frame"] for c in cosmic} <= {f["file"] for f in truth["frames"]}


def test_saturated_stars_clip_and_bleed(session: tuple[Path, dict]) -> None:
    folder, truth = session
    image = fits.getdata(folder / truth["frames"][0]["file"])
    assert truth["saturated_stars"]
    x, y = (round(v) for v in truth["saturated_stars"][0])
    assert image[y - 4 : y + 5, x - 4 : x + 5].max() == 65535
    # Bleed: the saturated region runs along the column.
    labels, _ = ndimage.label(image == 65535)
    rows, cols = np.nonzero(labels == labels[y - 4 : y + 5, x - 4 : x + 5].max())
    assert np.ptp(rows) > np.ptp(cols)


def test_cloudy_frame_is_brighter_with_fewer_stars(session: tuple[Path, dict]) -> None:
    folder, truth = session
    images = _frames(folder, truth)
    noise = _noise(truth, truth["frames"][0])

    def bright_stars(image: NDArray[np.float64]) -> int:
        return ndimage.label(image > np.median(image) + 30.0 * noise)[1]

    cloudy = [k for k, f in enumerate(truth["frames"]) if f["degraded"]]
    clear = [k for k, f in enumerate(truth["frames"]) if not f["degraded"]]
    for k in cloudy:
        assert np.median(images[k]) > 1.3 * max(np.median(images[j]) for j in clear) - 300
        assert bright_stars(images[k]) < 0.6 * min(bright_stars(images[j]) for j in clear)


def test_wcs_reads_back_at_the_pointing(session: tuple[Path, dict]) -> None:
    folder, truth = session
    frame = truth["frames"][0]
    header = fits.getheader(folder / frame["file"])
    wcs = WCS(header)
    centre = wcs.pixel_to_world(header["CRPIX1"] - 1, header["CRPIX2"] - 1)
    ra, dec = synth.TARGETS["M31"]
    assert centre.ra.deg == pytest.approx(ra) and centre.dec.deg == pytest.approx(dec)
    assert header["RA"] == ra and header["OBJECT"] == "M31"
    assert header["CRPIX1"] == pytest.approx(truth["wcs"]["CRPIX1"] + frame["jitter_dx"], abs=1e-3)
    scale = truth["camera"]["pixel_scale_arcsec"]
    assert scale == pytest.approx(206.264806 * header["XPIXSZ"] / header["FOCALLEN"], rel=1e-3)
    for key in ("INSTRUME", "TELESCOP", "GAIN", "DEC", "CTYPE1", "CD1_1", "CD2_2"):
        assert key in header


VARIANT_CASES = [
    ("uint16", "first", 16, (48, 64), ".fits"),
    ("rgb", "first", 16, (3, 48, 64), ".fits"),
    ("rgb", "last", 16, (48, 64, 3), ".fits"),
    ("bayer", "first", 16, (48, 64), ".fits"),
    ("uint8", "first", 8, (48, 64), ".fits"),
    ("int32", "first", 32, (48, 64), ".fits"),
    ("float32", "first", -32, (48, 64), ".fits"),
    ("float64", "first", -64, (48, 64), ".fits"),
    ("fz", "first", 16, (48, 64), ".fits.fz"),
    ("nodate", "first", 16, (48, 64), ".fits"),
]


@pytest.mark.parametrize(("variant", "axis", "bitpix", "shape", "suffix"), VARIANT_CASES)
def test_variants_write_what_they_claim(
    tmp_path: Path, variant: str, axis: str, bitpix: int, shape: tuple[int, ...], suffix: str
) -> None:
    truth = synth.make_session(
        tmp_path,
        "2026-03-14/M42",
        seed=4,
        n_frames=2,
        shape=(48, 64),
        variant=variant,
        rgb_axis=axis,
    )
    files = sorted((tmp_path / "2026-03-14" / "M42").iterdir())
    assert [p.name for p in files] == [f"M42_000{k}{suffix}" for k in (1, 2)]
    assert all(f["variant"] == variant for f in truth["frames"])
    with fits.open(files[0]) as hdul:
        hdu = hdul[-1]
        data = hdu.data
        assert data.shape == shape
        assert hdu.header["BITPIX"] == bitpix
        assert ("DATE-OBS" in hdu.header) is (variant != "nodate")
        assert ("MJD-OBS" in hdu.header) is (variant != "nodate")
        assert hdu.header.get("BAYERPAT") == ("RGGB" if variant == "bayer" else None)
        if variant in ("uint16", "fz", "nodate", "rgb", "bayer"):
            assert data.dtype == np.uint16 and hdu.header["BZERO"] == 32768
        assert np.isfinite(data).all() and np.ptp(data) > 0
    if variant == "fz":
        with fits.open(files[0], disable_image_compression=True) as raw:
            assert raw[1].header["ZCMPTYPE"] == "RICE_1"
        with fits.open(files[0]) as hdul:
            assert isinstance(hdul[1], fits.CompImageHDU)
    if variant == "bayer":
        mosaic = data.astype(np.float64)
        red, green, blue = (np.median(mosaic[dy::2, dx::2]) for dy, dx in ((0, 0), (0, 1), (1, 1)))
        assert abs(red - green) > 20 and abs(blue - green) > 20  # the colour grid shows


def test_variants_hold_one_scene(tmp_path: Path) -> None:
    """The format changes; the sky does not: same seed, same ADU."""
    data = {}
    for variant in ("uint16", "fz", "nodate", "int32", "float64", "float32", "rgb"):
        truth = synth.make_session(
            tmp_path / variant, "n/T", seed=9, n_frames=1, shape=(40, 50), variant=variant
        )
        name = truth["frames"][0]["file"]
        data[variant] = fits.getdata(tmp_path / variant / "n" / "T" / name).astype(np.float64)
    for variant in ("fz", "nodate", "int32", "float64", "float32"):
        np.testing.assert_array_equal(data[variant], data["uint16"])
    assert data["rgb"].shape == (3, 40, 50)
    normalised = synth.make_session(
        tmp_path / "unit",
        "n/T",
        seed=9,
        n_frames=1,
        shape=(40, 50),
        variant="float32",
        normalised_floats=True,
    )
    unit = fits.getdata(tmp_path / "unit" / "n" / "T" / normalised["frames"][0]["file"])
    assert unit.max() <= 1.0
    np.testing.assert_allclose(unit * 65535.0, data["uint16"], rtol=1e-6)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        synth.make_session(tmp_path, "a/b", seed=1, variant="jpeg")
    with pytest.raises(ValueError, match="relative path"):
        synth.make_session(tmp_path, "../b", seed=1)
    with pytest.raises(ValueError, match="unknown object kind"):
        ObjectSpec("comet")  # type: ignore[arg-type]


def test_cli_writes_nights_and_truth_beside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fake"
    argv = ["synth", str(out), "--seed", "3", "--nights", "2", "--frames", "3"]
    argv += ["--width", "64", "--height", "48", "--variant", "uint16,fz", "--no-progress"]
    assert cli.main(argv) == 0
    assert str(out / "truth.json") in capsys.readouterr().out
    truth = json.loads((out / "truth.json").read_text())
    assert list(truth["sessions"]) == [
        str(p.parent.relative_to(out / "nights"))
        for p in sorted((out / "nights").glob("*/*/*_0001.fits*"))
    ]
    assert [s["variant"] for s in truth["sessions"].values()] == ["uint16", "fz"]
    assert not list((out / "nights").rglob("truth.json"))
    # A second run refuses to overwrite, with one line; --overwrite replaces the tree.
    assert cli.main(argv) == 1
    assert "not empty" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0
    with pytest.raises(SystemExit):
        cli.main(["synth", str(out), "--variant", "jpeg"])
