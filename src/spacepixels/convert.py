"""The convert stage: calm 8-bit previews for the blink viewer, and optional mono copies.

Every stage reads frames through :func:`spacepixels.frames.read_frame`, which already turns
colour, Bayer mosaics and any bit depth into float32 mono on the fly. What is left for this
stage is what a person looks at:

Previews
    Each frame is binned by a whole factor (the mean of ``factor x factor`` pixel blocks,
    the smallest factor that brings the longest side within ``preview_max_size``), then
    stretched to 8 bits and written as JPEG or PNG. The stretch is measured once per session
    on a few frames spread through it, and the same black and white points are used on every
    frame, so that blinking through the previews shows what changed, not a flicker of
    auto-levels.

The stretch
    On each sample frame (binned as the previews are) the sky is the sigma-clipped median and
    the noise the normalised median absolute deviation around it. The black point sits
    ``black_sigma`` noise below the sky, so the sky is a dark grey with its noise visible
    instead of a clipped black. The white point is the ``white_percentile`` of the pixels,
    which lies in the stars; it is kept at least ``white_min_sigma`` noise above the sky (or
    at the brightest pixel, if that is lower) so a nearly empty field is not stretched into
    noise. The session's values are the medians over the sample frames, so one odd frame
    (a satellite, a cloud) does not set them.
    Between the two points, an ``asinh`` curve lifts the faint end and compresses the bright
    end, like a logarithm near the stars and like a straight line near the sky; its
    softening is chosen so that the sky lands at the grey level ``sky_grey``. ``linear``
    maps black to 0 and white to 255 in a straight line.

Mono copies
    With ``keep: true``, each frame is also written as float32 mono FITS (BITPIX -32): the
    array :func:`~spacepixels.frames.read_frame` returns, under the original header with its
    structural and scaling cards (BZERO, BSCALE, BLANK, compression, Bayer pattern) removed
    and HISTORY cards saying what was done. This is the batch "convert to mono" a user may
    want for other tools; the workflow itself never needs these copies.

Outputs are written atomically (a temporary name in the same folder, then a rename), and
hold nothing that depends on when they were made, so a rerun writes identical bytes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from spacepixels.files import write_atomically
from spacepixels.frames import Frame, frame_stem, read_frame
from spacepixels.settings import section_values

__all__ = [
    "ConvertSettings",
    "Stretch",
    "apply_stretch",
    "bin_image",
    "binning_factor",
    "convert_session",
    "mono_header",
    "session_stretch",
]

logger = logging.getLogger(__name__)

STRETCH_FILE_VERSION = 1
"""Version of the layout of ``stretch.json``; raised when a key changes meaning."""

_CLIP_SIGMA = 3.0
"""Pixels further than this many noise sigmas from the sky are left out of the sky fit."""

_SKY_SAMPLE_PIXELS = 250_000
"""At most this many pixels (an even grid) are used to measure the sky and its noise."""

_MAD_TO_SIGMA = 1.482602218505602
"""Median absolute deviation to standard deviation, for Gaussian noise."""

_STRUCTURAL_KEYS = frozenset(
    {
        "SIMPLE",
        "XTENSION",
        "BITPIX",
        "EXTEND",
        "PCOUNT",
        "GCOUNT",
        "BZERO",
        "BSCALE",
        "BLANK",
        "CHECKSUM",
        "DATASUM",
        "THEAP",
        "TFIELDS",
        "EXTNAME",
        "EXTVER",
        "INHERIT",
        "BAYERPAT",
        "COLORTYP",
        "CFA-PAT",
        "CFAPAT",
        "BAYERPATN",
        "XBAYROFF",
        "YBAYROFF",
    }
)
"""Cards that describe the stored file, not the sky; a mono float copy drops them."""

_COMPRESSION_KEYS = frozenset(
    {
        "IMAGE",
        "SIMPLE",
        "TENSION",
        "EXTEND",
        "BLOCKED",
        "PCOUNT",
        "GCOUNT",
        "HECKSUM",
        "DATASUM",
        "BITPIX",
        "NAXIS",
        "TILE",
        "CMPTYPE",
        "NAME",
        "VAL",
        "QUANTIZ",
        "DITHER",
        "MASKCMP",
    }
)
"""Tile-compression cards (``ZBITPIX``, ``ZTILE1``, ...) without their ``Z`` and digits."""

_PREVIEW_FORMATS = ("jpg", "png")
_STRETCH_KINDS = ("asinh", "linear")


@dataclass(frozen=True)
class ConvertSettings:
    """The ``convert:`` section of the configuration.

    Attributes
    ----------
    keep : bool
        Also write float32 mono FITS copies of the frames (default False: previews only).
    preview_format : {"jpg", "png"}
        Image format of the previews (default ``"jpg"``).
    preview_max_size : int
        Longest side of a preview in pixels, at most (default 1600). Frames are binned by
        the smallest whole factor that fits, averaging ``factor x factor`` blocks.
    jpeg_quality : int
        JPEG quality, 1 to 100 (default 90); PNG is lossless and ignores it.
    stretch : {"asinh", "linear"}
        Curve from the black point to the white point (default ``"asinh"``).
    black_sigma : float
        Black point, in noise sigmas below the sky median (default 3.0): about one
        pixel in a thousand of the bare sky is shown black.
    white_percentile : float
        White point, as a percentile of the pixels of the binned frame (default 99.99),
        which lies in the brightest stars.
    white_min_sigma : float
        The white point is at least this many noise sigmas above the sky (default 50.0).
    sky_grey : float
        Grey level, from 0 to 1, at which the sky median is shown with ``asinh``
        (default 0.15); the curve's softening is chosen for it. Ignored by ``linear``.
    sample_frames : int
        Number of frames, spread evenly through the session, the stretch is measured on
        (default 5).
    """

    keep: bool = False
    preview_format: Literal["jpg", "png"] = "jpg"
    preview_max_size: int = 1600
    jpeg_quality: int = 90
    stretch: Literal["asinh", "linear"] = "asinh"
    black_sigma: float = 3.0
    white_percentile: float = 99.99
    white_min_sigma: float = 50.0
    sky_grey: float = 0.15
    sample_frames: int = 5

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.keep, bool):
            problems.append(f"keep must be true or false, not {self.keep!r}")
        if self.preview_format not in _PREVIEW_FORMATS:
            problems.append(f"preview_format must be jpg or png, not {self.preview_format!r}")
        if self.stretch not in _STRETCH_KINDS:
            problems.append(f"stretch must be asinh or linear, not {self.stretch!r}")
        if not _is_int(self.preview_max_size) or self.preview_max_size < 16:
            problems.append(
                f"preview_max_size must be an integer >= 16, not {self.preview_max_size!r}"
            )
        if not _is_int(self.jpeg_quality) or not 1 <= self.jpeg_quality <= 100:
            problems.append(
                f"jpeg_quality must be an integer from 1 to 100, not {self.jpeg_quality!r}"
            )
        if not _is_int(self.sample_frames) or self.sample_frames < 1:
            problems.append(f"sample_frames must be an integer >= 1, not {self.sample_frames!r}")
        if not _is_number(self.black_sigma) or not 0 <= self.black_sigma <= 20:
            problems.append(f"black_sigma must be a number from 0 to 20, not {self.black_sigma!r}")
        if not _is_number(self.white_percentile) or not 50 < self.white_percentile <= 100:
            problems.append(
                f"white_percentile must be a number above 50 and at most 100, "
                f"not {self.white_percentile!r}"
            )
        if not _is_number(self.white_min_sigma) or self.white_min_sigma <= 0:
            problems.append(f"white_min_sigma must be a number > 0, not {self.white_min_sigma!r}")
        if not _is_number(self.sky_grey) or not 0 < self.sky_grey < 1:
            problems.append(f"sky_grey must be a number between 0 and 1, not {self.sky_grey!r}")
        if problems:
            raise ValueError("convert settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ConvertSettings:
        """Settings from the merged ``convert:`` section of the configuration.

        Parameters
        ----------
        values : mapping or None
            Keys as the attribute names; missing keys (and keys set to null) take their
            defaults.

        Returns
        -------
        ConvertSettings

        Raises
        ------
        ValueError
            For a key that is not a setting (named in the message), or a value out of range.
        """
        given = section_values(cls, values, "convert")
        for key in ("black_sigma", "white_percentile", "white_min_sigma", "sky_grey"):
            if key in given and _is_number(given[key]):
                given[key] = float(given[key])
        if isinstance(given.get("preview_format"), str):
            name = given["preview_format"].lower().lstrip(".")
            given["preview_format"] = "jpg" if name == "jpeg" else name
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping (the inverse of :meth:`from_mapping`)."""
        return asdict(self)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Stretch:
    """One mapping from ADU to 8-bit grey, shared by every preview of a session.

    Attributes
    ----------
    kind : {"asinh", "linear"}
        The curve between the black and the white point.
    black : float
        Value (ADU, in binned preview pixels) shown as 0.
    white : float
        Value (ADU) shown as 255.
    softening : float
        For ``asinh``: the grey is ``asinh(x / softening) / asinh(1 / softening)`` with
        ``x = (value - black) / (white - black)``; small values lift the faint end more.
        Unused (1.0) for ``linear``.
    """

    kind: Literal["asinh", "linear"]
    black: float
    white: float
    softening: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _STRETCH_KINDS:
            raise ValueError(f"stretch kind must be asinh or linear, not {self.kind!r}")
        if not (math.isfinite(self.black) and math.isfinite(self.white)):
            raise ValueError(f"stretch points must be finite, not {self.black}, {self.white}")
        if not self.white > self.black:
            raise ValueError(f"white ({self.white}) must be above black ({self.black})")
        if not (math.isfinite(self.softening) and self.softening > 0):
            raise ValueError(f"softening must be positive, not {self.softening}")

    def to_dict(self) -> dict[str, Any]:
        """The stretch as JSON-ready values."""
        return {
            "kind": self.kind,
            "black": self.black,
            "white": self.white,
            "softening": self.softening,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Stretch:
        """The stretch back from :meth:`to_dict`."""
        return cls(
            kind=values["kind"],
            black=float(values["black"]),
            white=float(values["white"]),
            softening=float(values.get("softening", 1.0)),
        )


@dataclass(frozen=True)
class _Background:
    """Sky level, noise, white level and brightest pixel of one (binned) frame."""

    sky: float
    noise: float
    white: float
    top: float


def _significant(value: float, digits: int = 7) -> float:
    """``value`` rounded to ``digits`` significant digits (short, exact in JSON)."""
    return float(f"{value:.{digits}g}")


def binning_factor(shape: tuple[int, ...], max_size: int) -> int:
    """The smallest whole factor that brings the longest side within ``max_size``."""
    return max(1, math.ceil(max(shape) / max_size))


def bin_image(image: NDArray[np.floating], factor: int) -> NDArray[np.float32]:
    """Mean of ``factor x factor`` blocks; rows and columns beyond a whole block are dropped.

    Parameters
    ----------
    image : ndarray, shape (height, width)
    factor : int
        Block size; 1 returns the image as float32.

    Returns
    -------
    ndarray of float32, shape (height // factor, width // factor)
        Pixel ``(i, j)`` covers frame pixels ``[i*factor, (i+1)*factor)`` in each axis, so
        frame coordinate ``x`` is at preview coordinate ``(x + 0.5) / factor - 0.5``.
    """
    image = np.asarray(image, dtype=np.float32)
    if factor == 1:
        return image
    height, width = (image.shape[0] // factor, image.shape[1] // factor)
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {image.shape} is smaller than one {factor}-pixel bin")
    blocks = image[: height * factor, : width * factor]
    # Whole rows first (contiguous adds), then every factor-th column of the narrower sum.
    rows = blocks[0::factor].copy()
    for offset in range(1, factor):
        rows += blocks[offset::factor]
    out = rows[:, 0::factor].copy()
    for offset in range(1, factor):
        out += rows[:, offset::factor]
    out *= np.float32(1.0 / (factor * factor))
    return out


def _measure_background(image: NDArray[np.floating], white_percentile: float) -> _Background:
    """Sigma-clipped sky median, its noise and the white percentile of one frame."""
    pixels_2d = np.asarray(image, dtype=np.float32)
    step = max(1, math.isqrt(pixels_2d.size // _SKY_SAMPLE_PIXELS))
    sample = pixels_2d[::step, ::step].ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError("no finite pixel to measure the sky on")
    sky = float(np.median(sample))
    noise = _MAD_TO_SIGMA * float(np.median(np.abs(sample - sky)))
    for _ in range(5):
        if noise <= 0:
            break
        kept = sample[np.abs(sample - sky) < _CLIP_SIGMA * noise]
        if kept.size < 16:
            break
        new_sky = float(np.median(kept))
        new_noise = _MAD_TO_SIGMA * float(np.median(np.abs(kept - new_sky)))
        converged = abs(new_sky - sky) < 1e-3 * noise and abs(new_noise - noise) < 1e-3 * noise
        sky, noise = new_sky, new_noise
        if converged:
            break
    if not noise > 0:  # quantised flat frames: fall back to the plain standard deviation
        noise = float(np.std(sample)) or 1.0
    finite = np.isfinite(pixels_2d)
    pixels = pixels_2d.ravel() if finite.all() else pixels_2d[finite]
    rank = round(white_percentile / 100.0 * (pixels.size - 1))
    white = float(np.partition(pixels, rank)[rank])
    return _Background(sky=sky, noise=noise, white=white, top=float(pixels.max()))


def _asinh_softening(sky_x: float, grey: float) -> float:
    """Softening that puts normalised value ``sky_x`` at ``grey`` on the asinh curve."""
    if sky_x <= 0:
        return 1.0
    if sky_x >= grey:
        # Even a straight line shows the sky this bright; use the gentlest curve.
        return 1e3

    def level(softening: float) -> float:
        return math.asinh(sky_x / softening) / math.asinh(1.0 / softening)

    low, high = math.log(1e-9), math.log(1e3)  # level() falls as the softening grows
    for _ in range(100):
        mid = 0.5 * (low + high)
        if level(math.exp(mid)) > grey:
            low = mid
        else:
            high = mid
    return math.exp(0.5 * (low + high))


def session_stretch(frames: Sequence[NDArray[np.floating]], settings: ConvertSettings) -> Stretch:
    """One stretch for a session, measured on a few of its frames.

    Parameters
    ----------
    frames : sequence of ndarray
        Sample frames as the previews show them (binned). Each gives its sky median, noise
        and white percentile; the session takes the median of each.
    settings : ConvertSettings
        ``black_sigma``, ``white_percentile``, ``white_min_sigma``, ``sky_grey`` and
        ``stretch`` are used.

    Returns
    -------
    Stretch
        ``black = sky - black_sigma * noise``; ``white`` the larger of the white percentile
        and ``sky + white_min_sigma * noise`` (but not above the brightest pixel); for
        ``asinh``, the softening that shows the sky at ``sky_grey``. Values are rounded to
        7 significant digits, as they are stored.

    Raises
    ------
    ValueError
        When no frame is given or none has a finite pixel.
    """
    if len(frames) == 0:
        raise ValueError("session_stretch needs at least one frame")
    measured = [_measure_background(frame, settings.white_percentile) for frame in frames]
    sky = float(np.median([m.sky for m in measured]))
    noise = float(np.median([m.noise for m in measured]))
    white = float(np.median([m.white for m in measured]))
    top = float(np.median([m.top for m in measured]))
    black = _significant(sky - settings.black_sigma * noise)
    # The floor above the sky never goes past the brightest pixel (8-bit data, empty fields).
    white = _significant(max(white, min(sky + settings.white_min_sigma * noise, top)))
    if not white > black:
        white = _significant(black + max(abs(black), 1.0))
    softening = 1.0
    if settings.stretch == "asinh":
        sky_x = (sky - black) / (white - black)
        softening = _significant(_asinh_softening(sky_x, settings.sky_grey))
    stretch = Stretch(kind=settings.stretch, black=black, white=white, softening=softening)
    logger.info(
        "session stretch from %d frame(s): sky %.6g, noise %.4g -> black %.6g, white %.6g (%s)",
        len(frames),
        sky,
        noise,
        stretch.black,
        stretch.white,
        stretch.kind,
    )
    return stretch


def apply_stretch(image: NDArray[np.floating], stretch: Stretch) -> NDArray[np.uint8]:
    """Map an image to 8-bit grey with a session's stretch.

    Parameters
    ----------
    image : ndarray, shape (height, width)
        Values in ADU (binned, as the stretch was measured).
    stretch : Stretch

    Returns
    -------
    ndarray of uint8, same shape
        0 at and below ``black``, 255 at and above ``white``; NaN pixels are 0. The same
        value gives the same grey in every frame.
    """
    scale = np.float32(1.0 / (stretch.white - stretch.black))
    x = np.subtract(image, np.float32(stretch.black), dtype=np.float32)
    x *= scale
    np.clip(x, 0.0, 1.0, out=x)
    np.nan_to_num(x, copy=False, nan=0.0)
    if stretch.kind == "asinh":
        x *= np.float32(1.0 / stretch.softening)
        np.arcsinh(x, out=x)
        x *= np.float32(255.0 / math.asinh(1.0 / stretch.softening))
    else:
        x *= np.float32(255.0)
    x += np.float32(0.5)
    np.clip(x, 0.0, 255.0, out=x)
    return x.astype(np.uint8)


def mono_header(frame: Frame) -> fits.Header:
    """The header of a frame's float32 mono copy.

    The original cards are kept except those describing the stored file (structure,
    BZERO/BSCALE/BLANK, checksums, tile compression, the Bayer pattern, which would make a
    reader demosaic the copy again); HISTORY cards say what was done.
    """
    header = frame.header.copy()
    for key in {card.keyword for card in header.cards}:
        if (
            key in _STRUCTURAL_KEYS
            or key.startswith("NAXIS")
            or (key.startswith("Z") and key[1:].rstrip("0123456789") in _COMPRESSION_KEYS)
        ):
            header.remove(key, ignore_missing=True, remove_all=True)
    how = {
        "mono": "mono",
        "rgb": "mean of 3 colour planes",
        "bayer": f"Bayer {frame.bayer_pattern} mosaic as (R+2G+B)/4, unshifted",
    }[frame.colour]
    header.add_history(f"spacepixels convert: float32 mono copy of {frame.path.name}")
    header.add_history(f"spacepixels convert: {how}")
    header.add_history("spacepixels convert: BZERO/BSCALE applied; values in ADU")
    return header


def _write_bytes(path: Path, payload: bytes) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("xb") as handle:
            handle.write(payload)

    write_atomically(path, write)


def _encode_preview(image: NDArray[np.uint8], settings: ConvertSettings) -> bytes:
    import imageio.v3 as iio

    if settings.preview_format == "jpg":
        return iio.imwrite(
            "<bytes>", image, extension=".jpg", plugin="pillow", quality=settings.jpeg_quality
        )
    # Fast zlib level: sky noise hardly compresses, and level 6 costs four times as long.
    return iio.imwrite("<bytes>", image, extension=".png", plugin="pillow", compress_level=1)


def _write_mono(path: Path, frame: Frame) -> None:
    hdu = fits.PrimaryHDU(data=frame.data, header=mono_header(frame))

    def write(temporary: Path) -> None:
        hdu.writeto(temporary, output_verify="silentfix")

    write_atomically(path, write)


def _sample_indices(count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` indices spread evenly over ``range(count)``, ends included."""
    if wanted >= count:
        return list(range(count))
    if wanted == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    """Frame stems, made unique by keeping the full name where two frames share one."""
    stems = [frame_stem(p.name) for p in paths]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    out = []
    for path, stem in zip(paths, stems, strict=True):
        if seen[stem] > 1:
            logger.warning("%s: another frame has the stem %r; using its full name", path, stem)
            stem = path.name
        out.append(stem)
    if len(set(out)) != len(out):
        raise ValueError("two frames have the same file name; previews would overwrite each other")
    return out


def convert_session(
    frame_paths: Sequence[Path],
    previews_dir: Path,
    stretch_path: Path,
    settings: ConvertSettings,
    *,
    mono_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a session's previews, its ``stretch.json`` and (with ``keep``) mono copies.

    Parameters
    ----------
    frame_paths : sequence of Path
        The session's good frames, in time order.
    previews_dir : Path
        Folder for ``<frame stem>.<jpg|png>`` (created if missing).
    stretch_path : Path
        Where ``stretch.json`` goes.
    settings : ConvertSettings
    mono_dir : Path, optional
        Folder for ``<frame stem>.fits`` float32 mono copies; needed when ``settings.keep``
        and unused otherwise.
    progress : bool
        Show a progress bar on standard error.

    Returns
    -------
    dict
        What ``stretch.json`` holds: ``version``; ``stretch`` (:meth:`Stretch.to_dict`);
        ``measured_on`` (the sample frames' names); ``binning`` (the factor);
        ``frame_width``/``frame_height`` and ``preview_width``/``preview_height`` (of the
        first frame); ``format``; and ``previews``, one entry per frame in the given order
        with ``file`` (the frame's name) and ``preview`` (the preview's name).

    Raises
    ------
    ValueError
        When no frame is given, or ``keep`` is set without ``mono_dir``.
    spacepixels.frames.FrameReadError
        When a frame cannot be read (the message names it).
    """
    from tqdm import tqdm

    paths = [Path(p) for p in frame_paths]
    if not paths:
        raise ValueError("convert: no frames to convert")
    if settings.keep and mono_dir is None:
        raise ValueError("convert: keep is true but no folder for the mono copies was given")
    previews_dir = Path(previews_dir)
    previews_dir.mkdir(parents=True, exist_ok=True)
    if settings.keep:
        assert mono_dir is not None
        mono_dir = Path(mono_dir)
        mono_dir.mkdir(parents=True, exist_ok=True)
    stems = _unique_stems(paths)
    preview_names = [f"{stem}.{settings.preview_format}" for stem in stems]

    factor: int | None = None
    shapes: dict[int, tuple[tuple[int, int], tuple[int, ...]]] = {}

    def load(index: int) -> NDArray[np.float32]:
        """Read a frame once: write its mono copy if asked, return it binned."""
        nonlocal factor
        frame = read_frame(paths[index])
        if factor is None:
            factor = binning_factor(frame.shape, settings.preview_max_size)
        if settings.keep:
            assert mono_dir is not None
            _write_mono(mono_dir / f"{stems[index]}.fits", frame)
        binned = bin_image(frame.data, factor)
        shapes[index] = (frame.shape, binned.shape)
        return binned

    with tqdm(
        total=len(paths), desc="convert", unit="frame", file=sys.stderr, disable=not progress
    ) as bar:
        # The sample first, kept binned in memory, so that every frame is read only once.
        sample = _sample_indices(len(paths), settings.sample_frames)
        binned_sample = {index: load(index) for index in sample}
        stretch = session_stretch([binned_sample[i] for i in sample], settings)
        for index in range(len(paths)):
            binned = binned_sample.pop(index, None)
            if binned is None:
                binned = load(index)
            preview = apply_stretch(binned, stretch)
            _write_bytes(previews_dir / preview_names[index], _encode_preview(preview, settings))
            bar.update(1)

    assert factor is not None
    (frame_h, frame_w), (preview_h, preview_w) = shapes[0]
    odd = [paths[i].name for i in sorted(shapes) if shapes[i][0] != shapes[0][0]]
    if odd:
        logger.warning(
            "convert: %d frame(s) differ in size from %s (%d x %d), e.g. %s; their previews "
            "differ in size too",
            len(odd),
            paths[0].name,
            frame_w,
            frame_h,
            odd[0],
        )
    manifest: dict[str, Any] = {
        "version": STRETCH_FILE_VERSION,
        "stretch": stretch.to_dict(),
        "measured_on": [paths[i].name for i in sample],
        "binning": factor,
        "frame_width": frame_w,
        "frame_height": frame_h,
        "preview_width": preview_w,
        "preview_height": preview_h,
        "format": settings.preview_format,
        "previews": [
            {"file": path.name, "preview": name}
            for path, name in zip(paths, preview_names, strict=True)
        ],
    }
    stretch_path = Path(stretch_path)
    stretch_path.parent.mkdir(parents=True, exist_ok=True)
    _write_bytes(stretch_path, (json.dumps(manifest, indent=2) + "\n").encode())
    logger.info(
        "convert: %d preview(s) in %s (binned %dx), %s",
        len(paths),
        previews_dir,
        factor,
        f"mono copies in {mono_dir}" if settings.keep else "no mono copies",
    )
    return manifest
