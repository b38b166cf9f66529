"""The frame reader turns every input a user may bring into float32 mono ADU, or says why not."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from shared_data import REAL_FRAME  # noqa: E402

from spacepixels.frames import (
    FRAME_SUFFIXES,
    Frame,
    FrameReadError,
    bayer_to_mono,
    frame_stem,
    is_frame_name,
    native_order,
    read_frame,
    read_header,
)
from spacepixels.times import observation_time

RNG_SEED = 20260314


def _ramp(shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    """Distinct values in every pixel, so a transposed or shifted read shows."""
    return np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape)


def _write(path: Path, data: np.ndarray | None, **cards: object) -> Path:
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        hdu.header[key.replace("_", "-")] = value
    hdu.writeto(path)
    return path


def _assert_frame(frame: Frame, expected: np.ndarray) -> None:
    assert frame.data.dtype == np.float32
    assert frame.data.shape == expected.shape
    assert frame.data.flags.c_contiguous and frame.data.flags.writeable
    np.testing.assert_array_equal(frame.data, expected.astype(np.float32))


# --- every bit depth, with BZERO/BSCALE applied ------------------------------------------


def test_uint16_with_bzero_32768_reads_as_unsigned_adu(tmp_path: Path) -> None:
    data = (_ramp() * 97 % 65536).astype(np.uint16)
    data[0, 0], data[0, 1] = 0, 65535
    path = _write(tmp_path / "u16.fits", data)
    assert fits.getheader(path)["BZERO"] == 32768  # stored as int16 + 32768, like cameras do

    frame = read_frame(path)

    _assert_frame(frame, data)
    assert frame.bitpix == 16
    assert frame.saturation_adu == 65535.0
    assert frame.colour == "mono"
    assert frame.header["BZERO"] == 32768  # the header as stored


@pytest.mark.parametrize(
    ("dtype", "bitpix", "saturation"),
    [
        (np.uint8, 8, 255.0),
        (np.int16, 16, 32767.0),
        (np.int32, 32, 2147483647.0),
        (np.int64, 64, 9223372036854775807.0),
        (np.float32, -32, np.nan),
        (np.float64, -64, np.nan),
    ],
)
def test_every_bitpix_reads_to_float32(
    tmp_path: Path, dtype: type, bitpix: int, saturation: float
) -> None:
    data = (_ramp() % 250).astype(dtype)
    if np.issubdtype(dtype, np.signedinteger) or np.issubdtype(dtype, np.floating):
        data[1, 1] = -7
    if dtype is np.float64:
        data = data + 0.25

    frame = read_frame(_write(tmp_path / f"b{bitpix}.fits", data))

    _assert_frame(frame, data)
    assert frame.bitpix == bitpix
    np.testing.assert_equal(frame.saturation_adu, saturation)


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_unsigned_32_and_64_bit_keep_small_values_exact(tmp_path: Path, dtype: type) -> None:
    # Stored as signed integers with BZERO 2**31 or 2**63: a float32 or even float64 sum
    # would round 1000 away.
    bits = np.dtype(dtype).itemsize * 8
    data = np.array([[0, 1000, 2**bits - 1], [5, 7, 2 ** (bits - 1)]], dtype=dtype)
    path = _write(tmp_path / "u.fits", data)
    assert fits.getheader(path)["BZERO"] == 2 ** (bits - 1)

    frame = read_frame(path)

    _assert_frame(frame, data)
    assert frame.data[0, 1] == 1000.0


def test_bscale_and_bzero_on_int16_give_physical_values(tmp_path: Path) -> None:
    stored = (_ramp() - 300).astype(np.int16)
    hdu = fits.PrimaryHDU(stored)
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 100.0
    hdu.writeto(tmp_path / "scaled.fits")

    frame = read_frame(tmp_path / "scaled.fits")

    _assert_frame(frame, stored.astype(np.float64) * 2.0 + 100.0)
    assert frame.bitpix == 16  # the stored depth, not the scaled one
    assert frame.saturation_adu == 32767 * 2.0 + 100.0


def test_blank_pixels_become_nan(tmp_path: Path) -> None:
    stored = _ramp().astype(np.int16)
    stored[3, 4] = -32768
    hdu = fits.PrimaryHDU(stored)
    hdu.header["BLANK"] = -32768
    hdu.writeto(tmp_path / "blank.fits")

    data = read_frame(tmp_path / "blank.fits").data

    assert np.isnan(data[3, 4])
    assert np.isfinite(data).sum() == data.size - 1


def test_unpadded_file_with_every_pixel_present_is_read(tmp_path: Path) -> None:
    data = _ramp().astype(np.uint16)
    whole = _write(tmp_path / "whole.fits", data).read_bytes()
    cut = tmp_path / "unpadded.fits"
    cut.write_bytes(whole[: 2880 + data.size * 2])  # some capture programs stop here

    _assert_frame(read_frame(cut), data)


# --- colour --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["planes_first", "planes_last"])
def test_rgb_cube_reads_as_mean_of_planes_in_either_order(tmp_path: Path, order: str) -> None:
    red, green, blue = _ramp() * 3, _ramp() + 1000, np.full((24, 32), 30)
    cube = np.stack([red, green, blue], axis=0 if order == "planes_first" else -1)

    frame = read_frame(_write(tmp_path / "rgb.fits", cube.astype(np.uint16)))

    assert frame.colour == "rgb"
    assert frame.stored_shape == cube.shape
    np.testing.assert_allclose(frame.data, (red + green + blue) / 3.0, rtol=1e-6)


def test_single_plane_cube_is_mono(tmp_path: Path) -> None:
    data = _ramp().astype(np.int16)
    frame = read_frame(_write(tmp_path / "one.fits", data[np.newaxis]))
    assert frame.colour == "mono"
    _assert_frame(frame, data)


def _mosaic(pattern: str, rgb: dict[str, np.ndarray]) -> np.ndarray:
    """A Bayer mosaic sampling full-resolution red, green and blue images."""
    height, width = rgb["R"].shape
    mosaic = np.empty((height, width), dtype=np.float64)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        mosaic[dy::2, dx::2] = rgb[colour][dy::2, dx::2]
    return mosaic


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_bayer_field_of_one_colour_is_flat_to_the_edges(tmp_path: Path, pattern: str) -> None:
    shape = (31, 40)  # odd height: the last row starts a new pattern row
    colour = {"R": np.full(shape, 900.0), "G": np.full(shape, 2000.0), "B": np.full(shape, 300.0)}
    mosaic = _mosaic(pattern, colour).astype(np.uint16)

    frame = read_frame(_write(tmp_path / "osc.fits", mosaic, BAYERPAT=pattern))

    assert frame.colour == "bayer"
    assert frame.bayer_pattern == pattern
    assert frame.data.shape == shape
    np.testing.assert_allclose(frame.data, (900 + 2 * 2000 + 300) / 4, rtol=1e-6)


def _centroid(image: np.ndarray) -> tuple[float, float]:
    weights = np.clip(image - np.median(image), 0, None)
    ys, xs = np.indices(image.shape)
    return float((xs * weights).sum() / weights.sum()), float((ys * weights).sum() / weights.sum())


@pytest.mark.parametrize(("x0", "y0"), [(20.0, 17.0), (20.5, 17.5), (21.3, 16.8)])
def test_bayer_star_stays_where_it_was(tmp_path: Path, x0: float, y0: float) -> None:
    ys, xs = np.indices((40, 48), dtype=np.float64)
    star = 100.0 + 20000.0 * np.exp(-0.5 * ((xs - x0) ** 2 + (ys - y0) ** 2) / 1.6**2)
    mosaic = _mosaic("RGGB", {"R": 0.6 * star, "G": star, "B": 0.8 * star})

    frame = read_frame(_write(tmp_path / "star.fits", mosaic.astype(np.uint16), COLORTYP="RGGB"))

    x, y = _centroid(frame.data)
    assert abs(x - x0) < 0.05 and abs(y - y0) < 0.05  # a half-pixel shift would show
    if x0 % 1 != 0.5:
        peak_y, peak_x = np.unravel_index(np.argmax(frame.data), frame.data.shape)
        assert (peak_x, peak_y) == (round(x0), round(y0))


def test_bayer_to_mono_weighs_r_2g_b_at_every_pixel() -> None:
    rng = np.random.default_rng(RNG_SEED)
    mosaic = rng.uniform(0, 1000, (6, 8))
    out = bayer_to_mono(mosaic)
    # An inner pixel is the [1 2 1] x [1 2 1] / 16 sum of its neighbourhood.
    kernel = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    assert out[3, 4] == pytest.approx((mosaic[2:5, 3:6] * kernel).sum(), rel=1e-6)
    assert out.dtype == np.float32


# --- compressed and XISF ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiles.fz", "tiles.fits.fz"])
def test_tile_compressed_rice_reads_like_the_original(tmp_path: Path, name: str) -> None:
    data = (_ramp((64, 80)) * 13 % 60000).astype(np.uint16)
    compressed = fits.CompImageHDU(data, compression_type="RICE_1")
    compressed.header["EXPTIME"] = 30.0
    fits.HDUList([fits.PrimaryHDU(), compressed]).writeto(tmp_path / name)

    frame = read_frame(tmp_path / name)

    _assert_frame(frame, data)
    assert frame.bitpix == 16
    assert frame.header["EXPTIME"] == 30.0
    assert read_header(tmp_path / name)["EXPTIME"] == 30.0


def test_xisf_written_by_the_xisf_package_reads_with_its_fits_keywords(tmp_path: Path) -> None:
    xisf = pytest.importorskip("xisf")
    data = (_ramp() * 31 % 65536).astype(np.uint16)
    keywords = {
        "DATE-OBS": [{"value": "'2026-03-14T21:03:11.250'", "comment": "start of exposure"}],
        "EXPTIME": [{"value": "60.", "comment": "[s]"}],
        "OBJECT": [{"value": "'M31'", "comment": ""}],
        "GAIN": [{"value": "120", "comment": ""}],
    }
    path = tmp_path / "light.xisf"
    xisf.XISF.write(str(path), data[..., np.newaxis], image_metadata={"FITSKeywords": keywords})

    frame = read_frame(path)
    header = read_header(path)

    _assert_frame(frame, data)
    assert frame.bitpix == 16 and frame.saturation_adu == 65535.0
    assert header["DATE-OBS"] == "2026-03-14T21:03:11.250"
    assert header["EXPTIME"] == 60.0 and header["GAIN"] == 120 and header["OBJECT"] == "M31"
    assert observation_time(header).iso_mid == "2026-03-14T21:03:41.250"


def test_xisf_colour_image_reads_as_mono(tmp_path: Path) -> None:
    xisf = pytest.importorskip("xisf")
    rgb = np.stack([_ramp(), _ramp() + 100, _ramp() * 2], axis=-1).astype(np.float32)
    path = tmp_path / "colour.xisf"
    xisf.XISF.write(str(path), rgb, codec="zlib", shuffle=True)

    frame = read_frame(path)

    assert frame.colour == "rgb"
    np.testing.assert_allclose(frame.data, rgb.mean(axis=-1), rtol=1e-6)


# --- what cannot be read, and why ----------------------------------------------------------


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Broken inputs, each with a word its error message must hold."""
    good = _write(folder / "good.fits", _ramp((64, 64)).astype(np.uint16)).read_bytes()
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, path: Path, word: str) -> None:
        cases[name] = (path, word)

    empty = folder / "empty.fits"
    empty.write_bytes(b"")
    add("zero-length", empty, "empty")
    truncated = folder / "truncated.fits"
    truncated.write_bytes(good[: len(good) // 2])
    add("truncated", truncated, "truncated")
    header_cut = folder / "header_cut.fits"
    header_cut.write_bytes(good[:1000])
    add("truncated header", header_cut, "truncated")
    text = folder / "notes.fits"
    text.write_text("seeing was good tonight\n" * 200)
    add("text named .fits", text, "not a FITS file")
    table = folder / "table.fits"
    columns = [fits.Column(name="flux", format="E", array=np.zeros(3))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(table)
    add("table only", table, "no image")
    add("all NaN", _write(folder / "nan.fits", np.full((8, 8), np.nan, np.float32)), "NaN")
    add("2 planes", _write(folder / "two.fits", np.zeros((2, 8, 8), np.int16)), "2 planes")
    add("4 planes", _write(folder / "four.fits", np.zeros((4, 8, 8), np.int16)), "4 planes")
    add("missing", folder / "missing.fits", "cannot be opened")
    cut_fz = folder / "cut.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_ramp((64, 64)).astype(np.int16))]).writeto(
        cut_fz
    )
    cut_fz.write_bytes(cut_fz.read_bytes()[:-3000])
    add("truncated .fz", cut_fz, "truncated")
    not_xisf = folder / "fake.xisf"
    not_xisf.write_bytes(b"XISF0100" + b"\0" * 40)
    add("broken XISF", not_xisf, "XISF")
    return cases


def test_each_unreadable_file_gives_one_line_naming_the_file_and_the_fault(
    tmp_path: Path,
) -> None:
    for name, (path, word) in _bad_files(tmp_path).items():
        with pytest.raises(FrameReadError) as caught:
            read_frame(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: "), name
        assert "\n" not in message, name
        assert word.lower() in message.lower(), (name, message)


def test_read_header_fails_the_same_way_where_there_is_no_header(tmp_path: Path) -> None:
    cases = _bad_files(tmp_path)
    for name in ("zero-length", "truncated header", "text named .fits", "table only", "missing"):
        path, word = cases[name]
        with pytest.raises(FrameReadError, match=word):
            read_header(path)
    # A truncated file still has its header; read_frame is what rejects it.
    assert read_header(cases["truncated"][0])["NAXIS1"] == 64


def test_reading_leaks_no_file_handle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    leaks: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: leaks.append(repr(info.exc_value)))
    cases = _bad_files(tmp_path)
    for _ in range(3):
        read_frame(tmp_path / "good.fits")
        read_header(tmp_path / "good.fits")
        for path, _word in cases.values():
            for reader in (read_frame, read_header):
                try:
                    reader(path)
                except FrameReadError:
                    pass
    gc.collect()
    assert leaks == []


# --- the real frame ------------------------------------------------------------------------


def test_real_int16_frame_with_legacy_date() -> None:
    if not REAL_FRAME.exists():
        pytest.skip(f"real frame {REAL_FRAME} is not on this machine")
    frame = read_frame(REAL_FRAME)

    assert frame.data.shape == (512, 512) and frame.data.dtype == np.float32
    assert frame.bitpix == 16 and frame.colour == "mono"
    np.testing.assert_array_equal(frame.data, fits.getdata(REAL_FRAME).astype(np.float32))
    when = observation_time(read_header(REAL_FRAME))
    assert when is not None
    assert when.exposure_s == 60.0
    assert when.iso_mid == "2002-07-26T19:37:07.000"
    assert when.start_mjd == pytest.approx(52481.0 + (19 * 3600 + 36 * 60 + 37) / 86400, abs=1e-9)


# --- names ---------------------------------------------------------------------------------


def test_frame_names_and_stems() -> None:
    assert FRAME_SUFFIXES == (".fit", ".fits", ".fts", ".fz", ".xisf")
    for name in ("a.fits", "A.FIT", "b.fts", "c.fits.fz", "d.fz", "e.XISF"):
        assert is_frame_name(name)
    for name in ("notes.txt", ".hidden.fits", "stack.tif"):
        assert not is_frame_name(name)
    assert [frame_stem(n) for n in ("a.fits", "A.FIT", "c.fits.fz", "d.fz", "e.XISF", "f.tif")] == [
        "a",
        "A",
        "c",
        "d",
        "e",
        "f.tif",
    ]


def test_native_order_gives_the_same_numbers_in_the_machines_byte_order() -> None:
    """FITS data is big-endian: an array read into memory is swapped in place, a read-only
    one (a memory map) is copied, and a native one is left as it is."""
    values = np.random.default_rng(RNG_SEED).normal(size=(5, 7)).astype(">f4")
    expected = values.astype(np.float32)
    swapped = native_order(values.copy())
    assert swapped.dtype.isnative and np.array_equal(swapped, expected)
    frozen = values.copy()
    frozen.flags.writeable = False
    copied = native_order(frozen)
    assert copied.dtype.isnative and np.array_equal(copied, expected)
    assert np.array_equal(frozen.astype(np.float32), expected)  # the read-only one untouched
    assert native_order(expected) is expected
