"""Convert writes calm previews (one stretch per session) and, if asked, float32 mono copies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from astropy.io import fits

from spacepixels.convert import (
    ConvertSettings,
    Stretch,
    apply_stretch,
    bin_image,
    convert_session,
    session_stretch,
)
from spacepixels.frames import read_frame

RNG_SEED = 20260314
HEIGHT, WIDTH = 200, 264
SKY, NOISE = 1000.0, 20.0
PATCH = (slice(40, 48), slice(64, 72))
"""An 8 x 8 block, aligned to the 4-pixel preview bins, holding PATCH_ADU in every frame."""
PATCH_ADU = 1500


def _star_field(rng: np.random.Generator, sky: float = SKY, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    """Sky, Gaussian noise and 40 Gaussian stars (the same stars for the same seed)."""
    stars = np.random.default_rng(RNG_SEED)
    ys, xs = np.indices(shape, dtype=np.float32)
    image = rng.normal(sky, NOISE, shape).astype(np.float32)
    for _ in range(40):
        x0, y0 = stars.uniform(5, shape[1] - 5), stars.uniform(5, shape[0] - 5)
        peak = stars.uniform(200, 30000)
        image += peak * np.exp(-0.5 * ((xs - x0) ** 2 + (ys - y0) ** 2) / 1.5**2)
    return image


def _session(folder: Path, n: int = 6, *, sky_step: float = 40.0) -> list[Path]:
    """A session of uint16 frames whose sky brightens frame by frame (dawn coming)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(RNG_SEED)
    paths = []
    for i in range(n):
        image = _star_field(rng, sky=SKY + sky_step * i)
        image[PATCH] = PATCH_ADU
        hdu = fits.PrimaryHDU(np.clip(image, 0, 65535).astype(np.uint16))
        hdu.header["DATE-OBS"] = f"2026-03-14T21:{i:02d}:00"
        hdu.header["EXPTIME"] = 30.0
        hdu.header["OBJECT"] = "M31"
        path = folder / f"light_{i:03d}.fits"
        hdu.writeto(path)
        paths.append(path)
    return paths


SMALL = ConvertSettings(preview_format="png", preview_max_size=64)
"""Previews binned 5x (264 / 64 rounded up) to 40 x 52."""


def _run(tmp_path: Path, paths: list[Path], settings: ConvertSettings = SMALL, **kw) -> dict:
    return convert_session(
        paths, tmp_path / "out" / "previews", tmp_path / "out" / "stretch.json", settings, **kw
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --- previews ------------------------------------------------------------------------------


def test_every_frame_gets_a_preview_of_the_expected_size(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night")

    manifest = _run(tmp_path, paths)

    previews = tmp_path / "out" / "previews"
    assert manifest["binning"] == 5
    assert (manifest["preview_width"], manifest["preview_height"]) == (52, 40)
    assert [e["file"] for e in manifest["previews"]] == [p.name for p in paths]
    for entry in manifest["previews"]:
        image = iio.imread(previews / entry["preview"])
        assert image.shape == (40, 52) and image.dtype == np.uint8
    assert sorted(p.name for p in previews.iterdir()) == [f"light_{i:03d}.png" for i in range(6)]
    on_disk = json.loads((tmp_path / "out" / "stretch.json").read_text())
    assert on_disk == manifest


def test_default_previews_are_jpeg_at_most_1600_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    path = tmp_path / "big.fits"
    fits.PrimaryHDU(rng.normal(SKY, NOISE, (1700, 3300)).astype(np.uint16)).writeto(path)

    manifest = _run(tmp_path, [path], ConvertSettings())

    image = iio.imread(tmp_path / "out" / "previews" / "big.jpg")
    assert manifest["binning"] == 3
    assert image.shape == (566, 1100)


def test_one_stretch_same_adu_same_grey_in_every_frame(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", sky_step=60.0)
    settings = ConvertSettings(preview_format="png", preview_max_size=66)  # 4x bins

    manifest = _run(tmp_path, paths, settings)

    assert manifest["binning"] == 4
    greys, skies = [], []
    for entry in manifest["previews"]:
        image = iio.imread(tmp_path / "out" / "previews" / entry["preview"])
        greys.append(image[10:12, 16:18])  # the patch, binned
        skies.append(float(np.median(image)))
    assert all(np.array_equal(g, greys[0]) for g in greys)
    # The sky brightens through the session and the previews show it: no auto-levels.
    assert skies == sorted(skies) and skies[-1] > skies[0] + 5


def test_sky_is_dark_grey_and_stars_are_not_blown_out(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", n=3, sky_step=0.0)
    settings = ConvertSettings(preview_format="png", preview_max_size=WIDTH)  # no binning

    _run(tmp_path, paths, settings)

    image = iio.imread(tmp_path / "out" / "previews" / "light_001.png")
    sky = np.median(image)
    assert 0.10 * 255 < sky < 0.25 * 255  # dark grey, not black
    assert np.std(image[150:190, 10:50]) > 3  # noise visible
    assert (image == 0).mean() < 0.01
    assert (image == 255).mean() < 0.005  # only the cores of the brightest stars
    assert image.max() > 200


def test_rerun_writes_identical_bytes(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", n=4)
    settings = ConvertSettings(preview_max_size=64, keep=True)
    mono = tmp_path / "out" / "mono"

    _run(tmp_path, paths, settings, mono_dir=mono)
    first = _snapshot(tmp_path / "out")
    time.sleep(0.01)
    _run(tmp_path, paths, settings, mono_dir=mono)

    assert _snapshot(tmp_path / "out") == first
    assert not [name for name in first if Path(name).name.startswith(".")]  # no temp files left
    assert "stretch.json" in first and "mono/light_000.fits" in first


def test_colour_and_bayer_frames_give_mono_previews(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    field = _star_field(rng)
    folder = tmp_path / "osc"
    folder.mkdir()
    rgb = np.stack([field * 0.7, field, field * 0.9]).astype(np.uint16)
    fits.PrimaryHDU(rgb).writeto(folder / "colour.fits")
    mosaic = np.full((HEIGHT, WIDTH), 800, np.uint16)
    mosaic[0::2, 0::2] = 400  # red
    mosaic[1::2, 1::2] = 200  # blue: a flat field of one colour
    mosaic += rng.normal(0, 5, mosaic.shape).astype(np.int16).astype(np.uint16)
    hdu = fits.PrimaryHDU(mosaic)
    hdu.header["BAYERPAT"] = "RGGB"
    hdu.writeto(folder / "bayer.fits")
    settings = ConvertSettings(preview_format="png", preview_max_size=WIDTH)

    for name in ("colour", "bayer"):
        out = tmp_path / name
        convert_session([folder / f"{name}.fits"], out, out / "stretch.json", settings)
        image = iio.imread(out / f"{name}.png")
        assert image.ndim == 2 and image.shape == (HEIGHT, WIDTH)
    flat = iio.imread(tmp_path / "bayer" / "bayer.png").astype(float)
    # No colour grid: the four sites of the 2 x 2 pattern show the same grey on average
    # (red, green and blue differ by hundreds of ADU, many times the white point).
    sites = [flat[dy::2, dx::2].mean() for dy in (0, 1) for dx in (0, 1)]
    assert max(sites) - min(sites) < 2.0


def test_compressed_frame_preview_is_named_by_its_stem(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    path = tmp_path / "light_007.fits.fz"
    compressed = fits.CompImageHDU(_star_field(rng).astype(np.uint16), compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), compressed]).writeto(path)

    manifest = _run(tmp_path, [path])

    assert manifest["previews"] == [{"file": "light_007.fits.fz", "preview": "light_007.png"}]
    assert (tmp_path / "out" / "previews" / "light_007.png").exists()


def test_frames_sharing_a_stem_do_not_overwrite_each_other(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", n=2)
    twin = paths[0].with_suffix(".fit")
    twin.write_bytes(paths[0].read_bytes())

    manifest = _run(tmp_path, [paths[0], twin, paths[1]])

    names = [e["preview"] for e in manifest["previews"]]
    assert len(set(names)) == 3
    assert all((tmp_path / "out" / "previews" / name).exists() for name in names)


def test_stretch_json_holds_nothing_time_dependent(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", n=9)

    manifest = _run(tmp_path, paths)

    assert set(manifest) == {
        "version",
        "stretch",
        "measured_on",
        "binning",
        "frame_width",
        "frame_height",
        "preview_width",
        "preview_height",
        "format",
        "previews",
    }
    assert manifest["measured_on"] == [paths[i].name for i in (0, 2, 4, 6, 8)]
    assert Stretch.from_dict(manifest["stretch"]).kind == "asinh"
    assert all(set(entry) == {"file", "preview"} for entry in manifest["previews"])


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, _session(tmp_path / "night", n=2), progress=True)
    captured = capsys.readouterr()
    assert "convert" in captured.err and captured.out == ""


# --- mono copies ---------------------------------------------------------------------------


def test_keep_writes_float32_mono_fits_equal_to_the_reader(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", n=3)
    mono = tmp_path / "out" / "mono"

    _run(tmp_path, paths, ConvertSettings(preview_max_size=64, keep=True), mono_dir=mono)

    for path in paths:
        copy = mono / f"{path.stem}.fits"
        with fits.open(copy) as hdul:
            header = hdul[0].header
            assert header["BITPIX"] == -32 and header["NAXIS"] == 2
            assert "BZERO" not in header and "BSCALE" not in header
            assert header["OBJECT"] == "M31" and header["DATE-OBS"].startswith("2026-03-14")
            assert any("spacepixels convert" in str(h) for h in header["HISTORY"])
            stored = hdul[0].data
            assert stored.dtype == np.dtype(">f4")
            np.testing.assert_array_equal(stored, read_frame(path).data)
        np.testing.assert_array_equal(read_frame(copy).data, read_frame(path).data)


def test_keep_of_a_bayer_frame_drops_the_pattern_so_it_is_not_demosaiced_twice(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(RNG_SEED)
    hdu = fits.PrimaryHDU(_star_field(rng).astype(np.uint16))
    hdu.header["BAYERPAT"] = "GBRG"
    hdu.writeto(tmp_path / "osc.fits")
    mono = tmp_path / "mono"

    _run(tmp_path, [tmp_path / "osc.fits"], ConvertSettings(keep=True), mono_dir=mono)

    copy = read_frame(mono / "osc.fits")
    assert copy.colour == "mono" and "BAYERPAT" not in copy.header
    np.testing.assert_array_equal(copy.data, read_frame(tmp_path / "osc.fits").data)


def test_keep_false_writes_no_fits(tmp_path: Path) -> None:
    paths = _session(tmp_path / "night", n=2)

    _run(tmp_path, paths, SMALL, mono_dir=tmp_path / "out" / "mono")

    assert list((tmp_path / "out").rglob("*.fits")) == []
    assert not (tmp_path / "out" / "mono").exists()


def test_keep_without_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        _run(tmp_path, _session(tmp_path / "night", n=1), ConvertSettings(keep=True))


# --- settings and the stretch itself -------------------------------------------------------


def test_settings_from_mapping() -> None:
    assert ConvertSettings.from_mapping({}) == ConvertSettings()
    assert ConvertSettings.from_mapping(None) == ConvertSettings()
    settings = ConvertSettings.from_mapping(
        {"keep": True, "preview_format": "PNG", "black_sigma": 3}
    )
    assert settings.keep and settings.preview_format == "png" and settings.black_sigma == 3.0
    assert ConvertSettings.from_mapping(settings.to_dict()) == settings
    assert ConvertSettings.from_mapping({"jpeg_quality": None}).jpeg_quality == 90


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"keeep": True}, "keeep"),
        ({"preview_format": "tiff"}, "preview_format"),
        ({"stretch": "log"}, "stretch"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"preview_max_size": 10.5}, "preview_max_size"),
        ({"sample_frames": 0}, "sample_frames"),
        ({"sky_grey": 1.5}, "sky_grey"),
        ({"keep": "yes"}, "keep"),
    ],
)
def test_bad_settings_are_refused_by_name(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConvertSettings.from_mapping(values)


def test_apply_stretch_maps_black_to_0_white_to_255_and_nan_to_0() -> None:
    for kind in ("asinh", "linear"):
        stretch = Stretch(kind=kind, black=100.0, white=1100.0, softening=0.05)
        values = np.array([[0.0, 100.0, 350.0, 600.0, 1100.0, 5000.0, np.nan]], np.float32)
        grey = apply_stretch(values, stretch)
        assert grey.dtype == np.uint8
        assert grey[0, 0] == grey[0, 1] == 0 and grey[0, 4] == grey[0, 5] == 255
        assert grey[0, 6] == 0
        assert np.all(np.diff(grey[0, 1:5].astype(int)) > 0)
    asinh = apply_stretch(values, Stretch("asinh", 100.0, 1100.0, 0.05))
    linear = apply_stretch(values, Stretch("linear", 100.0, 1100.0))
    assert asinh[0, 2] > linear[0, 2]  # asinh lifts the faint end
    assert Stretch.from_dict(Stretch("asinh", 1.0, 2.0, 0.5).to_dict()) == Stretch(
        "asinh", 1.0, 2.0, 0.5
    )


def test_session_stretch_sits_black_below_the_sky() -> None:
    rng = np.random.default_rng(RNG_SEED)
    frames = [_star_field(rng) for _ in range(3)]
    settings = ConvertSettings(black_sigma=2.0)

    stretch = session_stretch(frames, settings)

    assert stretch.black == pytest.approx(SKY - 2.0 * NOISE, abs=3.0)
    assert stretch.white > SKY + 50 * NOISE
    sky_grey = apply_stretch(np.array([[SKY]], np.float32), stretch)[0, 0]
    assert sky_grey == pytest.approx(settings.sky_grey * 255, abs=2)


def test_binning_averages_whole_blocks() -> None:
    image = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)
    binned = bin_image(image, 3)
    assert binned.shape == (2, 3)
    assert binned[1, 2] == pytest.approx(image[3:6, 6:9].mean())


def test_preview_of_a_4096_frame_is_fast(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    image = rng.normal(SKY, NOISE, (4096, 4096)).astype(np.uint16)
    path = tmp_path / "big.fits"
    fits.PrimaryHDU(image).writeto(path)
    settings = ConvertSettings()
    _run(tmp_path, [path], settings)  # warm up imports and caches

    best = min(_timed(lambda: _run(tmp_path, [path], settings)) for _ in range(2))

    assert best < 0.5, f"one 4096 x 4096 preview took {best:.2f} s"


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
