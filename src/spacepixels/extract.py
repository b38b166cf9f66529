"""Extract: every source in every good frame, with its position, shape, flux and sharpness.

Frames are processed in chunks (``extract.frames_per_job`` frames per job); each chunk
writes one catalogue, ``extract/chunk_<k>.ecsv``, with one row per source per frame.

The method, frame by frame:

1. Read the frame as float32 mono (:func:`spacepixels.frames.read_frame`). Saturated
   pixels (and their four neighbours) hold no measurement: they are left out of the sky
   and set to it, so that a bleeding column does not join everything it passes into one
   detection; sources that touch them are flagged (:data:`FLAG_SATURATED`).
2. Background: sep's mesh background (``background_mesh_px`` pixels, several FWHM and larger
   than the biggest stars, median-filtered over 3 x 3 meshes) gives a map of the sky level
   and of its per-pixel RMS; the level is subtracted. A bad column (its median level off
   its neighbours' by ``column_sigma`` times their scatter) is levelled, or it would be
   one long detection in every frame, swallowing whatever crosses it.
   With ``subtract_reference`` (tuned on from 8 good frames), the sky model's reference
   (``sky/reference.fits``: the session's median stack less its sky) is fitted to the
   frame and subtracted (:mod:`spacepixels.difference`): a scale for the transparency,
   the gradients for a residual shift, the second derivatives for a change of seeing. The
   RMS map becomes the difference's noise map (the reference's own noise, the stars'
   wander along its gradient and a fraction of it for the PSF's mismatch, in quadrature),
   and the halo and bleed of saturated stars are set to zero. What is searched is then
   what did not stand still: a few hundred sources per frame instead of every star, a
   mover next to a star on its own, and its flux without the star's.
3. Detection with a matched filter: the frame is convolved with a Gaussian of the seeing's
   FWHM (``kernel_fwhm_px``), which is the filter that maximises the signal-to-noise of a
   faint point source in white noise. Pixels whose filtered value exceeds ``detect_sigma``
   times the *filtered* noise, in groups of at least ``min_area`` connected pixels, make a
   detection: the threshold is a signal-to-noise ratio of the matched filter. For a
   Gaussian star of FWHM ``f`` that ratio is ``sqrt(pi) f / 2.355 = 0.75 f`` times the
   star's peak S/N (2 times at ``f`` = 2.6 px), so a threshold of 4 reaches stars of
   peak S/N 2 at that seeing.
   sep is asked for a plain convolution ("conv") with the threshold scaled by the
   kernel's noise gain ``sqrt(sum k^2) / sum k``, which is the same filter as sep's own
   "matched" mode when the noise varies slowly across the kernel, at a fifth of its cost
   (and without that mode's over-eager cleaning of faint sources). Blended sources are
   split by sep's multi-threshold deblending (``deblend_nthresh`` levels, minimum contrast
   ``deblend_cont``), so that a mover passing a star's wing is a source of its own (one
   on the star's core is not: it is lost in that frame).
4. Measurements per source, on the background-subtracted frame (or difference):

   - ``x``, ``y``: a Gaussian-windowed centroid (the window of the seeing's sigma, three
     iterations, as SExtractor's ``XWIN``), which for faint sources is about twice as
     precise as the isophotal barycentre; elongated sources (streaks) keep the isophotal
     barycentre, which is their centre;
   - ``flux``, ``flux_err``, ``snr``: sum in an aperture of radius ``aperture_radius_px``
     (close to the S/N-optimal 0.7-0.8 FWHM), stretched along the source's long axis for
     elongated sources so that a trail is summed whole; the error is the sky noise in the
     aperture (from the RMS map), so ``snr = flux / flux_err`` is the significance of the
     source against the sky;
   - ``peak`` (the brightest pixel above the background) and ``peak_snr`` (that over the
     sky RMS there), comparable to the synthetic truth's per-frame peak S/N;
   - ``a``, ``b``, ``theta``, ``elongation = a / b``: sep's isophotal second moments;
   - ``sharpness``: how much more concentrated the source is than a star. It is the
     ratio of the peak to the aperture flux, divided by the same ratio for a Gaussian
     star of the kernel's FWHM centred on a pixel. Stars give about 1 (0.8-1 as they
     fall off pixel centres, less in worse seeing, whatever their brightness); a single
     hot pixel or cosmic-ray hit gives the largest possible value, the star's
     aperture-to-peak ratio (about 9 at a FWHM of 3 px and 5 at 2.4 px, see
     :func:`single_pixel_sharpness`); a hit of two or three pixels about half of that;
     trails give less than 1. The aperture flux is floored at the peak, so noise cannot
     push the value above that of a single pixel.

A frame where sep runs out of room (a very dense field, a bright nebula) is retried with
a larger pixel stack and sub-object limit, and then with the threshold raised by half at
each step; the threshold used and the retries are recorded in the catalogue's metadata.

Everything runs on float32, C-contiguous, native-byte-order arrays (sep's fast path), and
sep's pixel stack stays small unless a frame needs more (a large one costs time to
allocate at every call). On one core, a dense synthetic 2048 x 2048 frame (5000 stars)
takes about 0.25 s searched as it is, and 0.13 s as a difference (100-400 sources), a
third of that in sep's background. The catalogue is written a block of rows at a
time, so that a chunk's memory is one frame's maps and the chunk's rows (about 0.5 GB
for 25 frames of 4096 x 4096).

Catalogues are ECSV: :func:`write_catalogue` formats the rows itself (several times
faster than astropy's writer), :func:`read_catalogue` reads them back with numpy's parser
(several times faster than astropy's reader); ``Table.read`` reads them too.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray

from spacepixels.difference import Reference
from spacepixels.files import jsonable
from spacepixels.frames import native_order, read_frame
from spacepixels.settings import section_values

__all__ = [
    "EXTRACT_COLUMNS",
    "FLAG_ISOPHOTAL_POSITION",
    "FLAG_SATURATED",
    "ExtractSettings",
    "column_offsets",
    "conv_threshold_factor",
    "extract_frames",
    "extract_sources",
    "gaussian_kernel",
    "read_catalogue",
    "single_pixel_sharpness",
    "write_catalogue",
]

logger = logging.getLogger(__name__)

EXTRACT_COLUMNS: tuple[str, ...] = (
    "frame",
    "frame_index",
    "mjd",
    "x",
    "y",
    "flux",
    "flux_err",
    "snr",
    "peak",
    "peak_snr",
    "a",
    "b",
    "theta",
    "elongation",
    "npix",
    "xmin",
    "xmax",
    "ymin",
    "ymax",
    "flags",
    "sharpness",
    "background",
    "rms",
    "flux_iso",
    "xpeak",
    "ypeak",
)
"""The columns of ``extract/chunk_<k>.ecsv``, in order (see :func:`extract_frames`)."""

FLAG_SATURATED = 0x100
"""Bit set in ``flags`` when the source touches saturated pixels: its isophote's bounding
box, grown by a pixel, meets a 4 x 4 block holding a pixel at the saturation level (a
saturated star, its bleeding column, and what is deblended from them; bits below it are
sep's: 1 merged, 2 truncated at the edge, 4 deblending overflow,
8 singular moments, 16 aperture truncated, 32-64 aperture masked, 128 aperture flux not
positive)."""

FLAG_ISOPHOTAL_POSITION = 0x200
"""Bit set in ``flags`` when ``x``, ``y`` is the isophotal barycentre because the windowed
centroid did not converge or the source is elongated."""

SIGMA_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""FWHM of a Gaussian in units of its sigma (2.3548)."""

DEFAULT_PIXSTACK = 300_000
"""sep's pixel stack at the start of each frame (its own default); grown on overflow."""

DEFAULT_SUB_OBJECT_LIMIT = 1024
"""sep's deblending sub-object limit at the start of each frame; grown on overflow."""

_MAX_RETRIES = 6
"""Attempts per frame before giving up on it (pixel stack, sub-objects, threshold)."""

_THRESHOLD_STEP = 1.5
"""Factor by which the threshold is raised when a frame overflows sep at full size."""

_WINDOW_ITERATIONS = 3
"""Iterations of the Gaussian-windowed centroid."""

_POINT_ELONGATION = 2.0
"""Sources more elongated than this keep their isophotal barycentre (streaks)."""

_SATURATION_MARGIN = 0.98
"""A pixel at or above this fraction of the saturation level counts as saturated."""

_SATURATION_BLOCK = 4
"""Saturated pixels are looked up in blocks of this many pixels square."""


@dataclass(frozen=True)
class ExtractSettings:
    """The ``extract:`` section of the configuration, after tuned values are filled in.

    Every key left as None (null in the configuration) takes the value that
    :mod:`spacepixels.tune` chose for the session; without a tuned value it falls back to
    the default named here, computed from the check's median FWHM.

    Attributes
    ----------
    frames_per_job : int
        Frames per extraction job (one catalogue file each; default 25).
    detect_sigma : float or None
        Detection threshold: signal-to-noise of the matched filter (tuned; fallback 4.0).
    min_area : int or None
        Fewest connected pixels above the threshold in the filtered frame (tuned;
        fallback 5).
    kernel_fwhm_px : float or None
        FWHM (px) of the Gaussian matched-filter kernel, and of the windowed centroid and
        the sharpness reference (tuned: the measured seeing; fallback the check's median
        FWHM, else 3.0).
    background_mesh_px : int or None
        Size (px) of sep's background meshes (tuned; fallback 64 or 16 FWHM, whichever
        is larger, at most a quarter of the frame).
    background_filter : int
        Size, in meshes, of the median filter over the background mesh (default 3).
    deblend_nthresh : int or None
        Deblending levels (tuned; fallback 8).
    deblend_cont : float or None
        Minimum contrast for deblending, as a fraction of the blend's flux (tuned;
        fallback 0.005; 1.0 turns deblending off).
    aperture_radius_px : float or None
        Radius (px) of the flux aperture (tuned; fallback 0.8 FWHM, at least 1.5 px).
    clean : bool or None
        Let sep remove detections that the wings of a brighter neighbour could explain
        (tuned; fallback False: measured on synthetic sessions, cleaning costs 15-20 % of
        the time and a few per cent of the faint movers near stars, and saves about one
        noise detection per megapixel per frame).
    column_sigma : float
        Columns whose median level (after the background) differs from their neighbours'
        by more than this many times the scatter of such differences are levelled before
        detection (default 8; 0 turns it off): a bad column would otherwise be one long
        detection in every frame, swallowing whatever crosses it.
    windowed_positions : bool
        Gaussian-windowed centroids for point sources (default True); False keeps sep's
        isophotal barycentres.
    saturation_adu : float or None
        Level (ADU) at which the camera saturates; None (default) takes each frame's own
        (header ``SATURATE``/``DATAMAX`` or the largest stored integer).
    subtract_reference : bool or None
        Search each frame minus the sky model's median stack, fitted to the frame
        (:mod:`spacepixels.difference`), rather than the frame itself (tuned: true from
        6 good frames; fallback true when a reference is given).
    reference_jitter_px : float or None
        The stars' frame-to-frame wander left after the fit (px), in the difference
        image's noise map along the reference's gradient (tuned: the measured star jitter;
        fallback 0.15).
    reference_mismatch : float
        The fraction of the reference by which a frame's PSF may still differ from it
        after the fit, in the noise map (default 0.05).
    """

    frames_per_job: int = 25
    detect_sigma: float | None = None
    min_area: int | None = None
    kernel_fwhm_px: float | None = None
    background_mesh_px: int | None = None
    background_filter: int = 3
    deblend_nthresh: int | None = None
    deblend_cont: float | None = None
    aperture_radius_px: float | None = None
    clean: bool | None = None
    column_sigma: float = 8.0
    windowed_positions: bool = True
    saturation_adu: float | None = None
    subtract_reference: bool | None = None
    reference_jitter_px: float | None = None
    reference_mismatch: float = 0.05

    def __post_init__(self) -> None:
        problems: list[str] = []

        def number(name: str, low: float, high: float, *, integer: bool = False) -> None:
            value = getattr(self, name)
            if value is None and name not in _REQUIRED:
                return
            kind_ok = isinstance(value, int | float) and not isinstance(value, bool)
            if integer:
                kind_ok = isinstance(value, int) and not isinstance(value, bool)
            if not kind_ok or not (low <= value <= high) or not math.isfinite(value):
                what = "a whole number" if integer else "a number"
                problems.append(f"{name} must be {what} from {low:g} to {high:g}, not {value!r}")

        number("frames_per_job", 1, 100_000, integer=True)
        number("detect_sigma", 0.5, 1000.0)
        number("min_area", 1, 10_000, integer=True)
        number("kernel_fwhm_px", 0.5, 100.0)
        number("background_mesh_px", 8, 4096, integer=True)
        number("background_filter", 1, 15, integer=True)
        number("deblend_nthresh", 1, 256, integer=True)
        number("deblend_cont", 0.0, 1.0)
        number("aperture_radius_px", 0.5, 200.0)
        number("column_sigma", 0.0, 1e6)
        number("reference_jitter_px", 0.0, 10.0)
        number("reference_mismatch", 0.0, 1.0)
        if self.saturation_adu is not None:
            number("saturation_adu", 1e-30, 1e30)
        for name in ("clean", "subtract_reference"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                problems.append(f"{name} must be true or false, not {value!r}")
        for name in ("windowed_positions",):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, not {getattr(self, name)!r}")
        if problems:
            raise ValueError("extract settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ExtractSettings:
        """Settings from the merged ``extract:`` section (or resolved values).

        Parameters
        ----------
        values : mapping or None
            Keys as the attribute names; keys left out, or null, take their defaults
            (None for the tuned keys).

        Returns
        -------
        ExtractSettings

        Raises
        ------
        ValueError
            For a key that is not a setting (named in the message), or a value out of range.
        """
        given = section_values(cls, values, "extract")
        for key in (
            "detect_sigma",
            "kernel_fwhm_px",
            "deblend_cont",
            "aperture_radius_px",
            "column_sigma",
            "reference_jitter_px",
            "reference_mismatch",
        ):
            if isinstance(given.get(key), int) and not isinstance(given[key], bool):
                given[key] = float(given[key])
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping (the inverse of :meth:`from_mapping`)."""
        return asdict(self)

    def completed(self, fallback_fwhm: float | None = None) -> ExtractSettings:
        """These settings with every None replaced by its fallback (see the class).

        Parameters
        ----------
        fallback_fwhm : float, optional
            FWHM (px) to use when ``kernel_fwhm_px`` is None (the check's median FWHM);
            3.0 when not given either.

        Returns
        -------
        ExtractSettings
        """
        fwhm = self.kernel_fwhm_px
        if fwhm is None:
            ok = fallback_fwhm is not None and math.isfinite(fallback_fwhm) and fallback_fwhm > 0
            fwhm = float(fallback_fwhm) if ok else 3.0  # type: ignore[arg-type]
        filled = {
            "detect_sigma": 4.0,
            "min_area": 5,
            "kernel_fwhm_px": round(float(fwhm), 3),
            "background_mesh_px": int(max(64, 16 * math.ceil(fwhm))),
            "deblend_nthresh": 8,
            "deblend_cont": 0.005,
            "aperture_radius_px": round(max(1.5, 0.8 * fwhm), 3),
            "clean": False,
            "subtract_reference": True,
            "reference_jitter_px": 0.15,
        }
        current = self.to_dict()
        for key, value in filled.items():
            if current[key] is None:
                current[key] = value
        return ExtractSettings(**current)


_REQUIRED = frozenset({"frames_per_job", "background_filter"})
"""Settings that may not be None."""


# --------------------------------------------------------------------------- kernels


def gaussian_kernel(fwhm_px: float) -> NDArray[np.float32]:
    """A circular Gaussian of the given FWHM as a 2-D kernel sep accepts.

    Parameters
    ----------
    fwhm_px : float
        Full width at half maximum (px).

    Returns
    -------
    ndarray of float32, shape (2r + 1, 2r + 1)
        Peak 1, sampled at pixel centres out to ``r = ceil(2 sigma)`` (at least 1).
        Truncated there, the matched filter keeps 99 % of its signal-to-noise ratio and
        costs sep a third less time than out to 3 sigma.
    """
    sigma = float(fwhm_px) / SIGMA_TO_FWHM
    radius = max(1, int(math.ceil(2.0 * sigma)))
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    row = np.exp(-0.5 * (grid / sigma) ** 2)
    return np.ascontiguousarray(np.outer(row, row), dtype=np.float32)


def conv_threshold_factor(kernel: NDArray[np.floating]) -> float:
    """Noise gain ``sqrt(sum k^2) / sum k`` of a normalised convolution with ``kernel``.

    White noise of RMS ``s`` convolved with ``kernel / sum(kernel)`` has RMS
    ``s * sqrt(sum k^2) / sum k``; a matched-filter threshold of ``n`` sigmas is therefore
    sep's "conv" threshold ``n`` times this factor (in units of the unfiltered RMS).
    """
    k = np.asarray(kernel, dtype=np.float64)
    return float(math.sqrt(float((k**2).sum())) / float(k.sum()))


def _gaussian_ratios(fwhm_px: float, radius_px: float) -> tuple[float, float]:
    """Peak-pixel and encircled fractions of a pixel-sampled Gaussian centred on a pixel.

    Returns ``(peak_fraction, encircled_fraction)``: the share of the flux in the central
    pixel, and within ``radius_px`` of the centre.
    """
    sigma = float(fwhm_px) / SIGMA_TO_FWHM
    reach = int(math.ceil(6.0 * sigma)) + 2
    grid = np.arange(-reach, reach + 1, dtype=np.float64)
    row = np.exp(-0.5 * (grid / sigma) ** 2)
    image = np.outer(row, row)
    total = float(image.sum())
    r2 = grid[:, None] ** 2 + grid[None, :] ** 2
    return 1.0 / total, float(image[r2 <= radius_px**2].sum()) / total


def single_pixel_sharpness(fwhm_px: float, aperture_radius_px: float) -> float:
    """The sharpness of a source whose light is all in one pixel (the largest possible).

    Parameters
    ----------
    fwhm_px : float
        The kernel's FWHM (px).
    aperture_radius_px : float
        Radius of the flux aperture (px).

    Returns
    -------
    float
        ``encircled fraction / peak fraction`` of a Gaussian star of that FWHM: a hot
        pixel or a one-pixel cosmic-ray hit has this sharpness, a star about 1.
    """
    peak_fraction, encircled = _gaussian_ratios(fwhm_px, aperture_radius_px)
    return encircled / peak_fraction


# --------------------------------------------------------------------------- one frame


def _sep_extract(
    image: NDArray[np.float32],
    rms: NDArray[np.float32],
    values: ExtractSettings,
    kernel: NDArray[np.float32],
    threshold_sigma: float,
) -> NDArray[Any]:
    import sep

    assert values.min_area is not None and values.deblend_nthresh is not None
    assert values.deblend_cont is not None
    return sep.extract(
        image,
        threshold_sigma * conv_threshold_factor(kernel),
        err=rms,
        minarea=int(values.min_area),
        filter_kernel=kernel,
        filter_type="conv",
        deblend_nthresh=int(values.deblend_nthresh),
        deblend_cont=float(values.deblend_cont),
        clean=bool(values.clean),
    )


def _detect(
    image: NDArray[np.float32],
    rms: NDArray[np.float32],
    values: ExtractSettings,
    kernel: NDArray[np.float32],
) -> tuple[NDArray[Any], float, list[str]]:
    """sep.extract with growing buffers, then a rising threshold, when a frame overflows.

    Returns the objects, the threshold used (matched-filter sigmas) and what was retried.
    """
    import sep

    assert values.detect_sigma is not None
    threshold = float(values.detect_sigma)
    retries: list[str] = []
    pixstack, sub_objects = DEFAULT_PIXSTACK, DEFAULT_SUB_OBJECT_LIMIT
    largest_stack = max(DEFAULT_PIXSTACK, image.size)
    try:
        for _ in range(_MAX_RETRIES + 1):
            sep.set_extract_pixstack(pixstack)
            sep.set_sub_object_limit(sub_objects)
            try:
                return _sep_extract(image, rms, values, kernel, threshold), threshold, retries
            except Exception as exc:  # sep raises bare Exceptions for its overflows
                message = str(exc)
                if "pixel buffer full" in message and pixstack < largest_stack:
                    pixstack = min(largest_stack, pixstack * 8)
                    retries.append(f"pixel stack raised to {pixstack}")
                elif "deblending overflow" in message and sub_objects < 65536:
                    sub_objects *= 8
                    retries.append(f"sub-object limit raised to {sub_objects}")
                elif "pixel buffer full" in message or "deblending overflow" in message:
                    threshold *= _THRESHOLD_STEP
                    retries.append(f"threshold raised to {threshold:.3g} sigma ({message})")
                else:
                    raise
        raise RuntimeError(f"sep overflowed {_MAX_RETRIES + 1} times: {'; '.join(retries)}")
    finally:
        sep.set_extract_pixstack(DEFAULT_PIXSTACK)
        sep.set_sub_object_limit(DEFAULT_SUB_OBJECT_LIMIT)


def column_offsets(
    image: NDArray[np.float32], noise: float, k_sigma: float, *, neighbours: int = 3
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Columns whose level differs from their neighbours': bad columns of the sensor.

    Parameters
    ----------
    image : ndarray, shape (height, width)
        A background-subtracted frame or stack.
    noise : float
        Its per-pixel sky noise.
    k_sigma : float
        A column is bad when its median over the rows differs from the median of the
        ``neighbours`` columns on each side by more than this many times the robust
        scatter of such differences (itself at least the noise of a column's median).
    neighbours : int
        Columns compared on each side.

    Returns
    -------
    columns : ndarray of int
        The bad columns (0-based x).
    offsets : ndarray of float
        How much each reads above (or below) its neighbours, in ADU.
    """
    h, w = image.shape
    if w < 2 * neighbours + 1 or h < 8 or not k_sigma > 0:
        return np.empty(0, np.intp), np.empty(0)
    step = max(1, h // 256)
    # Each column's values side by side in memory: the median selects along the last axis.
    sample = np.ascontiguousarray(image[::step].T)
    middle = sample.shape[1] // 2
    sample.partition(middle, axis=1)
    level = sample[:, middle].astype(np.float64)
    padded = np.pad(level, neighbours, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * neighbours + 1)
    around = np.delete(windows, neighbours, axis=1)
    offset = level - np.median(around, axis=1)
    spread = float(np.median(np.abs(offset - np.median(offset)))) * 1.4826
    floor = 1.2533 * noise / math.sqrt(sample.shape[1])
    scale = max(spread, floor, 1e-12)
    bad = np.flatnonzero(np.abs(offset) > k_sigma * scale)
    return bad, offset[bad]


def _saturated_pixels(
    image: NDArray[np.float32], saturation_adu: float
) -> tuple[NDArray[np.int32] | None, NDArray[np.bool_] | None]:
    """Where a frame is saturated: an integral image of the 4 x 4 blocks holding a
    saturated pixel, and the saturated pixels grown by one (None and None when none are).
    """
    if not math.isfinite(saturation_adu) or saturation_adu <= 0:
        return None, None
    flat = np.flatnonzero(image >= np.float32(_SATURATION_MARGIN * saturation_adu))
    if len(flat) == 0:
        return None, None
    h, w = image.shape
    rows, cols = flat // w, flat % w
    grown = np.zeros((h, w), dtype=bool)
    grown[rows, cols] = True
    grown[np.maximum(rows - 1, 0), cols] = True
    grown[np.minimum(rows + 1, h - 1), cols] = True
    grown[rows, np.maximum(cols - 1, 0)] = True
    grown[rows, np.minimum(cols + 1, w - 1)] = True
    b = _SATURATION_BLOCK
    blocks = np.zeros((-(-h // b), -(-w // b)), dtype=np.int32)
    blocks[rows // b, cols // b] = 1
    integral = np.zeros((blocks.shape[0] + 1, blocks.shape[1] + 1), dtype=np.int32)
    integral[1:, 1:] = blocks.cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32)
    return integral, grown


def _touches(integral: NDArray[np.int32], objects: NDArray[Any]) -> NDArray[np.bool_]:
    """Whether each object's bounding box, grown by a pixel, meets a saturated block."""
    b = _SATURATION_BLOCK
    rows, cols = integral.shape[0] - 1, integral.shape[1] - 1
    x0 = np.clip((objects["xmin"].astype(np.int64) - 1) // b, 0, cols - 1)
    x1 = np.clip((objects["xmax"].astype(np.int64) + 1) // b, 0, cols - 1) + 1
    y0 = np.clip((objects["ymin"].astype(np.int64) - 1) // b, 0, rows - 1)
    y1 = np.clip((objects["ymax"].astype(np.int64) + 1) // b, 0, rows - 1) + 1
    count = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return count > 0


def _windowed_centroids(
    image: NDArray[np.float32], x: NDArray[np.float64], y: NDArray[np.float64], sigma: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Gaussian-windowed centroids (SExtractor's XWIN/YWIN), vectorised over sources.

    Each step moves the centre by ``2 sum(w I d) / sum(w I)``, with ``w`` a Gaussian of
    ``sigma`` around the current centre and ``d`` the offset of each pixel; the factor 2
    makes a Gaussian source of the same sigma converge in one step. Cut-outs reach 3 sigma
    around the starting pixel. Returns the centres and whether each converged (stayed
    within the cut-out, with a positive weighted sum).
    """
    h, w = image.shape
    half = max(2, int(math.ceil(3.0 * sigma)))
    offs = np.arange(-half, half + 1)
    ix = np.clip(np.rint(x).astype(np.intp), half, w - half - 1)
    iy = np.clip(np.rint(y).astype(np.intp), half, h - half - 1)
    stamps = image[iy[:, None, None] + offs[None, :, None], ix[:, None, None] + offs[None, None, :]]
    stamps = stamps.astype(np.float32, copy=False)
    gx = offs.astype(np.float32)[None, None, :]
    gy = offs.astype(np.float32)[None, :, None]
    cx = (x - ix).astype(np.float32)
    cy = (y - iy).astype(np.float32)
    ok = np.ones(len(x), dtype=bool)
    inv = np.float32(-0.5 / sigma**2)
    for _ in range(_WINDOW_ITERATIONS):
        dx = gx - cx[:, None, None]
        dy = gy - cy[:, None, None]
        weighted = np.exp((dx * dx + dy * dy) * inv) * stamps
        total = weighted.sum(axis=(1, 2))
        good = total > 0
        safe = np.where(good, total, np.float32(1.0))
        step_x = 2.0 * (weighted * dx).sum(axis=(1, 2)) / safe
        step_y = 2.0 * (weighted * dy).sum(axis=(1, 2)) / safe
        cx = np.where(good, cx + step_x, cx)
        cy = np.where(good, cy + step_y, cy)
        ok &= good
    ok &= (np.abs(cx) < half - 1) & (np.abs(cy) < half - 1)
    return ix + cx.astype(np.float64), iy + cy.astype(np.float64), ok


def extract_sources(
    data: NDArray[np.float32],
    values: ExtractSettings,
    *,
    saturation_adu: float = math.nan,
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Detect and measure the sources of one frame.

    Parameters
    ----------
    data : ndarray of float32, shape (height, width)
        The frame in ADU (not background-subtracted). It is left unchanged.
    values : ExtractSettings
        Completed settings (no None; see :meth:`ExtractSettings.completed`).
    saturation_adu : float
        The frame's saturation level (NaN: unknown).

    Returns
    -------
    columns : dict of str to ndarray
        The per-source columns of :data:`EXTRACT_COLUMNS` from ``x`` on (see
        :func:`extract_frames`).
    info : dict
        ``sky_adu`` (median background), ``noise_adu`` (sep's global RMS), ``sources``,
        ``threshold_sigma`` (used), ``retries`` (list of what was retried),
        ``columns_levelled`` (bad columns levelled before detection).
    """
    columns, info, _, _, _ = _extract_frame(data, values, saturation_adu, in_place=False)
    return columns, info


def _extract_frame(
    data: NDArray[np.float32],
    values: ExtractSettings,
    saturation_adu: float,
    *,
    in_place: bool,
    reference: Reference | None = None,
) -> tuple[
    dict[str, NDArray[Any]],
    dict[str, Any],
    NDArray[np.float32],
    NDArray[np.float32],
    NDArray[np.float32],
]:
    """:func:`extract_sources`, also returning the background-subtracted frame and the sky
    level and RMS maps; with ``in_place`` the frame is background-subtracted in place (when
    it is float32, C-contiguous and finite)."""
    import sep

    fwhm = float(values.kernel_fwhm_px)  # type: ignore[arg-type]
    mesh = int(values.background_mesh_px)  # type: ignore[arg-type]
    image = np.ascontiguousarray(data, dtype=np.float32)
    finite = np.isfinite(image)
    mask = None
    if not finite.all():
        mask = ~finite
        image = np.where(finite, image, np.float32(np.median(image[finite]) if finite.any() else 0))
    elif image is data and not in_place:
        image = image.copy()
    del finite
    h, w = image.shape
    saturated, flat = _saturated_pixels(image, saturation_adu)
    if flat is not None:
        # Saturated pixels and their neighbours hold no measurement: left out of the sky,
        # and set to the sky, so that a bleeding column does not join everything it
        # passes into one detection.
        mask = flat if mask is None else (mask | flat)
    mesh = max(8, min(mesh, max(8, min(h, w) // 2)))
    background = sep.Background(
        image, mask=mask, bw=mesh, bh=mesh, fw=values.background_filter, fh=values.background_filter
    )
    back = background.back(dtype=np.float32)
    rms = background.rms(dtype=np.float32)
    noise = float(background.globalrms)
    if not noise > 0 or not np.isfinite(noise):
        noise = float(np.median(rms))
    # A pixel with no noise would make any fluctuation infinitely significant.
    np.maximum(rms, np.float32(max(noise, 1e-12) * 1e-3), out=rms)
    image -= back
    if mask is not None:
        image[mask] = 0.0
    fit = None
    if reference is not None:
        fit = reference.fit(image, mask)
        blind = reference.subtract(image, fit, flat)
        if mask is not None:
            image[mask] = 0.0
        rms = reference.error(rms, fit)
    columns_fixed, offsets = column_offsets(image, noise, values.column_sigma)
    for column, offset in zip(columns_fixed, offsets, strict=True):
        image[:, column] -= np.float32(offset)
    kernel = gaussian_kernel(fwhm)
    objects, threshold, retries = _detect(image, rms, values, kernel)
    info: dict[str, Any] = {
        "sky_adu": float(np.median(back[:: max(1, h // 64), :: max(1, w // 64)])),
        "noise_adu": noise,
        "sources": len(objects),
        "threshold_sigma": threshold,
        "retries": retries,
        "columns_levelled": [int(c) for c in columns_fixed],
    }
    if fit is not None:
        info["reference"] = {**fit.as_dict(), "blind_fraction": round(float(blind.mean()), 5)}
    columns = _measure(image, back, rms, objects, values, saturated)
    return columns, info, image, back, rms


def _measure(
    image: NDArray[np.float32],
    back: NDArray[np.float32],
    rms: NDArray[np.float32],
    objects: NDArray[Any],
    values: ExtractSettings,
    saturated: NDArray[np.int32] | None,
) -> dict[str, NDArray[Any]]:
    """Positions, fluxes, peaks, shapes and sharpness of sep's objects.

    ``saturated`` is the integral image of :func:`_saturated_pixels` (None: nothing
    saturated).
    """
    import sep

    n = len(objects)
    fwhm = float(values.kernel_fwhm_px)  # type: ignore[arg-type]
    radius = float(values.aperture_radius_px)  # type: ignore[arg-type]
    sigma = fwhm / SIGMA_TO_FWHM
    x = objects["x"].astype(np.float64)
    y = objects["y"].astype(np.float64)
    a = objects["a"].astype(np.float64)
    b = objects["b"].astype(np.float64)
    theta = objects["theta"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        elongation = np.where(b > 0, a / b, np.inf)
    flags = objects["flag"].astype(np.int32)
    isophotal = np.ones(n, dtype=bool)
    if values.windowed_positions and n:
        point = elongation < _POINT_ELONGATION
        if point.any():
            wx, wy, ok = _windowed_centroids(image, x[point], y[point], sigma)
            moved = np.hypot(wx - x[point], wy - y[point])
            ok &= moved < max(1.0, fwhm)
            idx = np.flatnonzero(point)[ok]
            x[idx], y[idx] = wx[ok], wy[ok]
            isophotal[idx] = False
    flags[isophotal] |= FLAG_ISOPHOTAL_POSITION
    # Aperture: a circle for point sources, stretched along a trail's long axis.
    shaped = np.isfinite(a) & np.isfinite(b) & np.isfinite(theta) & (elongation >= 1.5)
    stretch = np.sqrt(3.0 * np.maximum(np.where(shaped, a * a - b * b, 0.0), 0.0))
    a_ap = np.where(shaped, radius + stretch, radius)
    b_ap = np.full(n, radius)
    angle = np.clip(np.where(shaped, theta, 0.0), -math.pi / 2, math.pi / 2)
    if n:
        flux, flux_err, aper_flags = sep.sum_ellipse(
            image, x, y, a_ap, b_ap, angle, r=1.0, err=rms, subpix=5
        )
        flags |= aper_flags.astype(np.int32)
    else:
        flux = flux_err = np.empty(0)
    xpeak = objects["xpeak"].astype(np.int64)
    ypeak = objects["ypeak"].astype(np.int64)
    peak = objects["peak"].astype(np.float64)
    local_rms = rms[ypeak, xpeak].astype(np.float64)
    local_back = back[ypeak, xpeak].astype(np.float64)
    if saturated is not None and n:
        flags[_touches(saturated, objects)] |= FLAG_SATURATED
    peak_fraction, encircled = _gaussian_ratios(fwhm, radius)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux_err > 0, flux / flux_err, np.nan)
        concentrated = np.where(peak > 0, peak / np.maximum(flux, peak), np.nan)
    sharpness = concentrated * (encircled / peak_fraction)
    return {
        "x": x,
        "y": y,
        "flux": np.asarray(flux, dtype=np.float64),
        "flux_err": np.asarray(flux_err, dtype=np.float64),
        "snr": snr,
        "peak": peak,
        "peak_snr": peak / local_rms,
        "a": a,
        "b": b,
        "theta": theta,
        "elongation": elongation,
        "npix": objects["npix"].astype(np.int32),
        "xmin": objects["xmin"].astype(np.int32),
        "xmax": objects["xmax"].astype(np.int32),
        "ymin": objects["ymin"].astype(np.int32),
        "ymax": objects["ymax"].astype(np.int32),
        "flags": flags,
        "sharpness": sharpness,
        "background": local_back,
        "rms": local_rms,
        "flux_iso": objects["flux"].astype(np.float64),
        "xpeak": xpeak.astype(np.int32),
        "ypeak": ypeak.astype(np.int32),
    }


# --------------------------------------------------------------------------- chunks


def _frame_rows(frames_table: Table | None) -> dict[str, dict[str, Any]]:
    """The check table's rows by file name (empty without a table)."""
    if frames_table is None or len(frames_table) == 0:
        return {}
    names = frames_table.colnames
    rows: dict[str, dict[str, Any]] = {}
    for row in frames_table:
        rows[str(row["file"])] = {name: row[name] for name in names}
    return rows


def _session_saturation(frames_table: Table | None) -> float:
    """The median saturation level of the session's good frames (NaN when none has one)."""
    if frames_table is None or "saturation_adu" not in frames_table.colnames:
        return math.nan
    ok = np.asarray(frames_table["status"]) == "ok" if "status" in frames_table.colnames else True
    levels = np.asarray(frames_table["saturation_adu"], dtype=np.float64)[ok]
    levels = levels[np.isfinite(levels) & (levels > 0)]
    return float(np.median(levels)) if levels.size else math.nan


def _saturation_level(
    settings: ExtractSettings,
    row: Mapping[str, Any] | None,
    frame_level: float,
    session_level: float,
) -> float:
    """A frame's saturation level: configured, else the check's for this frame (which
    knows a plateau below the type's limit), else the reader's, else the session's."""
    if settings.saturation_adu is not None:
        return float(settings.saturation_adu)
    for level in (
        row.get("saturation_adu") if row is not None else None,
        frame_level,
        session_level,
    ):
        if level is not None and math.isfinite(float(level)) and float(level) > 0:
            return float(level)
    return math.nan


def _read_reference(path: Path, settings: ExtractSettings, frames_table: Table | None) -> Reference:
    """The sky model's median stack less its sky, ready to subtract
    (see :mod:`spacepixels.difference`)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            image = native_order(np.asarray(hdul[0].data)).astype(np.float32, copy=False)
            noise = float(hdul[0].header.get("NOISE", math.nan))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: the sky model's reference cannot be read ({exc})") from exc
    if image.ndim != 2:
        raise ValueError(f"{path}: the sky model's reference is not a 2-D image")
    sky = math.nan
    if frames_table is not None and "background" in frames_table.colnames:
        levels = np.asarray(frames_table["background"], dtype=np.float64)
        levels = levels[np.isfinite(levels)]
        sky = float(np.median(levels)) if levels.size else math.nan
    saturation = (
        float(settings.saturation_adu)
        if settings.saturation_adu is not None
        else _session_saturation(frames_table)
    )
    return Reference(
        image,
        noise,
        jitter_px=float(settings.reference_jitter_px),  # type: ignore[arg-type]
        mismatch=float(settings.reference_mismatch),
        fwhm_px=float(settings.kernel_fwhm_px),  # type: ignore[arg-type]
        saturation_adu=saturation if math.isfinite(sky) else math.nan,
        sky_adu=sky if math.isfinite(sky) else 0.0,
    )


def _median_fwhm(frames_table: Table | None) -> float | None:
    if frames_table is None or "fwhm" not in frames_table.colnames or len(frames_table) == 0:
        return None
    values = np.asarray(frames_table["fwhm"], dtype=np.float64)
    if "status" in frames_table.colnames:
        values = values[np.asarray(frames_table["status"]) == "ok"]
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.median(values)) if len(values) else None


def _empty_columns() -> dict[str, NDArray[Any]]:
    ints = {"frame_index", "npix", "xmin", "xmax", "ymin", "ymax", "flags", "xpeak", "ypeak"}
    out: dict[str, NDArray[Any]] = {}
    for name in EXTRACT_COLUMNS:
        if name == "frame":
            out[name] = np.array([], dtype=str)
        elif name in ints:
            out[name] = np.array([], dtype=np.int32 if name != "frame_index" else np.int64)
        else:
            out[name] = np.array([], dtype=np.float64)
    return out


_UNITS = {
    "mjd": "d",
    "x": "pix",
    "y": "pix",
    "flux": "adu",
    "flux_err": "adu",
    "peak": "adu",
    "a": "pix",
    "b": "pix",
    "theta": "rad",
    "npix": "pix",
    "background": "adu",
    "rms": "adu",
    "flux_iso": "adu",
}

_DESCRIPTIONS = {
    "frame": "base name of the frame",
    "frame_index": "the frame's index in check/frames.ecsv",
    "mjd": "mid-exposure MJD (UTC); NaN without a time",
    "x": "0-based column of the centroid (windowed for point sources)",
    "y": "0-based row of the centroid",
    "flux": "background-subtracted sum in the aperture",
    "flux_err": "sky noise of that sum",
    "snr": "flux / flux_err",
    "peak": "brightest pixel above the background",
    "peak_snr": "peak / sky RMS at the peak",
    "a": "isophotal semi-major axis (RMS)",
    "b": "isophotal semi-minor axis (RMS)",
    "theta": "position angle of a, from +x towards +y (sep)",
    "elongation": "a / b",
    "npix": "pixels in the isophote",
    "flags": "sep flags | 256 saturated | 512 isophotal position",
    "sharpness": "peak/flux relative to a Gaussian star of the kernel FWHM: ~1 stars, >>1 hits",
    "background": "sky level at the peak",
    "rms": "sky RMS at the peak",
    "flux_iso": "isophotal flux (sep)",
    "xpeak": "column of the brightest pixel",
    "ypeak": "row of the brightest pixel",
}


def extract_frames(
    frame_paths: Sequence[Path],
    frames_table: Table | None,
    values: Mapping[str, Any],
    out_path: Path | None,
    *,
    reference_path: Path | None = None,
    progress: Callable[[Path], None] | None = None,
) -> Table:
    """Extract the sources of a chunk of frames and write them as one ECSV catalogue.

    Parameters
    ----------
    frame_paths : sequence of Path
        The chunk's frames.
    frames_table : astropy.table.Table or None
        ``check/frames.ecsv``: frames whose ``status`` is not ``"ok"`` are skipped; its
        ``index`` and ``mjd_mid`` give each source's ``frame_index`` and ``mjd``, its
        median ``fwhm`` the kernel when none was tuned or configured, and its
        ``saturation_adu`` each frame's saturation level (the session's median level for
        a frame that has none, such as a float frame among integer ones) unless
        ``saturation_adu`` is configured.
    values : Mapping
        The resolved ``extract`` settings (configured or tuned, see
        :func:`spacepixels.tune.resolve`); keys of :class:`ExtractSettings`, None or
        missing ones take their fallbacks. Other keys (such as the provenance) are refused.
    out_path : Path or None
        Where to write the catalogue (atomically); None writes nothing.
    reference_path : Path, optional
        The sky model's ``reference.fits``: with ``subtract_reference`` (the default),
        each frame of its shape is searched minus it, fitted to the frame
        (:mod:`spacepixels.difference`). Without it every frame is searched as it is.
    progress : callable, optional
        Called with each frame's path once it is done.

    Returns
    -------
    astropy.table.Table
        One row per source per frame, with the columns of :data:`EXTRACT_COLUMNS`:

        - ``frame`` (base name), ``frame_index`` (the check table's ``index``, -1 when the
          frame is not in it), ``mjd`` (mid-exposure, NaN without a time);
        - ``x``, ``y`` (px, 0-based; windowed centroid for point sources);
        - ``flux``, ``flux_err`` (ADU, aperture), ``snr`` (``flux / flux_err``);
        - ``peak`` (ADU above the background), ``peak_snr`` (``peak / rms``);
        - ``a``, ``b`` (px), ``theta`` (rad), ``elongation`` (``a / b``), ``npix``,
          ``xmin``, ``xmax``, ``ymin``, ``ymax`` (the isophote's bounding box);
        - ``flags``: sep's object and aperture flags, :data:`FLAG_SATURATED`,
          :data:`FLAG_ISOPHOTAL_POSITION`;
        - ``sharpness`` (about 1 for stars, up to :func:`single_pixel_sharpness` for a
          one-pixel hit; see the module docstring);
        - ``background``, ``rms`` (ADU, sky level and RMS at the peak);
        - ``flux_iso`` (ADU, sep's isophotal flux), ``xpeak``, ``ypeak``.

        ``meta`` holds ``stage``, ``values`` (the completed settings), ``frames`` (per
        frame: ``file``, ``index``, ``mjd``, ``sources``, ``sky_adu``, ``noise_adu``,
        ``threshold_sigma``, ``retries``, ``columns_levelled``, and ``reference``: the
        fit to the reference, or None), ``skipped`` (frames not ok, with why),
        ``reference`` (the reference's file name, or None) and ``single_pixel_sharpness``.

    Raises
    ------
    ValueError
        For a key of ``values`` that is not an extract setting, or a value out of range.
    spacepixels.frames.FrameReadError
        When a frame that passed the check cannot be read (the message names it).
    """
    settings = ExtractSettings.from_mapping(values).completed(_median_fwhm(frames_table))
    rows = _frame_rows(frames_table)
    session_saturation = _session_saturation(frames_table)
    reference = None
    if settings.subtract_reference and reference_path is not None:
        reference = _read_reference(Path(reference_path), settings, frames_table)
    parts: list[dict[str, NDArray[Any]]] = []
    per_frame: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for path in (Path(p) for p in frame_paths):
        row = rows.get(path.name)
        if rows and row is None:
            logger.warning("%s is not in the check table; extracted without index or time", path)
        if row is not None and str(row.get("status", "ok")) != "ok":
            skipped.append({"file": path.name, "reason": str(row.get("reason", "")) or "rejected"})
            logger.info("%s skipped: rejected by the check", path.name)
            continue
        frame = read_frame(path)
        saturation = _saturation_level(settings, row, frame.saturation_adu, session_saturation)
        subtract = reference
        if reference is not None and frame.data.shape != reference.shape:
            logger.warning(
                "%s: %s differs in size from the reference %s; searched as it is",
                path.name,
                frame.data.shape,
                reference.shape,
            )
            subtract = None
        columns, info, _, _, _ = _extract_frame(
            frame.data, settings, saturation, in_place=True, reference=subtract
        )
        del frame
        index = int(row["index"]) if row is not None and "index" in row else -1
        mjd = float(row["mjd_mid"]) if row is not None and "mjd_mid" in row else math.nan
        n = info["sources"]
        columns = {
            "frame": np.full(n, path.name, dtype=f"U{max(1, len(path.name))}"),
            "frame_index": np.full(n, index, dtype=np.int64),
            "mjd": np.full(n, mjd, dtype=np.float64),
            **columns,
        }
        parts.append(columns)
        per_frame.append({"file": path.name, "index": index, "mjd": mjd, **info})
        if info["retries"]:
            logger.warning("%s: %s", path.name, "; ".join(info["retries"]))
        logger.debug(
            "%s: %d sources, sky %.1f, noise %.2f", path.name, n, info["sky_adu"], info["noise_adu"]
        )
        if progress is not None:
            progress(path)
    merged = _empty_columns()
    if parts:
        merged = {name: np.concatenate([p[name] for p in parts]) for name in EXTRACT_COLUMNS}
    table = Table(merged, names=EXTRACT_COLUMNS)
    for name, unit in _UNITS.items():
        table[name].unit = unit
    for name, text in _DESCRIPTIONS.items():
        table[name].description = text
    table.meta["stage"] = "extract"
    table.meta["values"] = jsonable(settings.to_dict())
    table.meta["single_pixel_sharpness"] = round(
        single_pixel_sharpness(float(settings.kernel_fwhm_px), float(settings.aperture_radius_px)),  # type: ignore[arg-type]
        4,
    )
    table.meta["frames"] = jsonable(per_frame)
    table.meta["skipped"] = skipped
    table.meta["reference"] = Path(reference_path).name if reference is not None else None  # type: ignore[arg-type]
    if out_path is not None:
        write_catalogue(table, Path(out_path))
    logger.info(
        "extract: %d sources in %d frames (%d skipped)", len(table), len(per_frame), len(skipped)
    )
    return table


_FORMATS = {
    "mjd": "%.8f",
    "x": "%.3f",
    "y": "%.3f",
    "flux": "%.6g",
    "flux_err": "%.5g",
    "snr": "%.4g",
    "peak": "%.6g",
    "peak_snr": "%.4g",
    "a": "%.4g",
    "b": "%.4g",
    "theta": "%.4f",
    "elongation": "%.4g",
    "sharpness": "%.4g",
    "background": "%.7g",
    "rms": "%.5g",
    "flux_iso": "%.6g",
}
"""Digits written per column: enough for the measurement, not for its noise."""


def _quoted(text: str) -> str:
    """An ECSV field: quoted (doubling inner quotes) when it holds a space or a quote."""
    if text and not any(c in text for c in ' "\t'):
        return text
    return '"' + text.replace('"', '""') + '"'


_WRITE_BLOCK_ROWS = 20_000
"""Rows formatted at a time when writing a catalogue (bounds the memory of the text)."""


def _data_blocks(table: Table, formats: Mapping[str, str]) -> Iterator[str]:
    """The data rows of ``table`` as ECSV text, a block of rows at a time."""
    pieces: list[str] = []
    for name in table.colnames:
        kind = np.asarray(table[name]).dtype.kind
        if kind in "USb":
            pieces.append("%s")
        elif kind in "iu":
            pieces.append("%d")
        else:
            pieces.append(formats.get(name, "%.10g"))
    row = " ".join(pieces)
    for start in range(0, len(table), _WRITE_BLOCK_ROWS):
        columns: list[list[Any]] = []
        for name in table.colnames:
            values = np.asarray(table[name][start : start + _WRITE_BLOCK_ROWS])
            if values.dtype.kind in "US":
                columns.append([_quoted(str(v)) for v in values.tolist()])
            elif values.dtype.kind == "b":
                columns.append(["True" if v else "False" for v in values.tolist()])
            else:
                columns.append(values.tolist())
        yield "".join(row % values + "\n" for values in zip(*columns, strict=True))


def write_catalogue(table: Table, path: Path) -> None:
    """Write a catalogue as ECSV, whole or not at all (a temporary name, then a rename).

    The header (columns, units, descriptions, metadata) is astropy's own; the rows are
    formatted here, column by column with the digits each measurement needs, which is
    several times faster than astropy's writer for the tens of thousands of rows of a
    chunk. :func:`read_catalogue` (or ``Table.read``) reads it back.

    Parameters
    ----------
    table : astropy.table.Table
        The catalogue (:func:`extract_frames`).
    path : Path
        Destination; its folder is created.
    """
    import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = io.StringIO()
    table[:0].write(header, format="ascii.ecsv")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(header.getvalue())
            for block in _data_blocks(table, _FORMATS):
                handle.write(block)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_catalogue(path: Path, columns: Sequence[str] | None = None) -> Table:
    """Read a catalogue written by :func:`write_catalogue`, fast.

    The header is parsed by astropy (so units, descriptions and metadata come back as
    written); the rows by numpy's C parser, several times faster than astropy's ECSV
    reader. Any ECSV file whose columns are numbers and strings can be read this way.

    Parameters
    ----------
    path : Path
        An ECSV file.
    columns : sequence of str, optional
        Read only these columns (those of them the file has), in the file's order; the
        others are never parsed (less time and memory). Default: all.

    Returns
    -------
    astropy.table.Table
    """
    path = Path(path)
    header_lines: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            header_lines.append(line)
            if not line.startswith("#"):
                break  # the line of column names
        has_rows = bool(handle.readline().strip())
    empty = Table.read("".join(header_lines), format="ascii.ecsv")
    if columns is not None:
        wanted = set(columns)
        empty = empty[[name for name in empty.colnames if name in wanted]]
    if not has_rows or not empty.colnames:
        return empty
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                all_names = line.split()  # the line of column names (plain identifiers)
                break
    usecols = [all_names.index(name) for name in empty.colnames]
    strings = [name for name in empty.colnames if empty[name].dtype.kind in "US"]
    size = 64
    while True:
        dtypes = [
            (name, f"U{size}" if name in strings else empty[name].dtype) for name in empty.colnames
        ]
        data = np.loadtxt(
            path,
            dtype=np.dtype(dtypes),
            delimiter=" ",
            quotechar='"',
            skiprows=len(header_lines),
            comments=None,
            ndmin=1,
            encoding="utf-8",
            usecols=usecols,
        )
        longest = max(
            (int(np.char.str_len(data[n]).max()) for n in strings if len(data)), default=0
        )
        if longest < size:
            break
        size *= 8  # a string may have been cut: read again with room for it
    if len(data) == 0:
        return empty
    out = Table(meta=empty.meta)
    for name in empty.colnames:
        values = data[name]
        if values.dtype.kind == "U":
            values = values.astype(f"U{max(1, int(np.char.str_len(values).max()))}")
        out[name] = values
        out[name].unit = empty[name].unit
        out[name].description = empty[name].description
    return out
