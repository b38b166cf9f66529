"""One reader for every frame a user may bring, returning a float32 mono image.

Every stage reads pixels through :func:`read_frame`. It accepts what capture programs
write: FITS of any bit depth (8, 16 with BZERO, 32 and 64-bit integers, 32 and 64-bit
floats, with BZERO/BSCALE applied), tile-compressed ``.fz``, colour cubes in either axis
order (planes first, ``(3, H, W)``, or last, ``(H, W, 3)``), one-shot-colour Bayer mosaics
(``BAYERPAT``/``COLORTYP``), and XISF through the ``xisf`` package. It returns the image
as float32 in ADU, mono, in the geometry of the sensor, so that pixel coordinates mean the
same thing in every frame and in the plate solution.

Colour to mono is the mean of the planes. A Bayer mosaic becomes mono by convolving it with
the separable kernel ``[1, 2, 1] x [1, 2, 1] / 16``: at every pixel, whatever the pattern,
that kernel weighs red, green and blue as ``(R + 2G + B) / 4`` without shifting the image,
so stars stay where they are and the colour grid disappears.

Converting on the fly is cheap next to extraction, and spares the disk the float copies
of every frame that a separate conversion step would write.

A file that cannot be read raises :class:`FrameReadError` with a one-line message naming
the file and what is wrong with it; callers turn that into a rejected-frame row.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from numpy.typing import NDArray
from scipy import ndimage

__all__ = [
    "FRAME_SUFFIXES",
    "Frame",
    "FrameReadError",
    "is_frame_name",
    "read_frame",
    "read_header",
]

logger = logging.getLogger(__name__)

FRAME_SUFFIXES: tuple[str, ...] = (".fit", ".fits", ".fts", ".fz", ".xisf")
"""File name endings taken as frames (compared case-insensitively; ``.fits.fz`` ends in
``.fz``)."""

BAYER_KEYS: tuple[str, ...] = ("BAYERPAT", "COLORTYP", "CFA-PAT", "CFAPAT", "BAYERPATN")
"""Header cards that mark a one-shot-colour mosaic and name its pattern."""

_BAYER_PATTERNS = frozenset({"RGGB", "BGGR", "GRBG", "GBRG"})

_LUMINANCE_KERNEL = np.array([0.25, 0.5, 0.25], dtype=np.float32)


class FrameReadError(ValueError):
    """A frame cannot be read; the message names the file and what is wrong."""


@dataclass
class Frame:
    """A frame as every stage sees it.

    Attributes
    ----------
    path : Path
        Where it was read from.
    data : ndarray of float32, shape (height, width)
        Mono image in ADU, with BZERO/BSCALE applied.
    header : astropy.io.fits.Header
        The image's header (for XISF, the FITS keywords it carries).
    bitpix : int
        Bit depth of the stored pixels (FITS convention: 8, 16, 32, 64, -32, -64).
    colour : str
        ``"mono"``, ``"rgb"`` (a cube of colour planes) or ``"bayer"`` (a mosaic).
    bayer_pattern : str or None
        The mosaic's pattern (``"RGGB"``, ...) when ``colour == "bayer"``.
    stored_shape : tuple of int
        The shape of the pixels as stored, before conversion to mono.
    saturation_adu : float
        The level above which a pixel counts as saturated: the header's ``SATURATE`` or
        ``DATAMAX``, else the largest value the stored integer type can hold (NaN for
        float data without such a card).
    """

    path: Path
    data: NDArray[np.float32]
    header: fits.Header
    bitpix: int
    colour: str
    bayer_pattern: str | None = None
    stored_shape: tuple[int, ...] = field(default_factory=tuple)
    saturation_adu: float = float("nan")

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the mono image."""
        return self.data.shape  # type: ignore[return-value]


def is_frame_name(name: str) -> bool:
    """Whether a file name looks like a frame (by its ending, case-insensitively)."""
    lower = name.lower()
    return not lower.startswith(".") and lower.endswith(FRAME_SUFFIXES)


def _fail(path: Path, what: str) -> FrameReadError:
    return FrameReadError(f"{path}: {what}")


def _image_hdu(hdul: fits.HDUList, path: Path) -> fits.hdu.base.ExtensionHDU:
    """The first HDU holding an image with at least two axes."""
    for hdu in hdul:
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
            naxis = hdu.header.get("NAXIS", 0)
            if naxis >= 2 or (isinstance(hdu, fits.CompImageHDU) and hdu.header.get("ZNAXIS")):
                return hdu
    raise _fail(path, "no image HDU (the file holds no 2-D or 3-D image)")


def _bayer_pattern(header: fits.Header) -> str | None:
    for key in BAYER_KEYS:
        value = header.get(key)
        if isinstance(value, str) and value.strip().upper() in _BAYER_PATTERNS:
            return value.strip().upper()
    return None


def _saturation_level(header: fits.Header, raw: np.ndarray) -> float:
    for key in ("SATURATE", "DATAMAX"):
        value = header.get(key)
        if isinstance(value, int | float) and np.isfinite(value) and value > 0:
            return float(value)
    if np.issubdtype(raw.dtype, np.integer):
        return float(np.iinfo(raw.dtype).max)
    return float("nan")


def bayer_to_mono(mosaic: NDArray[np.floating]) -> NDArray[np.float32]:
    """Luminance of a Bayer mosaic at full resolution, without shifting the image.

    Parameters
    ----------
    mosaic : ndarray, shape (height, width)
        The raw colour-filter-array image.

    Returns
    -------
    ndarray of float32
        ``(R + 2G + B) / 4`` at every pixel, whatever the pattern.
    """
    image = np.asarray(mosaic, dtype=np.float32)
    image = ndimage.correlate1d(image, _LUMINANCE_KERNEL, axis=0, mode="mirror")
    return ndimage.correlate1d(image, _LUMINANCE_KERNEL, axis=1, mode="mirror")


def _to_mono(raw: np.ndarray, path: Path) -> tuple[NDArray[np.float32], str]:
    """Collapse a 2-D or colour 3-D array to float32 mono."""
    if raw.ndim == 2:
        return np.asarray(raw, dtype=np.float32), "mono"
    if raw.ndim == 3:
        squeezed = [n for n in raw.shape if n != 1]
        if len(squeezed) == 2:
            return np.asarray(raw.reshape(squeezed), dtype=np.float32), "mono"
        if raw.shape[0] == 3:
            return raw.astype(np.float32).mean(axis=0, dtype=np.float32), "rgb"
        if raw.shape[-1] == 3:
            return raw.astype(np.float32).mean(axis=-1, dtype=np.float32), "rgb"
        planes = min(raw.shape)
        raise _fail(path, f"3-D cube of shape {raw.shape} with {planes} planes is not a colour image")
    raise _fail(path, f"{raw.ndim}-D data of shape {raw.shape} is not an image")


def read_header(path: str | os.PathLike[str]) -> fits.Header:
    """The image header of a frame, without reading its pixels where the format allows."""
    path = Path(path)
    if path.suffix.lower() == ".xisf":
        return _read_xisf(path, pixels=False).header
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            return _image_hdu(hdul, path).header.copy()
    except FrameReadError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise _fail(path, f"not a readable FITS file ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_frame(path: str | os.PathLike[str]) -> Frame:
    """Read any supported frame as a float32 mono image.

    Parameters
    ----------
    path : path-like
        A FITS (``.fit``, ``.fits``, ``.fts``, ``.fz``) or XISF file.

    Returns
    -------
    Frame
        The mono image and what was learned about the file on the way.

    Raises
    ------
    FrameReadError
        When the file is missing, empty, truncated, not FITS, holds no image, holds a cube
        that is not a colour image, or holds no finite pixel. The message is one line that
        starts with the file's path.
    """
    path = Path(path)
    if path.suffix.lower() == ".xisf":
        return _read_xisf(path, pixels=True)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _fail(path, f"cannot be opened ({exc.strerror or _reason(exc)})") from exc
    if size == 0:
        raise _fail(path, "empty file (0 bytes)")
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            # astropy only warns about a truncated file; record it and fail below.
            warnings.simplefilter("always", AstropyUserWarning)
            with fits.open(path, memmap=False) as hdul:
                hdu = _image_hdu(hdul, path)
                raw = hdu.data
                header = hdu.header.copy()
                bitpix = int(header.get("ZBITPIX", header.get("BITPIX", 0)))
                if raw is None:
                    raise _fail(path, "the image HDU holds no data")
                raw = np.asarray(raw)
    except FrameReadError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        _raise_if_truncated(path, caught)
        raise _fail(path, f"not a readable FITS file ({_reason(exc)})") from exc
    _raise_if_truncated(path, caught)
    return _frame_from_array(path, raw, header, bitpix)


def _raise_if_truncated(path: Path, caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        text = str(warning.message)
        if "truncated" in text.lower():
            raise _fail(path, f"truncated FITS file ({text.strip().splitlines()[0]})")


def _frame_from_array(path: Path, raw: np.ndarray, header: fits.Header, bitpix: int) -> Frame:
    stored_shape = tuple(raw.shape)
    saturation = _saturation_level(header, raw)
    pattern = _bayer_pattern(header) if raw.ndim == 2 else None
    if pattern is not None:
        data, colour = bayer_to_mono(raw), "bayer"
    else:
        data, colour = _to_mono(raw, path)
    if not np.isfinite(data).any():
        raise _fail(path, "no finite pixel (all NaN or infinite)")
    return Frame(
        path=path,
        data=np.ascontiguousarray(data, dtype=np.float32),
        header=header,
        bitpix=bitpix,
        colour=colour,
        bayer_pattern=pattern,
        stored_shape=stored_shape,
        saturation_adu=saturation,
    )


_XISF_BITPIX = {"uint8": 8, "uint16": 16, "uint32": 32, "float32": -32, "float64": -64}


def _read_xisf(path: Path, *, pixels: bool) -> Frame:
    """Read an XISF image through the ``xisf`` package (planes-last layout)."""
    try:
        from xisf import XISF
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise _fail(path, "XISF needs the 'xisf' package") from exc
    try:
        xisf = XISF(str(path))
        meta = xisf.get_images_metadata()
        if not meta:
            raise _fail(path, "XISF file holds no image")
        header = fits.Header()
        for key, entries in (meta[0].get("FITSKeywords") or {}).items():
            if entries and len(key) <= 8:
                value = entries[0].get("value", "")
                try:
                    header[key] = _fits_value(value)
                except (ValueError, KeyError):
                    continue
        if not pixels:
            geometry = meta[0].get("geometry", ())
            return Frame(path, np.empty((0, 0), np.float32), header, 0, "mono", None, geometry)
        raw = np.asarray(xisf.read_image(0))
    except FrameReadError:
        raise
    except Exception as exc:  # the xisf package raises bare exceptions of many kinds
        raise _fail(path, f"not a readable XISF file ({_reason(exc)})") from exc
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    bitpix = _XISF_BITPIX.get(str(raw.dtype), 0)
    return _frame_from_array(path, raw, header, bitpix)


def _fits_value(text: str) -> str | int | float | bool:
    """A FITS keyword value from XISF's text form."""
    text = text.strip()
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].strip()
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
