"""One reader for every frame a user may bring, returning a float32 mono image.

Every stage reads pixels through :func:`read_frame`. It accepts what capture programs
write: FITS of any bit depth (8, 16 with BZERO, 32 and 64-bit integers, 32 and 64-bit
floats, with BZERO/BSCALE applied and BLANK and infinite pixels made NaN),
tile-compressed ``.fz``, colour cubes in either axis order (planes first, ``(3, H, W)``,
or last, ``(H, W, 3)``), one-shot-colour Bayer mosaics (``BAYERPAT``/``COLORTYP``), and
XISF through the ``xisf`` package. It returns the image as float32 in ADU, mono, in the
geometry of the sensor, so that pixel coordinates mean the same thing in every frame and
in the plate solution.

The stored integers are read as they are and scaled once, straight into float32 (through
float64 only for 32 and 64-bit integers, whose values float32 cannot hold exactly before
the offset is applied), so reading costs about what astropy's own ``getdata`` costs.

Colour to mono is the mean of the planes. A Bayer mosaic becomes mono by convolving it with
the separable kernel ``[1, 2, 1] x [1, 2, 1] / 16``: at every pixel, whatever the pattern,
that kernel weighs red, green and blue as ``(R + 2G + B) / 4`` without shifting the image,
so stars stay where they are and the colour grid disappears. At the edges the mosaic is
mirrored about the outermost pixel, which keeps the colour pattern, so a uniformly lit
field stays flat up to the border.

Converting on the fly is cheap next to extraction, and spares the disk the float copies
of every frame that a separate conversion step would write.

Stages that need only a band of rows of many frames at once (the sky model's median
stack) read them through :class:`FrameRows` or :func:`read_frame_rows`, which read just
those rows from the file: a seek and a read for uncompressed FITS, the tiles that hold
them for tile-compressed FITS. A Bayer mosaic is read with one row more on each side, so
that its rows become mono exactly as in the whole frame; XISF is read whole and sliced.

A file that cannot be read raises :class:`FrameReadError` with a one-line message naming
the file and what is wrong with it; callers turn that into a rejected-frame row. An entry
that is not a regular file (a named pipe, a device) is never opened, since reading a pipe
waits for a writer forever; a dangling link and a link loop are named as such. The
reader never emits warnings: what astropy warns about while reading is either turned into
that error (a truncated file) or logged at debug level.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from spacepixels.names import FRAME_SUFFIXES, frame_stem, is_frame_name

__all__ = [
    "FRAME_SUFFIXES",
    "Frame",
    "FrameReadError",
    "FrameRows",
    "bayer_to_mono",
    "frame_stem",
    "is_frame_name",
    "native_order",
    "read_frame",
    "read_frame_rows",
    "read_image",
    "read_header",
]

logger = logging.getLogger(__name__)

BAYER_KEYS: tuple[str, ...] = ("BAYERPAT", "COLORTYP", "CFA-PAT", "CFAPAT", "BAYERPATN")
"""Header cards that mark a one-shot-colour mosaic and name its pattern."""

_BAYER_PATTERNS = frozenset({"RGGB", "BGGR", "GRBG", "GBRG"})

_FITS_BLOCK = 2880
"""Size in bytes of a FITS block; every valid FITS file is a whole number of them."""


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
        Mono image in ADU, with BZERO/BSCALE applied; BLANK pixels and non-finite pixels
        (NaN, and infinities, which become NaN) are NaN. The array is the caller's own
        (writable, C-contiguous).
    header : astropy.io.fits.Header
        The image's header as stored (for XISF, the FITS keywords it carries). Its BZERO,
        BSCALE and BLANK describe the stored integers; ``data`` has them applied already.
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
        ``DATAMAX``, else the largest value the stored integer type can hold, scaled by
        BSCALE/BZERO (65535 for 16-bit with BZERO 32768; NaN for float data without such
        a card).
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


def _fail(path: Path, what: str) -> FrameReadError:
    return FrameReadError(f"{path}: {what}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _image_hdu(hdul: fits.HDUList, path: Path) -> fits.PrimaryHDU | fits.ImageHDU:
    """The first HDU holding an image with at least two axes."""
    for hdu in hdul:
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
            if hdu.header.get("NAXIS", 0) >= 2:
                return hdu
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size % _FITS_BLOCK:
        raise _fail(
            path,
            f"truncated FITS file ({size} bytes, not a whole number of {_FITS_BLOCK}-byte "
            "blocks, and no complete image HDU)",
        )
    raise _fail(path, "no image HDU (the file holds no 2-D or 3-D image)")


def _bayer_pattern(header: fits.Header) -> str | None:
    for key in BAYER_KEYS:
        value = header.get(key)
        if isinstance(value, str) and value.strip().upper() in _BAYER_PATTERNS:
            return value.strip().upper()
    return None


def _header_number(header: fits.Header, key: str, default: float, path: Path) -> float:
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise _fail(path, f"{key} = {value!r} is not a number")
    return float(value)


def _saturation_level(header: fits.Header, raw: np.ndarray, bscale: float, bzero: float) -> float:
    for key in ("SATURATE", "DATAMAX"):
        value = header.get(key)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and np.isfinite(value)
            and value > 0
        ):
            return float(value)
    if np.issubdtype(raw.dtype, np.integer):
        info = np.iinfo(raw.dtype)
        return float(max(info.max * bscale + bzero, info.min * bscale + bzero))
    return float("nan")


def bayer_to_mono(mosaic: NDArray[np.floating]) -> NDArray[np.float32]:
    """Luminance of a Bayer mosaic at full resolution, without shifting the image.

    Parameters
    ----------
    mosaic : ndarray, shape (height, width)
        The raw colour-filter-array image (at least 2 x 2).

    Returns
    -------
    ndarray of float32, shape (height, width)
        ``(R + 2G + B) / 4`` at every pixel, whatever the pattern: the mosaic convolved
        with ``[1, 2, 1] x [1, 2, 1] / 16``, mirrored about the edge pixels.
    """
    image = np.asarray(mosaic, dtype=np.float32)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"a Bayer mosaic must be 2-D and at least 2 x 2, not {image.shape}")
    height, width = image.shape
    # Vertical [1, 2, 1] into the middle columns of a buffer one column wider each side.
    rows = np.empty((height, width + 2), dtype=np.float32)
    mid = rows[:, 1:-1]
    np.add(image[:-2], image[2:], out=mid[1:-1])
    mid[1:-1] += image[1:-1]
    mid[1:-1] += image[1:-1]
    np.add(image[0], image[1], out=mid[0])  # mirrored: row -1 is row 1
    mid[0] *= 2
    np.add(image[-1], image[-2], out=mid[-1])
    mid[-1] *= 2
    rows[:, 0] = rows[:, 2]  # mirrored: column -1 is column 1
    rows[:, -1] = rows[:, -3]
    # Horizontal [1, 2, 1].
    out = np.add(rows[:, :-2], rows[:, 2:])
    out += mid
    out += mid
    out *= np.float32(1.0 / 16.0)
    return out


def _squeeze_planes(raw: np.ndarray) -> np.ndarray:
    """Drop axes of length one from a cube (a ``(1, H, W)`` cube is a mono image)."""
    if raw.ndim > 2 and 1 in raw.shape:
        return raw.reshape([n for n in raw.shape if n != 1])
    return raw


def _scaled(raw: np.ndarray, bscale: float, bzero: float) -> NDArray[np.float32]:
    """``raw * bscale + bzero`` as a new float32 array, in one pass where exact.

    Integers of 32 and 64 bits go through float64: float32 cannot hold them exactly, and
    rounding before adding an offset such as 2**31 would move small values by tens of ADU.
    """
    scaling = bscale != 1.0 or bzero != 0.0
    bits = 8 * raw.dtype.itemsize
    if raw.dtype.kind == "i" and bits >= 32 and bscale == 1.0 and bzero == 2.0 ** (bits - 1):
        # Unsigned integers stored the FITS way: flipping the sign bit adds 2**(bits-1)
        # exactly, where even float64 would round small values of 64-bit ones away.
        unsigned = raw.view(raw.dtype.str.replace("i", "u"))
        return np.bitwise_xor(unsigned, np.uint64(1 << (bits - 1)).astype(unsigned.dtype)).astype(
            np.float32
        )
    if scaling and raw.dtype.kind in "iu" and bits >= 32:
        wide = raw.astype(np.float64)
        if bscale != 1.0:
            wide *= bscale
        wide += bzero
        with np.errstate(over="ignore"):
            return wide.astype(np.float32)
    with np.errstate(over="ignore"):  # beyond float32: an infinity, made NaN by the caller
        out = raw.astype(np.float32)
    if bscale != 1.0:
        out *= np.float32(bscale)
    if bzero != 0.0:
        out += np.float32(bzero)
    return out


def _infinities_to_nan(data: NDArray[np.float32]) -> NDArray[np.float32]:
    """Make infinite pixels NaN, in place: like NaN, they carry no measurement.

    Every stage then treats the two alike, as missing pixels, where an infinity would
    otherwise leak into means, medians of the sky and source fluxes.
    """
    infinite = np.isinf(data)
    if infinite.any():
        data[infinite] = np.nan
    return data


def _planes_to_mono(planes: list[np.ndarray], bscale: float, bzero: float) -> NDArray[np.float32]:
    """Mean of colour planes, scaled, without a float copy of the whole cube."""
    out = _scaled(planes[0], bscale, bzero)
    for plane in planes[1:]:
        out += _scaled(plane, bscale, bzero)
    out *= np.float32(1.0 / len(planes))
    return out


def _frame_from_array(
    path: Path, raw: np.ndarray, header: fits.Header, bitpix: int, *, scaled: bool
) -> Frame:
    """Turn stored pixels into a :class:`Frame` (scaling them unless already ``scaled``)."""
    stored_shape = tuple(raw.shape)
    if scaled:
        bscale, bzero, blank = 1.0, 0.0, None
    else:
        bscale = _header_number(header, "BSCALE", 1.0, path)
        bzero = _header_number(header, "BZERO", 0.0, path)
        blank = header.get("BLANK") if raw.dtype.kind in "iu" else None
    saturation = _saturation_level(header, raw, bscale, bzero)
    raw = _squeeze_planes(raw)
    pattern = None
    if raw.ndim == 2:
        pattern = _bayer_pattern(header)
        colour = "bayer" if pattern else "mono"
        data = _scaled(raw, bscale, bzero)
        blank_mask = raw == blank if isinstance(blank, int) else None
    elif raw.ndim == 3 and raw.shape[0] == 3:
        colour = "rgb"
        data = _planes_to_mono([raw[0], raw[1], raw[2]], bscale, bzero)
        blank_mask = (raw == blank).any(axis=0) if isinstance(blank, int) else None
    elif raw.ndim == 3 and raw.shape[-1] == 3:
        colour = "rgb"
        data = _planes_to_mono([raw[..., 0], raw[..., 1], raw[..., 2]], bscale, bzero)
        blank_mask = (raw == blank).any(axis=-1) if isinstance(blank, int) else None
    elif raw.ndim == 3:
        planes = min(raw.shape)
        raise _fail(
            path,
            f"3-D cube of shape {stored_shape} with {planes} planes is not a colour image "
            "(only 1 or 3 planes can be read)",
        )
    else:
        raise _fail(path, f"{len(stored_shape)}-D data of shape {stored_shape} is not an image")
    if blank_mask is not None and blank_mask.any():
        data[blank_mask] = np.nan
    if raw.dtype.kind == "f" or raw.dtype.itemsize >= 4:
        _infinities_to_nan(data)  # stored infinities, or values float32 cannot hold
    if data.size == 0:
        raise _fail(path, f"image of shape {stored_shape} holds no pixels")
    if (raw.dtype.kind == "f" or blank_mask is not None) and not np.isfinite(data).any():
        raise _fail(path, "no finite pixel (all NaN or infinite)")
    if pattern is not None:
        if min(data.shape) < 2:
            raise _fail(path, f"Bayer mosaic of shape {stored_shape} is too small")
        data = bayer_to_mono(data)
    return Frame(
        path=path,
        data=data,
        header=header,
        bitpix=bitpix,
        colour=colour,
        bayer_pattern=pattern,
        stored_shape=stored_shape,
        saturation_adu=saturation,
    )


def _diagnose(path: Path, exc: BaseException) -> str:
    """Say in a few words why astropy could not read a file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            start = handle.read(80)
    except OSError:
        return f"not a readable FITS file ({_reason(exc)})"
    if not start.startswith(b"SIMPLE"):
        if start.startswith(b"XISF0100"):
            return "an XISF file with a FITS name (rename it to .xisf)"
        return "not a FITS file (it does not begin with a SIMPLE card)"
    if size < _FITS_BLOCK or size % _FITS_BLOCK:
        return (
            f"truncated FITS file ({size} bytes, not a whole number of "
            f"{_FITS_BLOCK}-byte blocks; {_reason(exc)})"
        )
    return f"not a readable FITS file ({_reason(exc)})"


_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
"""What a directory entry that is neither a file nor a folder may be, for messages."""


def _unopenable(path: Path, exc: OSError) -> str:
    """Say why ``stat`` failed: a dangling link, a link loop, or the system's reason."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (it leads back to itself)"
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a link to a missing file ({target})"
    return f"cannot be opened ({exc.strerror or _reason(exc)})"


def _check_size(path: Path) -> None:
    """Fail early, without opening anything that is not a readable, non-empty file.

    A named pipe or a device is never opened (reading a pipe would wait for a writer
    forever); a dangling link, a link loop and a file without read permission each get
    their own message.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise _fail(path, _unopenable(path, exc)) from exc
    if stat.S_ISDIR(info.st_mode):
        raise _fail(path, "is a directory, not a frame")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a file")
        raise _fail(path, f"not a regular file ({kind}), so it was not opened")
    if info.st_size == 0:
        raise _fail(path, "empty file (0 bytes)")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or _reason(exc)})") from exc


def _only_padding_missing(hdu: fits.PrimaryHDU | fits.ImageHDU, path: Path) -> bool:
    """Whether an uncompressed image's pixels are all in the file, only the padding short.

    Some capture programs end the file with the last pixel instead of filling the last
    2880-byte block; astropy warns that such a file "may have been truncated" but reads
    it whole. A compressed image is never taken as complete when astropy warns.
    """
    if isinstance(hdu, fits.CompImageHDU):
        return False
    header = hdu.header
    try:
        count = int(np.prod([int(header[f"NAXIS{i}"]) for i in range(1, header["NAXIS"] + 1)]))
        needed = hdu.fileinfo()["datLoc"] + count * abs(int(header["BITPIX"])) // 8
        return needed <= path.stat().st_size
    except (KeyError, TypeError, ValueError, OSError):
        return False


def _raise_or_log(path: Path, caught: list[warnings.WarningMessage], *, truncation: bool) -> None:
    """Turn a truncation warning into an error (when ``truncation``); log the rest."""
    for warning in caught:
        text = _reason(warning.message)  # type: ignore[arg-type]
        if truncation and "truncated" in text.lower():
            sizes = re.findall(r"\((\d+)\)", text)
            if len(sizes) == 2:
                text = f"{sizes[0]} bytes where its headers promise {sizes[1]}"
            raise _fail(path, f"truncated FITS file ({text})")
        logger.debug("%s: %s: %s", path, warning.category.__name__, text)


def read_header(path: str | os.PathLike[str]) -> fits.Header:
    """The image header of a frame, without reading its pixels where the format allows.

    Parameters
    ----------
    path : path-like
        A FITS (``.fit``, ``.fits``, ``.fts``, ``.fz``) or XISF file.

    Returns
    -------
    astropy.io.fits.Header
        The header of the first HDU that holds an image, as stored (for XISF, the FITS
        keywords it carries). A FITS file whose data is truncated still has a readable
        header, which is returned; :func:`read_frame` rejects such a file.

    Raises
    ------
    FrameReadError
        When the file is missing, empty, not FITS (or XISF), or holds no image.
    """
    path = Path(path)
    _check_size(path)
    if path.suffix.lower() == ".xisf":
        return _read_xisf(path, pixels=False).header
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                header = _image_hdu(hdul, path).header.copy()
    except FrameReadError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise _fail(path, _diagnose(path, exc)) from exc
    _raise_or_log(path, caught, truncation=False)
    return header


def native_order(array: NDArray[Any]) -> NDArray[Any]:
    """``array`` in the machine's byte order. FITS stores big-endian numbers: an array read
    into memory (``memmap=False``, writable, used by nothing else) is swapped in place, at
    a twentieth of the cost of ``astype``'s copy; a read-only one is copied."""
    if array.dtype.isnative:
        return array
    native = array.dtype.newbyteorder("=")
    if array.flags.writeable:
        return array.byteswap(inplace=True).view(native)
    return array.astype(native)


def read_image(path: str | os.PathLike[str] | None) -> NDArray[Any] | None:
    """The first 2-D image of a FITS file the workflow wrote (a sky map, the reference),
    as stored but in native byte order; None when there is no such file or image."""
    if path is None or not Path(path).is_file():
        return None
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                return native_order(np.asarray(hdu.data))
    return None


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
    _check_size(path)
    if path.suffix.lower() == ".xisf":
        return _read_xisf(path, pixels=True)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            # astropy only warns about a truncated file; record it and fail below.
            warnings.simplefilter("always")
            # Memory-mapped, the stored pixels are read once, straight into the float32
            # result, inside this block: nothing refers to the map once the file is closed.
            with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
                hdu = _image_hdu(hdul, path)
                # Before touching the pixels: a map past the end of a file is no array.
                _raise_or_log(path, caught, truncation=not _only_padding_missing(hdu, path))
                caught.clear()
                header = hdu.header.copy()
                raw = hdu.data
                if raw is None:
                    raise _fail(path, "the image HDU holds no data")
                bitpix = int(header.get("BITPIX", 0))
                frame = _frame_from_array(path, np.asarray(raw), header, bitpix, scaled=False)
                del raw
    except FrameReadError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        _raise_or_log(path, caught, truncation=True)
        raise _fail(path, _diagnose(path, exc)) from exc
    _raise_or_log(path, caught, truncation=False)
    return frame


_XISF_BITPIX = {"uint8": 8, "uint16": 16, "uint32": 32, "float32": -32, "float64": -64}


def _read_xisf(path: Path, *, pixels: bool) -> Frame:
    """Read an XISF image through the ``xisf`` package (planes-last layout).

    The package gives the FITS keywords an XISF file carries as text; they become a FITS
    header with values typed as FITS would type them. It reads unsigned 8, 16 and 32-bit
    integers and 32 and 64-bit floats, uncompressed or compressed (zlib, lz4, zstd).
    """
    try:
        from xisf import XISF
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise _fail(path, "XISF needs the 'xisf' package") from exc
    try:
        xisf = XISF(str(path))
        meta = xisf.get_images_metadata()
        if not meta:
            raise _fail(path, "XISF file holds no image")
        header = _xisf_header(meta[0].get("FITSKeywords") or {})
        if not pixels:
            geometry = tuple(meta[0].get("geometry", ()))
            return Frame(path, np.empty((0, 0), np.float32), header, 0, "mono", None, geometry)
        raw = np.asarray(xisf.read_image(0))
    except FrameReadError:
        raise
    except Exception as exc:  # the xisf package raises bare exceptions of many kinds
        raise _fail(path, f"not a readable XISF file ({_reason(exc)})") from exc
    bitpix = _XISF_BITPIX.get(str(raw.dtype), 0)
    # XISF pixels carry no BZERO/BSCALE; cards copied from a FITS original must not apply.
    return _frame_from_array(path, raw, header, bitpix, scaled=True)


def _xisf_header(keywords: dict[str, list[dict[str, str]]]) -> fits.Header:
    """A FITS header from the ``FITSKeywords`` the ``xisf`` package reads."""
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a card astropy would only warn about is skipped
        for key, entries in keywords.items():
            if not entries or len(key) > 8:
                continue
            for entry in entries if key in ("HISTORY", "COMMENT") else entries[:1]:
                value, comment = entry.get("value", ""), entry.get("comment", "")
                try:
                    if key in ("HISTORY", "COMMENT"):
                        header.append((key, value), end=True)
                    else:
                        header[key] = (_fits_value(value), comment)
                except (ValueError, KeyError, TypeError):
                    logger.debug("XISF keyword %s = %r is not a valid FITS card", key, value)
    return header


def _fits_value(text: str) -> str | int | float | bool:
    """A FITS keyword value from XISF's text form."""
    text = text.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].strip()
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# --------------------------------------------------------------------------- rows

_FITS_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
"""Stored pixel type of each FITS ``BITPIX`` (big-endian, as FITS stores them)."""


class FrameRows:
    """Bands of rows of one frame, each read as float32 mono without the rest of the frame.

    Opening reads the header only and works out where the pixels lie; each :meth:`read`
    then reads only the rows asked for (a seek and a read for uncompressed FITS, the tiles
    holding those rows for tile-compressed FITS), converted exactly as :func:`read_frame`
    converts the whole frame: ``read(y0, y1)`` equals ``read_frame(path).data[y0:y1]``.
    No file stays open between reads, so many frames can be read band by band at once.
    XISF files are read whole and sliced.

    Parameters
    ----------
    path : path-like
        A FITS (``.fit``, ``.fits``, ``.fts``, ``.fz``) or XISF file.

    Attributes
    ----------
    path : Path
        The file.
    shape : tuple of int
        ``(height, width)`` of the mono image.
    colour : str
        ``"mono"``, ``"rgb"`` or ``"bayer"``, as in :class:`Frame`.

    Raises
    ------
    FrameReadError
        When the file cannot be read as a frame (as :func:`read_frame` would say), or when
        it is shorter than its header promises.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _check_size(self.path)
        self._compressed = False
        self._offset = 0
        self._dtype = np.dtype(np.float32)
        self._layout = "mono"
        self._bscale, self._bzero = 1.0, 0.0
        self._blank: int | None = None
        self.colour = "mono"
        if self.path.suffix.lower() == ".xisf":
            self._layout = "whole"
            frame = _read_xisf(self.path, pixels=True)
            self.shape: tuple[int, int] = frame.shape
            self.colour = frame.colour
            return
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with fits.open(
                    self.path, memmap=False, lazy_load_hdus=True, do_not_scale_image_data=True
                ) as hdul:
                    hdu = _image_hdu(hdul, self.path)
                    self._describe(hdu)
        except FrameReadError:
            raise
        except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise _fail(self.path, _diagnose(self.path, exc)) from exc
        _raise_or_log(self.path, caught, truncation=False)

    def _describe(self, hdu: fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU) -> None:
        """Work out the layout, type and scaling of the stored pixels from the header."""
        header = hdu.header
        path = self.path
        bitpix = int(header.get("BITPIX", 0))
        if bitpix not in _FITS_DTYPES:
            raise _fail(path, f"BITPIX = {bitpix!r} is not a FITS pixel type")
        naxis = int(header.get("NAXIS", 0))
        stored = tuple(int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
        squeezed = [n for n in stored if n != 1] if len(stored) > 2 else list(stored)
        self._compressed = isinstance(hdu, fits.CompImageHDU)
        self._dtype = np.dtype(_FITS_DTYPES[bitpix])
        self._bscale = _header_number(header, "BSCALE", 1.0, path)
        self._bzero = _header_number(header, "BZERO", 0.0, path)
        blank = header.get("BLANK") if bitpix > 0 else None
        self._blank = blank if isinstance(blank, int) and not isinstance(blank, bool) else None
        self._stored = stored
        if len(squeezed) == 2:
            height, width = squeezed
            pattern = _bayer_pattern(header)
            self._layout = self.colour = "bayer" if pattern else "mono"
        elif len(squeezed) == 3 and squeezed[0] == 3:
            _, height, width = squeezed
            self._layout, self.colour = "planes_first", "rgb"
        elif len(squeezed) == 3 and squeezed[-1] == 3:
            height, width, _ = squeezed
            self._layout, self.colour = "planes_last", "rgb"
        elif len(squeezed) == 3:
            raise _fail(
                path,
                f"3-D cube of shape {stored} with {min(squeezed)} planes is not a colour image "
                "(only 1 or 3 planes can be read)",
            )
        else:
            raise _fail(path, f"{len(stored)}-D data of shape {stored} is not an image")
        if height * width == 0:
            raise _fail(path, f"image of shape {stored} holds no pixels")
        if self._layout == "bayer" and min(height, width) < 2:
            raise _fail(path, f"Bayer mosaic of shape {stored} is too small")
        self.shape = (height, width)
        if not self._compressed:
            self._offset = int(hdu.fileinfo()["datLoc"])
            needed = self._offset + int(np.prod(stored)) * self._dtype.itemsize
            size = path.stat().st_size
            if size < needed:
                raise _fail(
                    path, f"truncated FITS file ({size} bytes where its headers promise {needed})"
                )

    @property
    def may_hold_nan(self) -> bool:
        """Whether rows may hold NaN (float pixels, or integers with a BLANK value)."""
        return self._layout == "whole" or self._dtype.kind == "f" or self._blank is not None

    def read(
        self, y0: int, y1: int, *, out: NDArray[np.float32] | None = None
    ) -> NDArray[np.float32]:
        """Rows ``y0`` to ``y1`` (exclusive) as float32 mono ADU.

        Parameters
        ----------
        y0, y1 : int
            First row and one past the last, ``0 <= y0 < y1 <= height``.
        out : ndarray of float32, shape (y1 - y0, width), optional
            Where to put them (saves a copy for mono integer frames, which are converted
            straight into it).

        Returns
        -------
        ndarray of float32, shape (y1 - y0, width)
            The rows (``out`` when given), with BZERO/BSCALE applied and BLANK pixels NaN;
            colour as the mean of the planes, a Bayer mosaic as ``(R + 2G + B) / 4`` (see
            :func:`bayer_to_mono`).

        Raises
        ------
        ValueError
            When the rows are not inside the image.
        FrameReadError
            When the file can no longer be read.
        """
        height, width = self.shape
        y0, y1 = int(y0), int(y1)
        if not 0 <= y0 < y1 <= height:
            raise ValueError(f"{self.path}: rows {y0}:{y1} are not inside 0:{height}")
        if out is not None and (out.shape != (y1 - y0, width) or out.dtype != np.float32):
            raise ValueError(f"out must be float32 of shape {(y1 - y0, width)}, not {out.shape}")
        if self._layout == "whole":
            rows = read_frame(self.path).data[y0:y1]
        elif self._layout == "bayer":
            lo, hi = max(0, y0 - 1), min(height, y1 + 1)
            mono = bayer_to_mono(self._scale(self._raw(lo, hi)))
            rows = mono[y0 - lo : y0 - lo + (y1 - y0)]
        elif (
            out is not None
            and self._layout == "mono"
            and self._blank is None
            and (self._dtype.kind == "f" or self._dtype.itemsize <= 2)
        ):
            # Straight into the caller's buffer: float32 holds these values exactly (a
            # float64 beyond its range becomes an infinity, then NaN, without a warning).
            with np.errstate(over="ignore"):
                np.copyto(out, self._raw(y0, y1), casting="unsafe")
            if self._bscale != 1.0:
                out *= np.float32(self._bscale)
            if self._bzero != 0.0:
                out += np.float32(self._bzero)
            return _infinities_to_nan(out) if self._dtype.kind == "f" else out
        else:
            rows = self._scale(self._raw(y0, y1))
        if self._dtype.kind == "f" or self._dtype.itemsize >= 4:
            rows = _infinities_to_nan(np.array(rows, dtype=np.float32, copy=False))
        if out is None:
            return np.ascontiguousarray(rows)
        out[...] = rows
        return out

    def _scale(self, raw: np.ndarray) -> NDArray[np.float32]:
        """Stored values to float32 ADU, mono, with BLANK pixels NaN."""
        if self._layout == "planes_first":
            planes = [raw[0], raw[1], raw[2]]
        elif self._layout == "planes_last":
            planes = [raw[..., 0], raw[..., 1], raw[..., 2]]
        else:
            planes = [raw]
        blank_mask = None
        if self._blank is not None:
            blank_mask = np.zeros(planes[0].shape, dtype=bool)
            for plane in planes:
                blank_mask |= plane == self._blank
        data = _planes_to_mono(planes, self._bscale, self._bzero)
        if blank_mask is not None and blank_mask.any():
            data[blank_mask] = np.nan
        return data

    def _raw(self, y0: int, y1: int) -> np.ndarray:
        """The stored values of rows ``y0:y1``, in the stored layout (squeezed)."""
        if self._compressed:
            return self._raw_compressed(y0, y1)
        height, width = self.shape
        item = self._dtype.itemsize
        try:
            with self.path.open("rb") as handle:
                if self._layout == "planes_first":
                    out = np.empty((3, y1 - y0, width), dtype=self._dtype)
                    for plane in range(3):
                        handle.seek(self._offset + (plane * height + y0) * width * item)
                        self._fill(handle, out[plane])
                    return out
                per_row = width * (3 if self._layout == "planes_last" else 1)
                out = np.empty((y1 - y0, per_row), dtype=self._dtype)
                handle.seek(self._offset + y0 * per_row * item)
                self._fill(handle, out)
        except OSError as exc:
            raise _fail(self.path, f"cannot be read ({exc.strerror or _reason(exc)})") from exc
        if self._layout == "planes_last":
            return out.reshape(y1 - y0, width, 3)
        return out

    def _fill(self, handle: Any, out: np.ndarray) -> None:
        """Fill ``out`` from the file's current position, or fail on a short read."""
        view = memoryview(out).cast("B")
        got = handle.readinto(view)
        if got != view.nbytes:
            raise _fail(self.path, f"truncated FITS file (a read of {view.nbytes} bytes got {got})")

    def _raw_compressed(self, y0: int, y1: int) -> np.ndarray:
        """Rows of a tile-compressed image, decompressing only the tiles that hold them."""
        caught: list[warnings.WarningMessage] = []
        stored = self._stored
        # Index the stored axes: the row axis by y0:y1, singleton axes of a cube at 0.
        if len(stored) == 2:
            rows_axis = 0
        else:
            rows_axis = _nth_big_axis(stored, 1 if self._layout == "planes_first" else 0)
        index = tuple(
            slice(y0, y1)
            if axis == rows_axis
            else (0 if n == 1 and len(stored) > 2 else slice(None))
            for axis, n in enumerate(stored)
        )
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with fits.open(
                    self.path, memmap=False, lazy_load_hdus=True, do_not_scale_image_data=True
                ) as hdul:
                    hdu = _image_hdu(hdul, self.path)
                    raw = np.asarray(hdu.section[index])
        except FrameReadError:
            raise
        except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise _fail(self.path, _diagnose(self.path, exc)) from exc
        _raise_or_log(self.path, caught, truncation=True)
        return raw


def _nth_big_axis(stored: tuple[int, ...], n: int) -> int:
    """Index of the ``n``-th axis longer than one (0-based) in a stored shape."""
    big = [axis for axis, size in enumerate(stored) if size != 1]
    return big[n]


def read_frame_rows(path: str | os.PathLike[str], y0: int, y1: int) -> NDArray[np.float32]:
    """Rows ``y0:y1`` of a frame as float32 mono, reading only those rows where possible.

    Parameters
    ----------
    path : path-like
        A FITS (``.fit``, ``.fits``, ``.fts``, ``.fz``) or XISF file.
    y0, y1 : int
        First row and one past the last, ``0 <= y0 < y1 <= height``.

    Returns
    -------
    ndarray of float32, shape (y1 - y0, width)
        Equal to ``read_frame(path).data[y0:y1]`` (see :class:`FrameRows`).

    Raises
    ------
    FrameReadError
        When the file cannot be read as a frame.
    ValueError
        When the rows are not inside the image.
    """
    return FrameRows(path).read(y0, y1)
