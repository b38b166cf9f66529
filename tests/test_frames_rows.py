"""Reading bands of rows: the same pixels as the whole-frame reader, for every input kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from spacepixels import synth
from spacepixels.frames import FrameReadError, FrameRows, is_frame_name, read_frame, read_frame_rows

SHAPE = (61, 77)
"""(height, width): odd and not square, so that a swapped axis or a Bayer edge shows."""

BANDS = ((0, 1), (0, SHAPE[0]), (5, 6), (10, 33), (SHAPE[0] - 1, SHAPE[0]), (1, SHAPE[0] - 1))
"""Bands of rows read: single rows at both edges, the whole frame, and interior bands."""


@pytest.fixture(scope="module")
def variant_frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One synthetic frame per variant the generator writes (and colour planes last)."""
    root = tmp_path_factory.mktemp("variants")
    frames: dict[str, Path] = {}
    kinds = [(v, "first") for v in synth.VARIANTS] + [("rgb", "last")]
    for variant, axis in kinds:
        session = f"n/{variant}_{axis}"
        synth.make_session(
            root,
            session,
            seed=3,
            n_frames=1,
            shape=SHAPE,
            variant=variant,
            rgb_axis=axis,  # type: ignore[arg-type]
            objects=[],
            cloudy=[],
        )
        (path,) = [p for p in (root / session).iterdir() if is_frame_name(p.name)]
        frames[f"{variant}_{axis}"] = path
    return frames


@pytest.mark.parametrize(
    "kind",
    [f"{v}_first" for v in synth.VARIANTS] + ["rgb_last"],
)
def test_rows_equal_the_whole_frame_for_every_variant(
    variant_frames: dict[str, Path], kind: str
) -> None:
    path = variant_frames[kind]
    whole = read_frame(path).data
    rows = FrameRows(path)
    assert rows.shape == whole.shape
    for y0, y1 in BANDS:
        band = rows.read(y0, y1)
        assert band.dtype == np.float32 and band.flags.c_contiguous
        np.testing.assert_array_equal(band, whole[y0:y1])
        out = np.full((y1 - y0, SHAPE[1]), -1.0, dtype=np.float32)
        assert rows.read(y0, y1, out=out) is out
        np.testing.assert_array_equal(out, whole[y0:y1])
        np.testing.assert_array_equal(read_frame_rows(path, y0, y1), whole[y0:y1])


def test_colour_kind_is_reported(variant_frames: dict[str, Path]) -> None:
    assert FrameRows(variant_frames["uint16_first"]).colour == "mono"
    assert FrameRows(variant_frames["rgb_last"]).colour == "rgb"
    assert FrameRows(variant_frames["bayer_first"]).colour == "bayer"
    assert not FrameRows(variant_frames["uint16_first"]).may_hold_nan
    assert FrameRows(variant_frames["float32_first"]).may_hold_nan


def test_blank_pixels_are_nan_as_in_the_whole_frame(tmp_path: Path) -> None:
    data = np.arange(40 * 30, dtype=np.int16).reshape(40, 30)
    data[7, 3] = -999
    hdu = fits.PrimaryHDU(data)
    hdu.header["BLANK"] = -999
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 10.0
    path = tmp_path / "blank.fits"
    hdu.writeto(path)
    whole = read_frame(path).data
    band = read_frame_rows(path, 5, 12)
    assert np.isnan(band[2, 3])
    np.testing.assert_array_equal(band, whole[5:12])
    assert FrameRows(path).may_hold_nan


def test_xisf_is_read_whole_and_sliced(tmp_path: Path) -> None:
    xisf = pytest.importorskip("xisf")
    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (33, 21)).astype(np.uint16)
    path = tmp_path / "light.xisf"
    xisf.XISF.write(str(path), data[..., np.newaxis])
    np.testing.assert_array_equal(read_frame_rows(path, 4, 9), read_frame(path).data[4:9])


def test_rows_outside_the_image_are_refused(variant_frames: dict[str, Path]) -> None:
    rows = FrameRows(variant_frames["uint16_first"])
    for y0, y1 in ((-1, 3), (3, 3), (0, SHAPE[0] + 1), (5, 2)):
        with pytest.raises(ValueError, match="rows"):
            rows.read(y0, y1)
    with pytest.raises(ValueError, match="float32"):
        rows.read(0, 2, out=np.empty((3, SHAPE[1]), np.float32))


def test_truncated_and_foreign_files_name_the_file(tmp_path: Path) -> None:
    data = np.zeros((64, 64), dtype=np.int16)
    whole = tmp_path / "whole.fits"
    fits.PrimaryHDU(data).writeto(whole)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(whole.read_bytes()[: 2880 + 2880])  # the header and part of the pixels
    with pytest.raises(FrameReadError, match="cut.fits.*truncated"):
        FrameRows(cut)
    text = tmp_path / "notes.fits"
    text.write_text("not a frame")
    with pytest.raises(FrameReadError, match="notes.fits"):
        FrameRows(text)
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((4, 8, 8), dtype=np.int16)).writeto(cube)
    with pytest.raises(FrameReadError, match="4 planes"):
        FrameRows(cube)
