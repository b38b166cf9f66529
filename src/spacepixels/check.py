"""Calibrate-check: is every frame of a session usable, and were the frames calibrated?

The check reads every frame of a session once and keeps only a few numbers per frame,
plus the positions of its brightest stars and of its sharpest single-pixel outliers, so
that its memory does not grow with the size of the frames.

For each frame it measures, on a copy binned 2x2 (four times fewer pixels, the same
levels in ADU):

- the sky ``background`` (median of sep's background map) and the per-pixel sky ``noise``
  (read from the dark side of full-resolution pixels about that map, where stars add
  nothing);
- the ``star_count``, from a sep extraction at ``detect_sigma`` times the binned noise;
- the ``fwhm`` and ``elongation`` of its brightest isolated unsaturated stars, from
  adaptive Gaussian-weighted second moments on full-resolution cut-outs (the moments of
  a Gaussian star are recovered exactly, and a trailed star shows a long axis);
- the fraction of saturated pixels, the darkest level of the frame, and how much darker
  the corners of the background map are than its centre.

Those steps cost less than twice the floor of reading the frame and taking its median
(``benchmarks/check_speed.py``).

A frame is rejected, with a reason a person can read, when it cannot be read, when its
dimensions differ from most frames of the session, when it is constant or mostly not
finite, when it holds many more saturated pixels than the session's frames usually do
(a headlight, twilight; not a bright star that saturates in every frame), or when one of
its measurements is an outlier of the session. Outliers are judged by a robust z-score:
the distance to the session's median in units of the median absolute deviation (scaled
to a standard deviation), so that the bad frames themselves do not move the yardstick.
The deviation is floored at a fraction of the median, so that in a session of three to
five frames the ordinary scatter between good frames does not reject any of them. A high
background or a low star count means cloud or glow; a high elongation means trailing; a
high FWHM across the stars' narrow axis means defocus or poor seeing. Trailed or
defocused stars spread below the detection threshold, so a low star count alone is not
called cloud in such a frame.

Offsets between frames come from matching the brightest stars of each frame with those of
the reference frame: every pairwise difference of positions votes for a translation, the
most voted one is refined on the stars that then coincide. The offset ``(dx, dy)`` of a
frame says that a star at ``(x, y)`` in the reference is at ``(x + dx, y + dy)`` in it.
A session whose frames wander by more than ``max_drift_px`` was not aligned.

Calibration hints are judged on the frames that passed: a dark floor far above zero in
integer frames says that a bias pedestal is still there; corners of the sky darker than
its centre say that no flat was applied; single pixels far sharper than the stars, at
the same place in many frames (unlike cosmic rays, which fall anywhere), say that no
dark was subtracted. Header cards that record a calibration (``BIASFRM``, ``DARKFRM``,
``FLATFRM``, ``CALSTAT``, ``HISTORY`` lines) silence the matching hint.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.stats import mad_std
from astropy.table import Table
from numpy.typing import NDArray

from spacepixels.files import jsonable, write_atomically
from spacepixels.frames import Frame, FrameReadError, is_frame_name, read_frame
from spacepixels.pool import STAR_MODULES, frame_pool
from spacepixels.sessions import snakemake_path_variable
from spacepixels.settings import section_values
from spacepixels.times import ObservationTimeError, observation_time

__all__ = [
    "FRAME_COLUMNS",
    "REASON_KINDS",
    "CheckSettings",
    "check_session",
    "write_check",
]

logger = logging.getLogger(__name__)

FRAME_COLUMNS: tuple[str, ...] = (
    "file",
    "index",
    "date_obs",
    "mjd_start",
    "mjd_mid",
    "exposure_s",
    "time_source",
    "width",
    "height",
    "bitpix",
    "colour",
    "background",
    "noise",
    "star_count",
    "fwhm",
    "elongation",
    "dx",
    "dy",
    "saturated_fraction",
    "status",
    "reason",
    "reason_kind",
    "drift_stars",
    "nonfinite_fraction",
    "darkest_adu",
    "corner_darkening",
    "fwhm_minor",
    "saturation_adu",
)
"""The columns of ``check/frames.ecsv``, in order. The first 21 are the public contract;
``reason_kind`` (comma-separated kinds from :data:`REASON_KINDS`), ``drift_stars`` (stars
matched to measure the offset), ``nonfinite_fraction``, ``darkest_adu``,
``corner_darkening``, ``fwhm_minor`` (FWHM across the narrow axis, which judges focus) and
``saturation_adu`` (the level at which the frame's pixels saturate, which extraction uses)
are there to explain the reasons and hints."""

REASON_KINDS: tuple[str, ...] = (
    "unreadable",
    "dimensions",
    "constant",
    "non-finite",
    "saturation",
    "cloud",
    "trailing",
    "defocus",
)
"""Why a frame may be rejected, as counted in the summary's ``rejected_by_reason``."""

_BIN = 2
"""The check measures background and stars on a copy binned by this factor per axis."""

_BACK_MESH_BINNED = 32
"""Size of sep's background mesh on the binned copy (64 full-resolution pixels)."""

_MIN_MEASURED_SIZE = 64
"""Frames smaller than this (px, either axis) get only a sky level and noise."""

_MIN_AREA_BINNED = 3
"""Fewest connected binned pixels above the threshold for a source to count as a star."""

_DEBLEND_NTHRESH = 8
"""Deblending levels for sep (its default 32 costs twice the time for the same count)."""

_N_MEASURED_STARS = 80
"""How many of the brightest unsaturated stars get adaptive moments per frame; their
centroids also measure the offsets."""

_MIN_SHAPE_STARS = 3
"""Fewest isolated stars for a frame's FWHM and elongation to be measured."""

_MIN_DRIFT_MATCHES = 4
"""Fewest matched stars for a frame's offset to be measured."""

_DRIFT_MATCH_PX = 1.5
"""Largest distance (px) between a star and its match once the offset is applied."""

_SATURATION_MARGIN = 0.98
"""A pixel at or above this fraction of the saturation level counts as saturated (cameras
whose converter tops out a little below the type's largest value)."""

_PLATEAU_PIXELS = 10
"""This many pixels at exactly a frame's maximum make a saturation plateau."""

_PIXELISATION_VAR = 1.0 / 12.0
"""Variance (px^2) a square pixel adds to the second moments of a star."""

_TWO_SIGMA_LOW = 0.5 * math.erfc(math.sqrt(2.0))
"""Fraction of a Gaussian more than two standard deviations below its mean (0.0228)."""

_SIGMA_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))

_CALIBRATION_CARDS: dict[str, tuple[str, ...]] = {
    "bias": ("BIASFRM", "BIASCOR", "ZEROCOR", "BIASSUB", "MBIAS", "PEDESTAL"),
    "dark": ("DARKFRM", "DARKCOR", "DARKSUB", "MDARK"),
    "flat": ("FLATFRM", "FLATCOR", "FLATFLD", "MFLAT"),
}
"""Header cards whose presence records that a calibration was applied."""

_HISTORY_WORDS = re.compile(r"\b(bias|dark|flat|zero)\b|master(bias|dark|flat)", re.IGNORECASE)


@dataclass(frozen=True)
class CheckSettings:
    """Settings of the check stage; every default is the product default.

    Attributes
    ----------
    detect_sigma : float
        Detection threshold for counting stars, in units of the sky noise of the 2x2-binned
        frame (default 5).
    outlier_sigma : float
        A frame whose background, star count, FWHM or elongation lies further than this
        many robust standard deviations from the session's median, on the bad side, is
        rejected (default 5).
    background_scatter_floor : float
        Smallest robust standard deviation assumed for the background, as a fraction of
        the session's median background (default 0.02; the median sky noise is a floor
        too). Keeps tiny sessions from rejecting good frames over ordinary sky changes.
    star_count_scatter_floor : float
        Smallest robust standard deviation assumed for the star count, as a fraction of
        the session's median count (default 0.1: with ``outlier_sigma`` 5, a frame keeps
        at least half the usual stars).
    fwhm_scatter_floor : float
        Smallest robust standard deviation assumed for the FWHM, as a fraction of the
        session's median (default 0.1).
    elongation_scatter_floor : float
        Smallest robust standard deviation assumed for the elongation, as a fraction of the
        session's median (default 0.05).
    max_saturated_fraction : float
        A frame whose fraction of saturated pixels exceeds the session's median fraction
        by more than this is rejected (default 0.01): a headlight or twilight, not a bright
        star that saturates in every frame.
    saturation_adu : float or None
        Level (ADU) at which the camera saturates; None (default) takes the header's
        ``SATURATE``/``DATAMAX`` or the largest value the stored integers can hold, or a
        plateau of pixels at the frame's maximum below that (a 12- or 14-bit converter).
        Pixels at or above 98% of the level count as saturated.
    max_nonfinite_fraction : float
        A frame with a larger fraction of NaN or infinite pixels is rejected (default 0.5).
    max_drift_px : float
        A session whose frames lie further than this (px) from the reference frame is
        reported as not aligned (default 2).
    reference : str
        The frame offsets are measured against: ``"middle"`` (default: the middle frame in
        time among those that passed) or a frame's file name.
    pedestal_hint_adu : float
        The bias pedestal hint is raised when the darkest level (0.1th percentile) of the
        integer frames that passed is above this (default 100 ADU).
    vignetting_hint_fraction : float
        The flat hint is raised when the corners of the sky are darker than its centre by
        more than this fraction (default 0.03). With a bias pedestal the
        fraction is measured on sky plus pedestal, so it reads smaller than the vignetting.
    hot_pixel_sigma : float
        A single pixel this many noise units above the sky, and far sharper than a star,
        is a hot-pixel candidate (default 10).
    hot_pixel_min_frames_fraction : float
        A candidate is a hot pixel when it recurs at the same place in at least this
        fraction of the frames (and at least 2; default 0.5).
    hot_pixel_hint_count : int
        The dark hint is raised when at least this many hot pixels are found (default 10).
    """

    detect_sigma: float = 5.0
    outlier_sigma: float = 5.0
    background_scatter_floor: float = 0.02
    star_count_scatter_floor: float = 0.1
    fwhm_scatter_floor: float = 0.1
    elongation_scatter_floor: float = 0.05
    max_saturated_fraction: float = 0.01
    saturation_adu: float | None = None
    max_nonfinite_fraction: float = 0.5
    max_drift_px: float = 2.0
    reference: str = "middle"
    pedestal_hint_adu: float = 100.0
    vignetting_hint_fraction: float = 0.03
    hot_pixel_sigma: float = 10.0
    hot_pixel_min_frames_fraction: float = 0.5
    hot_pixel_hint_count: int = 10

    def __post_init__(self) -> None:
        positive = (
            "detect_sigma",
            "outlier_sigma",
            "max_drift_px",
            "hot_pixel_sigma",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"check.{name} must be a positive number, not {value!r}")
        fractions = (
            "background_scatter_floor",
            "star_count_scatter_floor",
            "fwhm_scatter_floor",
            "elongation_scatter_floor",
            "max_saturated_fraction",
            "max_nonfinite_fraction",
            "vignetting_hint_fraction",
            "hot_pixel_min_frames_fraction",
        )
        for name in fractions:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"check.{name} must be a number from 0 to 1, not {value!r}")
        if not isinstance(self.pedestal_hint_adu, int | float) or isinstance(
            self.pedestal_hint_adu, bool
        ):
            raise ValueError(
                f"check.pedestal_hint_adu must be a number, not {self.pedestal_hint_adu!r}"
            )
        if self.saturation_adu is not None and (
            not isinstance(self.saturation_adu, int | float)
            or isinstance(self.saturation_adu, bool)
            or not self.saturation_adu > 0
        ):
            raise ValueError(
                f"check.saturation_adu must be a positive number or null, "
                f"not {self.saturation_adu!r}"
            )
        if (
            not isinstance(self.hot_pixel_hint_count, int)
            or isinstance(self.hot_pixel_hint_count, bool)
            or self.hot_pixel_hint_count < 1
        ):
            raise ValueError(
                f"check.hot_pixel_hint_count must be a whole number of at least 1, "
                f"not {self.hot_pixel_hint_count!r}"
            )
        if not isinstance(self.reference, str) or not self.reference.strip():
            raise ValueError(
                f"check.reference must be 'middle' or a frame's file name, not {self.reference!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CheckSettings:
        """Settings from the ``check:`` section of the configuration.

        Parameters
        ----------
        values : Mapping
            Keys named as the attributes; keys left out keep their default.

        Returns
        -------
        CheckSettings

        Raises
        ------
        ValueError
            When a key is unknown (the message names it) or a value is out of range.
        """
        return cls(**section_values(cls, values, "check"))


@dataclass
class _FrameResult:
    """What the check keeps of one frame after reading it."""

    path: Path
    file: str
    read_error: str | None = None
    time_source: str = "none"
    mjd_start: float = math.nan
    mjd_mid: float = math.nan
    exposure_s: float = math.nan
    date_obs: str = ""
    width: int = 0
    height: int = 0
    bitpix: int = 0
    colour: str = ""
    calibrated: frozenset[str] = frozenset()
    nonfinite_fraction: float = math.nan
    constant_value: float | None = None
    measured: bool = False
    background: float = math.nan
    noise: float = math.nan
    star_count: int = -1
    fwhm: float = math.nan
    fwhm_minor: float = math.nan
    elongation: float = math.nan
    saturated_fraction: float = math.nan
    darkest_adu: float = math.nan
    saturation_adu: float = math.nan
    corner_darkening: float = math.nan
    star_xy: NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 2)))
    hot_candidates: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    dx: float = math.nan
    dy: float = math.nan
    drift_stars: int = 0
    kinds: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def reject(self, kind: str, reason: str) -> None:
        self.kinds.append(kind)
        self.reasons.append(reason)


# --------------------------------------------------------------------------- measuring


def _binned(data: NDArray[np.float32]) -> NDArray[np.float32]:
    """Mean of each 2x2 block (odd last row/column dropped): same levels, 4x fewer pixels."""
    h, w = (data.shape[0] // _BIN) * _BIN, (data.shape[1] // _BIN) * _BIN
    d = data[:h, :w]
    out = d[0::2, 0::2] + d[1::2, 0::2]
    out += d[0::2, 1::2]
    out += d[1::2, 1::2]
    out *= np.float32(0.25)
    return np.ascontiguousarray(out, dtype=np.float32)


def _calibration_record(header: Any) -> frozenset[str]:
    """Which calibrations ("bias", "dark", "flat") the header says were applied."""
    done: set[str] = set()
    for kind, cards in _CALIBRATION_CARDS.items():
        if any(card in header for card in cards):
            done.add(kind)
    calstat = header.get("CALSTAT")
    if isinstance(calstat, str):
        letters = calstat.upper()
        done.update(
            k for k, letter in (("bias", "B"), ("dark", "D"), ("flat", "F")) if letter in letters
        )
    for key in ("HISTORY", "COMMENT"):
        if key not in header:
            continue
        for line in header[key]:
            text = str(line)
            if "calib" not in text.lower() and "master" not in text.lower():
                continue
            for match in _HISTORY_WORDS.finditer(text):
                word = (match.group(1) or match.group(2) or "").lower()
                done.add("bias" if word == "zero" else word)
    return frozenset(done)


def _read_time(result: _FrameResult, header: Any) -> None:
    try:
        when = observation_time(header)
    except ObservationTimeError as exc:
        result.time_source = f"unreadable: {exc}"
        return
    if when is None:
        result.time_source = "none"
        return
    result.mjd_start = float(when.start_mjd)
    result.mjd_mid = float(when.mid_mjd)
    result.exposure_s = float(when.exposure_s)
    result.time_source = when.source
    result.date_obs = when.iso_mid


def _effective_saturation(data: NDArray[np.float32], level: float) -> float:
    """The level at which this frame's pixels saturate.

    ``level`` (from the header or the integer type) unless the frame shows a plateau: at
    least :data:`_PLATEAU_PIXELS` pixels at exactly its maximum, below ``level``. That is
    a converter that tops out below the type's largest value (a 12- or 14-bit camera
    writing 16-bit files) or float data clipped at a ceiling.
    """
    top = float(np.max(data))
    if math.isfinite(level) and top >= _SATURATION_MARGIN * level:
        return level
    if np.count_nonzero(data >= top) >= _PLATEAU_PIXELS:
        return top / _SATURATION_MARGIN
    return level


def _saturation_fraction(data: NDArray[np.float32], level: float) -> float:
    """Fraction of pixels at or above :data:`_SATURATION_MARGIN` of ``level``."""
    if not math.isfinite(level):
        return 0.0
    return int(np.count_nonzero(data >= _SATURATION_MARGIN * level)) / data.size


def _adaptive_moments(
    stamps: NDArray[np.float32], start_sigma: float, iterations: int = 8
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centroids and covariances of stars from Gaussian-weighted moments.

    The weight is a Gaussian of covariance ``M``; its weighted moments ``Q`` of a Gaussian
    star of covariance ``C`` are ``(C^-1 + M^-1)^-1``, so ``C = (Q^-1 - M^-1)^-1``. Each
    step sets ``M`` to that estimate (or to ``2 Q`` when noise makes it non-positive),
    which converges to the star's own covariance in a few steps.

    Parameters
    ----------
    stamps : ndarray, shape (n, s, s)
        Background-subtracted cut-outs centred on each star.
    start_sigma : float
        Initial weight width (px).
    iterations : int
        Number of steps.

    Returns
    -------
    centre : ndarray, shape (n, 2)
        (x, y) of each star relative to the stamp centre.
    cov : ndarray, shape (n, 3)
        (cxx, cyy, cxy) in px^2; NaN where the moments failed.
    """
    n, s, _ = stamps.shape
    half = s // 2
    grid = np.arange(s, dtype=np.float64) - half
    xx = grid[None, None, :]
    yy = grid[None, :, None]
    img = stamps.astype(np.float64)
    cx = np.zeros(n)
    cy = np.zeros(n)
    mxx = np.full(n, start_sigma**2)
    myy = np.full(n, start_sigma**2)
    mxy = np.zeros(n)
    ok = np.ones(n, dtype=bool)
    limit = float(half) ** 2
    for _ in range(iterations):
        det = mxx * myy - mxy**2
        det = np.where(det > 0, det, np.nan)
        dx = xx - cx[:, None, None]
        dy = yy - cy[:, None, None]
        r2 = (
            myy[:, None, None] * dx**2
            - 2.0 * mxy[:, None, None] * dx * dy
            + mxx[:, None, None] * dy**2
        ) / det[:, None, None]
        weighted = np.exp(-0.5 * r2) * img
        total = weighted.sum(axis=(1, 2))
        good = ok & np.isfinite(total) & (total > 0)
        safe = np.where(good, total, 1.0)
        ex = (weighted * dx).sum(axis=(1, 2)) / safe
        ey = (weighted * dy).sum(axis=(1, 2)) / safe
        qxx = (weighted * dx**2).sum(axis=(1, 2)) / safe - ex**2
        qyy = (weighted * dy**2).sum(axis=(1, 2)) / safe - ey**2
        qxy = (weighted * dx * dy).sum(axis=(1, 2)) / safe - ex * ey
        cx = cx + np.where(good, ex, 0.0)
        cy = cy + np.where(good, ey, 0.0)
        # C = (Q^-1 - M^-1)^-1, falling back to 2Q where that is not positive definite.
        qdet = qxx * qyy - qxy**2
        with np.errstate(divide="ignore", invalid="ignore"):
            iqxx, iqyy, iqxy = qyy / qdet, qxx / qdet, -qxy / qdet
            imxx, imyy, imxy = myy / det, mxx / det, -mxy / det
            axx, ayy, axy = iqxx - imxx, iqyy - imyy, iqxy - imxy
            adet = axx * ayy - axy**2
            nxx, nyy, nxy = ayy / adet, axx / adet, -axy / adet
            finite = np.isfinite(nxx) & np.isfinite(nyy) & np.isfinite(nxy)
            positive = (qdet > 0) & (adet > 0) & (axx > 0) & finite
            nxx = np.where(positive, nxx, 2.0 * qxx)
            nyy = np.where(positive, nyy, 2.0 * qyy)
            nxy = np.where(positive, nxy, 2.0 * qxy)
            ok = good & (nxx > 0.05) & (nyy > 0.05) & (nxx * nyy - nxy**2 > 0)
            ok &= (nxx < limit) & (nyy < limit)
            ok &= (np.abs(cx) < half / 2) & (np.abs(cy) < half / 2)
        mxx = np.where(ok, nxx, start_sigma**2)
        myy = np.where(ok, nyy, start_sigma**2)
        mxy = np.where(ok, nxy, 0.0)
    cov = np.stack([mxx, myy, mxy], axis=1)
    cov[~ok] = np.nan
    centre = np.stack([cx, cy], axis=1)
    centre[~ok] = np.nan
    return centre, cov


def _nearest_distance(xy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Distance from each point to its nearest other point (inf when alone)."""
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return np.full(len(xy), np.inf)
    dist, _ = cKDTree(xy).query(xy, k=2)
    return dist[:, 1]


def _measure_stars(
    result: _FrameResult,
    data: NDArray[np.float32],
    back: NDArray[np.float32],
    objects: NDArray[Any],
    saturation: float,
) -> None:
    """FWHM, elongation and centroids of the brightest stars, at full resolution."""
    import sep

    h, w = data.shape
    if len(objects) == 0:
        return
    # Binned pixel i covers full-resolution pixels 2i and 2i+1: centre 2i + 0.5.
    x_all = objects["x"] * _BIN + (_BIN - 1) / 2.0
    y_all = objects["y"] * _BIN + (_BIN - 1) / 2.0
    size_binned = np.sqrt(np.maximum(objects["a"] * objects["b"], 1e-6))
    clean = (objects["flag"] & (sep.OBJ_MERGED | sep.OBJ_TRUNC)) == 0
    if not clean.any():
        return
    typical = float(np.median(size_binned[clean])) * _BIN
    half = int(np.clip(math.ceil(4.0 * typical) + 3, 7, 30))
    inside = (
        clean
        & (x_all >= half + 1)
        & (x_all < w - half - 2)
        & (y_all >= half + 1)
        & (y_all < h - half - 2)
    )
    order = np.flatnonzero(inside)
    order = order[np.argsort(-objects["flux"][order])][: 2 * _N_MEASURED_STARS]
    if len(order) == 0:
        return
    ix = np.rint(x_all[order]).astype(np.intp)
    iy = np.rint(y_all[order]).astype(np.intp)
    offs = np.arange(-half, half + 1)
    stamps = data[iy[:, None, None] + offs[None, :, None], ix[:, None, None] + offs[None, None, :]]
    peak = stamps.max(axis=(1, 2))
    if math.isfinite(saturation):
        unsaturated = peak < 0.9 * saturation
    else:
        unsaturated = peak < float(np.max(data))
    keep = np.flatnonzero(unsaturated)[:_N_MEASURED_STARS]
    if len(keep) == 0:
        return
    order, ix, iy, stamps = order[keep], ix[keep], iy[keep], stamps[keep]
    hb, wb = back.shape
    local_back = back[np.minimum(iy // _BIN, hb - 1), np.minimum(ix // _BIN, wb - 1)]
    stamps = stamps - local_back[:, None, None]
    centre, cov = _adaptive_moments(stamps, start_sigma=max(typical, 1.0))
    good = np.isfinite(cov).all(axis=1) & np.isfinite(centre).all(axis=1)
    xs = ix + centre[:, 0]
    ys = iy + centre[:, 1]
    result.star_xy = np.stack([xs[good], ys[good]], axis=1)
    # Shapes from isolated stars only: no other detection within the cut-out.
    isolated = _nearest_distance(np.stack([x_all, y_all], axis=1))[order] > 1.5 * half
    use = good & isolated
    if np.count_nonzero(use) < _MIN_SHAPE_STARS:
        return
    cxx, cyy, cxy = cov[use, 0], cov[use, 1], cov[use, 2]
    mean = 0.5 * (cxx + cyy)
    diff = np.sqrt(0.25 * (cxx - cyy) ** 2 + cxy**2)
    major = np.maximum(mean + diff - _PIXELISATION_VAR, 1e-6)
    minor = np.maximum(mean - diff - _PIXELISATION_VAR, 1e-6)
    result.fwhm = float(np.median(_SIGMA_TO_FWHM * (major * minor) ** 0.25))
    result.fwhm_minor = float(np.median(_SIGMA_TO_FWHM * np.sqrt(minor)))
    result.elongation = float(np.median(np.sqrt(major / minor)))


def _hot_pixel_candidates(
    data: NDArray[np.float32],
    subtracted: NDArray[np.float32],
    back: NDArray[np.float32],
    noise: float,
    fwhm: float,
    k_sigma: float,
) -> NDArray[np.int64]:
    """Flat indices of single pixels far above the sky and far sharper than a star.

    A pixel ``k_sigma`` noise units above the sky lifts its 2x2 block of the binned,
    background-subtracted copy by at least a quarter of that, so only those blocks are
    searched, at their brightest pixel. A star centred on a pixel leaves
    ``exp(-1 / (2 sigma^2))`` of its peak on each of the four next pixels; a hot pixel
    leaves nothing. A candidate's four neighbours must hold on average less than half of
    what the star would, and none of them more than half of the candidate (which drops
    the tips of bleeding columns).
    """
    h, w = data.shape
    if h < 3 or w < 3 or not noise > 0:
        return np.empty(0, np.int64)
    by, bx = np.nonzero(subtracted > 0.25 * k_sigma * noise)
    if len(by) == 0:
        return np.empty(0, np.int64)
    block = np.stack(
        [
            data[_BIN * by, _BIN * bx],
            data[_BIN * by, _BIN * bx + 1],
            data[_BIN * by + 1, _BIN * bx],
            data[_BIN * by + 1, _BIN * bx + 1],
        ]
    )
    brightest = np.argmax(block, axis=0)
    rows = _BIN * by + brightest // 2
    cols = _BIN * bx + brightest % 2
    sky = back[by, bx]
    excess = block[brightest, np.arange(len(by))] - sky
    keep = (excess > k_sigma * noise) & (rows > 0) & (rows < h - 1) & (cols > 0) & (cols < w - 1)
    rows, cols, sky, excess = rows[keep], cols[keep], sky[keep], excess[keep]
    around = np.stack(
        [data[rows - 1, cols], data[rows + 1, cols], data[rows, cols - 1], data[rows, cols + 1]]
    )
    sigma = (fwhm if math.isfinite(fwhm) and fwhm > 0 else 2.0) / _SIGMA_TO_FWHM
    share = float(np.clip(0.5 * math.exp(-0.5 / sigma**2), 0.1, 0.4))
    # The mean of the four neighbours separates stars; their maximum also drops the tips
    # of bleeding columns and pixels beside a bright line.
    sharp = (around.mean(axis=0) - sky < share * excess) & (around.max(axis=0) - sky < 0.5 * excess)
    return rows[sharp].astype(np.int64) * w + cols[sharp]


def _sky_noise(resid: NDArray[np.float32], *, integer: bool) -> float:
    """Per-pixel sky RMS from pixels minus the background map.

    Stars only add light, so the RMS is read from the dark side of the distribution:
    half the distance from the sky to its 2.3th percentile (two standard deviations of a
    Gaussian). Integer pixels are first spread by a uniform ±0.5 so that the percentile
    is not stuck on a whole number of ADU.
    """
    values = resid.ravel()
    if integer:
        rng = np.random.default_rng(0)
        values = values + rng.uniform(-0.5, 0.5, values.size).astype(np.float32)
    return max(float(-np.quantile(values, _TWO_SIGMA_LOW)) / 2.0, 0.0)


def _corner_darkening(back: NDArray[np.float32], full_shape: tuple[int, int]) -> float:
    """How much darker the corners of the sky are than its centre (fraction).

    Fits ``c0 + c1 u + c2 v + c3 r^2`` to the background map, with ``r = 1`` at the
    corners; the linear terms take up a gradient, ``-c3 / c0`` is the vignetting.
    """
    hb, wb = back.shape
    step = max(1, min(hb, wb) // 24)
    sample = back[::step, ::step].astype(np.float64)
    ys = (np.arange(0, hb, step) * _BIN + 0.5)[: sample.shape[0]]
    xs = (np.arange(0, wb, step) * _BIN + 0.5)[: sample.shape[1]]
    h, w = full_shape
    radius = math.hypot((w - 1) / 2.0, (h - 1) / 2.0)
    uu, vv = np.meshgrid((xs - (w - 1) / 2.0) / radius, (ys - (h - 1) / 2.0) / radius)
    design = np.stack([np.ones(uu.size), uu.ravel(), vv.ravel(), (uu**2 + vv**2).ravel()], axis=1)
    if sample.size < 8:
        return math.nan
    coef, *_ = np.linalg.lstsq(design, sample.ravel(), rcond=None)
    if not coef[0] > 0:
        return math.nan
    return float(-coef[3] / coef[0])


def _extract(subtracted: NDArray[np.float32], threshold: float) -> NDArray[Any]:
    """Sources above ``threshold`` (ADU) in a background-subtracted image.

    sep's pixel stack stays at its default size (allocating a large one costs more than
    the extraction) and grows to the whole image only when a frame overflows it.
    """
    import sep

    kwargs = {"minarea": _MIN_AREA_BINNED, "deblend_nthresh": _DEBLEND_NTHRESH}
    try:
        return sep.extract(subtracted, threshold, **kwargs)
    except Exception as exc:
        if "pixel buffer full" not in str(exc) or sep.get_extract_pixstack() >= subtracted.size:
            raise
    previous = sep.get_extract_pixstack()
    sep.set_extract_pixstack(subtracted.size)
    try:
        return sep.extract(subtracted, threshold, **kwargs)
    finally:
        sep.set_extract_pixstack(previous)


def _measure_pixels(result: _FrameResult, frame: Frame, settings: CheckSettings) -> None:
    """Every per-frame measurement that needs the pixels."""
    import sep

    data = frame.data
    finite = np.isfinite(data)
    n_finite = int(np.count_nonzero(finite))
    result.nonfinite_fraction = 1.0 - n_finite / data.size
    if result.nonfinite_fraction > settings.max_nonfinite_fraction:
        return
    if n_finite < data.size:
        data = np.where(finite, data, np.median(data[finite])).astype(np.float32)
    low, high = float(np.min(data)), float(np.max(data))
    if low == high:
        result.constant_value = low
        return
    saturation = (
        float(settings.saturation_adu)
        if settings.saturation_adu is not None
        else float(frame.saturation_adu)
    )
    saturation = _effective_saturation(data, saturation)
    result.saturation_adu = saturation
    result.saturated_fraction = _saturation_fraction(data, saturation)
    result.darkest_adu = float(np.quantile(data[::4, ::4], 1e-3))
    if min(data.shape) < _MIN_MEASURED_SIZE:
        # Too small for a background map or stars: the sky level and noise only.
        result.background = float(np.median(data))
        result.noise = float(mad_std(data))
        result.star_count = 0
        result.measured = True
        return
    binned = _binned(data)
    mesh = max(8, min(_BACK_MESH_BINNED, min(binned.shape) // 4))
    background = sep.Background(binned, bw=mesh, bh=mesh, fw=3, fh=3)
    back = background.back(dtype=np.float32)
    result.background = float(np.median(back[::4, ::4]))
    hb, wb = back.shape
    rows = data[0 : hb * _BIN : 4 * _BIN, : wb * _BIN]
    resid = rows - np.repeat(back[0:hb:4], _BIN, axis=1)[: rows.shape[0]]
    result.noise = _sky_noise(resid, integer=frame.bitpix > 0)
    result.corner_darkening = _corner_darkening(back, data.shape)
    result.measured = True

    rms = float(background.globalrms)
    subtracted = binned - back
    objects: NDArray[Any] = np.empty(0)
    if rms > 0 and math.isfinite(rms):
        try:
            objects = _extract(subtracted, settings.detect_sigma * rms)
        except Exception as exc:  # sep raises bare Exceptions (buffer overflows)
            logger.warning("%s: star extraction failed (%s)", result.file, exc)
            objects = np.empty(0)
            result.star_count = -1
        else:
            result.star_count = len(objects)
    else:
        result.star_count = 0
    if len(objects):
        _measure_stars(result, data, back, objects, saturation)
    result.hot_candidates = _hot_pixel_candidates(
        data, subtracted, back, result.noise, result.fwhm, settings.hot_pixel_sigma
    )


def _read_and_measure(path: Path, settings: CheckSettings) -> _FrameResult:
    result = _FrameResult(path=path, file=path.name)
    try:
        frame = read_frame(path)
    except FrameReadError as exc:
        message = str(exc)
        prefix = f"{path}: "
        if message.startswith(prefix):
            message = message[len(prefix) :]
        result.read_error = message
        return result
    result.height, result.width = frame.data.shape
    result.bitpix = int(frame.bitpix)
    result.colour = frame.colour
    result.calibrated = _calibration_record(frame.header)
    _read_time(result, frame.header)
    _measure_pixels(result, frame, settings)
    return result


def _unusable_entry(path: Path, settings: CheckSettings) -> _FrameResult:
    """The row of an entry named like a frame that discovery did not take as one."""
    variable = snakemake_path_variable(path.name)
    if variable is None:
        return _read_and_measure(path, settings)  # fails before opening: not a file
    result = _FrameResult(path=path, file=path.name)
    result.read_error = (
        f"its name holds {variable!r}, which Snakemake reads as a path variable, so it "
        "was not read: rename the file"
    )
    return result


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class _Yardstick:
    """A session's median and robust scatter of one measurement."""

    median: float
    sigma: float

    def z(self, value: float) -> float:
        return (value - self.median) / self.sigma if self.sigma > 0 else math.nan


def _median(values: Iterable[float]) -> float:
    """Median of the finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def _yardstick(
    values: Iterable[float], floor_fraction: float, *, floor: float = 0.0
) -> _Yardstick | None:
    """Median and robust scatter of a measurement over the session (None below 3 frames).

    The scatter is the MAD scaled to a standard deviation, floored at ``floor_fraction``
    of the median and at ``floor``.
    """
    arr = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    if len(arr) < 3:
        return None
    median = float(np.median(arr))
    sigma = max(float(mad_std(arr)), floor_fraction * abs(median), floor if floor > 0 else 0.0)
    return _Yardstick(median, sigma)


def _fmt(value: float) -> str:
    """A measurement with as many digits as a person needs."""
    if not math.isfinite(value):
        return "nan"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if magnitude >= 1 else f"{value:.3g}"


def _judge(results: list[_FrameResult], settings: CheckSettings) -> tuple[int, int] | None:
    """Set each frame's rejection reasons; return the session's shape."""
    readable = [r for r in results if r.read_error is None]
    for r in results:
        if r.read_error is not None:
            kind = "non-finite" if "no finite pixel" in r.read_error else "unreadable"
            label = "non-finite" if kind == "non-finite" else "unreadable"
            r.reject(kind, f"{label}: {r.read_error}")
    if not readable:
        return None
    shape = Counter(r.shape for r in readable).most_common(1)[0][0]
    for r in readable:
        if r.shape != shape:
            r.reject(
                "dimensions",
                f"dimensions {r.width}x{r.height} unlike the session's {shape[1]}x{shape[0]}",
            )
        elif r.nonfinite_fraction > settings.max_nonfinite_fraction:
            r.reject(
                "non-finite",
                f"non-finite: {100 * r.nonfinite_fraction:.0f}% of pixels are NaN or infinite",
            )
        elif r.constant_value is not None:
            r.reject("constant", f"constant frame: every pixel is {_fmt(r.constant_value)} ADU")

    peers = [r for r in readable if r.measured and r.shape == shape]
    # Saturation is judged above the session's usual level, so that a bright star that
    # saturates in every frame does not reject them all.
    usual = _usual_saturation(peers)
    for r in peers:
        if r.saturated_fraction - usual > settings.max_saturated_fraction:
            r.reject(
                "saturation",
                f"heavy saturation: {_percent(r.saturated_fraction)} of pixels saturated "
                f"(session median {_percent(usual)}, limit "
                f"{_percent(settings.max_saturated_fraction)} more)",
            )
    k = settings.outlier_sigma
    bg_stick = _yardstick(
        [r.background for r in peers],
        settings.background_scatter_floor,
        floor=_median([r.noise for r in peers]),
    )
    count_stick = _yardstick(
        [float(r.star_count) for r in peers if r.star_count >= 0],
        settings.star_count_scatter_floor,
    )
    # Focus and seeing are judged across the narrow axis, so that trailing is not
    # also called defocus; the reason quotes the usual (geometric-mean) FWHM.
    fwhm_stick = _yardstick([r.fwhm_minor for r in peers], settings.fwhm_scatter_floor)
    median_fwhm = _median([r.fwhm for r in peers])
    elong_stick = _yardstick([r.elongation for r in peers], settings.elongation_scatter_floor)
    for r in peers:
        shape_reasons: list[tuple[str, str]] = []
        if elong_stick is not None and math.isfinite(r.elongation):
            if elong_stick.z(r.elongation) > k:
                shape_reasons.append(
                    (
                        "trailing",
                        f"trailing: elongation {r.elongation:.2f} vs session "
                        f"{elong_stick.median:.2f}",
                    )
                )
        if fwhm_stick is not None and math.isfinite(r.fwhm_minor):
            if fwhm_stick.z(r.fwhm_minor) > k:
                shape_reasons.append(
                    (
                        "defocus",
                        f"defocus or poor seeing: FWHM {r.fwhm:.1f} px vs session "
                        f"{median_fwhm:.1f}",
                    )
                )
        cloud: list[str] = []
        if bg_stick is not None and math.isfinite(r.background):
            z = bg_stick.z(r.background)
            if z > k:
                cloud.append(
                    f"background {_fmt(r.background)} ADU, {z:.1f} sigma above the session "
                    f"median {_fmt(bg_stick.median)}"
                )
        # Spread-out stars fall below the threshold: a trailed or defocused frame loses
        # stars without any cloud, so a low count alone then says nothing more.
        if count_stick is not None and r.star_count >= 0 and (cloud or not shape_reasons):
            z = count_stick.z(float(r.star_count))
            if z < -k:
                cloud.append(
                    f"{r.star_count} stars, {-z:.1f} sigma below the session median "
                    f"{count_stick.median:.0f}"
                )
        if cloud:
            r.reject("cloud", "cloud or glow: " + "; ".join(cloud))
        for kind, reason in shape_reasons:
            r.reject(kind, reason)
    return shape


def _usual_saturation(peers: Sequence[_FrameResult]) -> float:
    """The session's median saturated fraction (0 for fewer than 3 frames)."""
    values = [r.saturated_fraction for r in peers if math.isfinite(r.saturated_fraction)]
    return float(np.median(values)) if len(values) >= 3 else 0.0


def _percent(fraction: float) -> str:
    value = 100.0 * fraction
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else f"{value:.2g}%"


# --------------------------------------------------------------------------- drift


def _match_offset(
    reference: NDArray[np.float64], stars: NDArray[np.float64]
) -> tuple[float, float, int]:
    """Translation taking the reference's stars onto this frame's, by voting.

    Returns ``(dx, dy, matched)``; NaN offsets when fewer than
    :data:`_MIN_DRIFT_MATCHES` stars agree.
    """
    from scipy.spatial import cKDTree

    if len(reference) < _MIN_DRIFT_MATCHES or len(stars) < _MIN_DRIFT_MATCHES:
        return math.nan, math.nan, 0
    diffs = (stars[:, None, :] - reference[None, :, :]).reshape(-1, 2)
    cell = 2.0 * _DRIFT_MATCH_PX
    keys = np.floor(diffs / cell).astype(np.int64)
    # Count votes in overlapping cells: each difference votes for its cell and the
    # three cells toward which it leans, so that an offset on a cell edge is not split.
    lean = np.where((diffs / cell - keys) >= 0.5, 1, -1)
    candidates = np.concatenate(
        [
            keys,
            keys + lean * np.array([1, 0]),
            keys + lean * np.array([0, 1]),
            keys + lean,
        ]
    )
    packed = candidates[:, 0] * 1_000_003 + candidates[:, 1]
    values, counts = np.unique(packed, return_counts=True)
    best = values[np.argmax(counts)]
    bx, by = candidates[np.argmax(packed == best)]
    centre = (np.array([bx, by], dtype=np.float64) + 0.5) * cell
    near = np.all(np.abs(diffs - centre) <= cell, axis=1)
    if np.count_nonzero(near) < _MIN_DRIFT_MATCHES:
        return math.nan, math.nan, 0
    guess = np.median(diffs[near], axis=0)
    tree = cKDTree(reference)
    matched = 0
    for _ in range(3):
        dist, idx = tree.query(stars - guess, distance_upper_bound=_DRIFT_MATCH_PX)
        hit = np.isfinite(dist)
        matched = int(np.count_nonzero(hit))
        if matched < _MIN_DRIFT_MATCHES:
            return math.nan, math.nan, matched
        offsets = stars[hit] - reference[idx[hit]]
        guess = np.median(offsets, axis=0)
        spread = np.abs(offsets - guess)
        keep = np.all(spread <= 3.0 * np.maximum(1.4826 * np.median(spread, axis=0), 0.02), axis=1)
        if np.count_nonzero(keep) >= _MIN_DRIFT_MATCHES:
            guess = offsets[keep].mean(axis=0)
    return float(guess[0]), float(guess[1]), matched


def _choose_reference(ordered: list[_FrameResult], settings: CheckSettings) -> _FrameResult | None:
    if settings.reference != "middle":
        for r in ordered:
            if r.file == settings.reference:
                if r.read_error is not None or not r.measured:
                    raise ValueError(
                        f"check.reference {settings.reference!r} cannot be measured: "
                        + (r.read_error or "; ".join(r.reasons) or "no stars")
                    )
                return r
        raise ValueError(
            f"check.reference {settings.reference!r} is not a frame of this session "
            f"(give 'middle' or one of its file names)"
        )
    ok = [r for r in ordered if not r.kinds and len(r.star_xy) >= _MIN_DRIFT_MATCHES]
    if not ok:
        ok = [r for r in ordered if r.measured]
    if not ok:
        return None
    return ok[(len(ok) - 1) // 2]


# --------------------------------------------------------------------------- summary


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key putting ``light_9`` before ``light_10`` (numbers compared as numbers)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _count(n: int, one: str, many: str) -> str:
    """``"1 frame has"`` or ``"3 frames have"``."""
    return f"{n} {one if n == 1 else many}"


def _list_names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _hints(
    ok: list[_FrameResult],
    peers: list[_FrameResult],
    shape: tuple[int, int] | None,
    settings: CheckSettings,
) -> dict[str, Any]:
    calibrated = frozenset().union(*(r.calibrated for r in ok)) if ok else frozenset()

    # Bias pedestal: the darkest level of integer frames far above zero.
    darkest = [r.darkest_adu for r in ok if math.isfinite(r.darkest_adu)]
    level = float(np.median(darkest)) if darkest else math.nan
    integer = bool(ok) and all(r.bitpix > 0 for r in ok)
    pedestal = {
        "present": False,
        "darkest_adu": _finite(level),
        "threshold_adu": settings.pedestal_hint_adu,
        "message": "",
    }
    if not math.isfinite(level):
        pedestal["message"] = "no frame passed: the bias pedestal could not be judged"
    elif {"bias", "dark"} & calibrated:
        pedestal["message"] = (
            f"the headers record a {' and '.join(sorted({'bias', 'dark'} & calibrated))} "
            f"correction (darkest level ~{level:.0f} ADU)"
        )
    elif level > settings.pedestal_hint_adu and integer:
        pedestal["present"] = True
        pedestal["message"] = (
            f"frames carry a bias pedestal (their darkest level is ~{level:.0f} ADU, sky "
            "included): they look uncalibrated (no bias or dark subtracted)"
        )
    elif not integer:
        pedestal["message"] = (
            f"frames hold floating-point pixels, as calibrated frames do (darkest level "
            f"~{level:.0f} ADU)"
        )
    else:
        pedestal["message"] = f"no bias pedestal: the darkest level is ~{level:.0f} ADU"

    # Vignetting: the corners of the sky darker than its centre.
    corners = [r.corner_darkening for r in ok if math.isfinite(r.corner_darkening)]
    darkening = float(np.median(corners)) if corners else math.nan
    vignetting = {
        "present": False,
        "corner_darkening": _finite(darkening),
        "threshold": settings.vignetting_hint_fraction,
        "message": "",
    }
    if not math.isfinite(darkening):
        vignetting["message"] = "the sky's flatness could not be judged"
    elif "flat" in calibrated:
        vignetting["message"] = (
            f"the headers record a flat correction (corners {100 * darkening:.0f}% darker "
            "than the centre)"
        )
    elif darkening > settings.vignetting_hint_fraction:
        vignetting["present"] = True
        vignetting["message"] = (
            f"corners {100 * darkening:.0f}% darker than the centre: no flat applied?"
        )
    else:
        vignetting["message"] = (
            f"the sky is flat to {100 * abs(darkening):.0f}% from centre to corners"
        )

    # Hot pixels: sharp single-pixel outliers recurring at the same place.
    hot: dict[str, Any] = {
        "present": False,
        "count": None,
        "min_frames": None,
        "threshold": settings.hot_pixel_hint_count,
        "examples_xy": [],
        "message": "",
    }
    pool = [r for r in peers if r.measured]
    if len(pool) < 2 or shape is None:
        hot["message"] = "too few frames to tell hot pixels from cosmic rays"
    else:
        min_frames = max(2, math.ceil(settings.hot_pixel_min_frames_fraction * len(pool)))
        flat = np.concatenate([np.unique(r.hot_candidates) for r in pool])
        indices, counts = np.unique(flat, return_counts=True)
        persistent = indices[counts >= min_frames]
        width = shape[1]
        hot["count"] = len(persistent)
        hot["min_frames"] = min_frames
        hot["examples_xy"] = [[int(i % width), int(i // width)] for i in persistent[:20]]
        if "dark" in calibrated:
            hot["message"] = (
                f"the headers record a dark correction ({len(persistent)} hot pixels remain)"
            )
        elif len(persistent) >= settings.hot_pixel_hint_count:
            hot["present"] = True
            hot["message"] = (
                f"{len(persistent)} hot pixels at the same place in at least {min_frames} "
                f"of {len(pool)} frames: no dark subtracted?"
            )
        else:
            hot["message"] = f"{len(persistent)} hot pixels found: the frames look dark-subtracted"
    return {"bias_pedestal": pedestal, "vignetting": vignetting, "hot_pixels": hot}


def _drift(
    ordered: list[_FrameResult],
    reference: _FrameResult | None,
    settings: CheckSettings,
    warnings: list[str],
) -> dict[str, Any]:
    drift: dict[str, Any] = {
        "aligned": None,
        "max_px": None,
        "total_px": None,
        "rate_px_per_min": None,
        "max_drift_px": settings.max_drift_px,
        "reference_frame": reference.file if reference else None,
        "offsets": [],
        "message": "",
    }
    if reference is None:
        drift["message"] = "no frame could be measured: the drift is unknown"
        return drift
    for r in ordered:
        if r is reference:
            r.dx, r.dy, r.drift_stars = 0.0, 0.0, len(r.star_xy)
        elif len(r.star_xy):
            r.dx, r.dy, r.drift_stars = _match_offset(reference.star_xy, r.star_xy)
    drift["offsets"] = [{"file": r.file, "dx": _finite(r.dx), "dy": _finite(r.dy)} for r in ordered]
    usable = [r for r in ordered if not r.kinds and math.isfinite(r.dx)]
    missing = [r.file for r in ordered if not r.kinds and not math.isfinite(r.dx)]
    if missing:
        warnings.append(
            f"{_count(len(missing), 'frame has', 'frames have')} no measured offset (too few "
            f"stars matched the reference {reference.file}): {_list_names(missing)}"
        )
    if len(usable) < 2:
        drift["message"] = "fewer than two good frames have an offset: the drift is unknown"
        return drift
    offsets = np.array([[r.dx, r.dy] for r in usable])
    distance = np.hypot(offsets[:, 0], offsets[:, 1])
    max_px = float(distance.max())
    total = float(np.hypot(*(offsets[-1] - offsets[0])))
    drift["max_px"] = max_px
    drift["total_px"] = total
    times = [r.mjd_mid for r in usable]
    if math.isfinite(times[0]) and math.isfinite(times[-1]) and times[-1] > times[0]:
        drift["rate_px_per_min"] = total / ((times[-1] - times[0]) * 1440.0)
    worst = usable[int(np.argmax(distance))]
    if max_px > settings.max_drift_px:
        drift["aligned"] = False
        drift["message"] = (
            f"frames are not aligned: {worst.file} lies {max_px:.1f} px from the reference "
            f"{reference.file} (first to last frame {total:.1f} px; limit "
            f"{settings.max_drift_px:g} px). Register the frames in your stacking software "
            "and export the aligned frames before running this workflow."
        )
        warnings.append(drift["message"])
    else:
        drift["aligned"] = True
        drift["message"] = (
            f"frames are aligned: at most {max_px:.2f} px from the reference {reference.file}"
        )
    return drift


def _time_span(ordered: list[_FrameResult]) -> dict[str, Any]:
    times = [r.mjd_mid for r in ordered if math.isfinite(r.mjd_mid)]
    if not times:
        return {
            "first_mjd": None,
            "last_mjd": None,
            "first_utc": None,
            "last_utc": None,
            "duration_min": None,
        }
    first = min(ordered, key=lambda r: r.mjd_mid if math.isfinite(r.mjd_mid) else math.inf)
    last = max(ordered, key=lambda r: r.mjd_mid if math.isfinite(r.mjd_mid) else -math.inf)
    return {
        "first_mjd": first.mjd_mid,
        "last_mjd": last.mjd_mid,
        "first_utc": first.date_obs,
        "last_utc": last.date_obs,
        "duration_min": (last.mjd_mid - first.mjd_mid) * 1440.0,
    }


def _session_medians(ok: list[_FrameResult]) -> dict[str, Any]:
    def med(values: list[float]) -> float | None:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.median(finite)) if finite else None

    return {
        "background_adu": med([r.background for r in ok]),
        "noise_adu": med([r.noise for r in ok]),
        "star_count": med([float(r.star_count) for r in ok if r.star_count >= 0]),
        "fwhm_px": med([r.fwhm for r in ok]),
        "elongation": med([r.elongation for r in ok]),
    }


# --------------------------------------------------------------------------- public


def check_session(
    frame_paths: Sequence[Path],
    settings: CheckSettings,
    *,
    other_files: Sequence[str] = (),
    progress: bool = False,
    workers: int = 1,
) -> tuple[Table, dict[str, Any]]:
    """Check every frame of a session and gather calibration hints.

    Parameters
    ----------
    frame_paths : sequence of Path
        The session's frames, in any order. Each is read once.
    settings : CheckSettings
        Thresholds and choices.
    other_files : sequence of str
        Names of the other entries of the session folder (discovery's ``other_files``).
        Those named like frames (``.fits``, ...) become rejected rows, ``unreadable``,
        saying why discovery left them out: not a regular file (a dangling link, a named
        pipe, a link loop; never opened), or a name Snakemake cannot take (see
        :func:`spacepixels.sessions.snakemake_path_variable`; never read). The rest are
        listed in the summary as skipped.
    progress : bool
        Show a progress bar on standard error.
    workers : int
        Processes that read and measure frames side by side (the judging that follows
        needs them all and runs in this process).

    Returns
    -------
    table : astropy.table.Table
        One row per frame, sorted by mid-exposure time (rejected frames without a time
        last, by name); when a frame that passed has no usable time, the session is linked
        by frame order and every row is in file-name order (numbers in names compared as
        numbers: the capture order). The columns are those of :data:`FRAME_COLUMNS`:

        - ``file``: the frame's base name; ``index``: its 0-based position in this order;
        - ``date_obs``: mid-exposure, ISO UTC ("" without a time); ``mjd_start``,
          ``mjd_mid`` (d), ``exposure_s`` (s): NaN when unknown; ``time_source``: the
          header cards used, ``"none"``, or ``"unreadable: ..."`` with the reason;
        - ``width``, ``height`` (px), ``bitpix``, ``colour`` (``mono``, ``rgb``,
          ``bayer``): 0 and "" when unreadable;
        - ``background``, ``noise`` (adu): median sky and robust per-pixel sky RMS;
        - ``star_count``: stars detected (-1 when not measured);
        - ``fwhm`` (pix), ``elongation``: medians over isolated unsaturated stars;
        - ``dx``, ``dy`` (pix): a star at ``(x, y)`` in the reference is at
          ``(x + dx, y + dy)`` in this frame; NaN when not measured;
        - ``saturated_fraction``: fraction of pixels at the saturation level;
        - ``status``: ``"ok"`` or ``"rejected"``; ``reason``: "" or why, with numbers;
        - ``reason_kind``: comma-separated kinds from :data:`REASON_KINDS`;
        - ``drift_stars``: stars matched to measure ``dx``, ``dy``;
        - ``nonfinite_fraction``, ``darkest_adu`` (0.1th percentile),
          ``corner_darkening`` (fraction by which the sky's corners are darker),
          ``fwhm_minor`` (pix, across the stars' narrow axis), ``saturation_adu`` (adu:
          the header's or the stored type's level, or the plateau the frame tops out at;
          NaN when unknown).
    summary : dict
        Strict-JSON-ready: ``counts`` (``frames``, ``ok``, ``rejected``,
        ``rejected_by_reason``), ``skipped_files``, ``reference_frame``, ``shape``
        (``[height, width]``), ``time_span``, ``session`` (medians of the good frames),
        ``hints`` (``bias_pedestal``, ``vignetting``, ``hot_pixels``, ``drift``, each with
        its measured value, ``present`` or ``aligned``, and a ``message``), ``aligned``,
        ``warnings`` and ``settings``.

    Raises
    ------
    ValueError
        When ``settings.reference`` names a file that is not a readable frame of the
        session.
    """
    from tqdm import tqdm

    paths = [Path(p) for p in frame_paths]
    folder = paths[0].parent if paths else None
    unusable = [n for n in other_files if folder is not None and is_frame_name(n)]
    other_files = [n for n in other_files if n not in unusable]
    results: list[_FrameResult] = []
    with frame_pool(workers, len(paths), preload=STAR_MODULES) as pool:
        measured = pool.map(_read_and_measure, paths, [settings] * len(paths))
        for result in tqdm(
            measured,
            total=len(paths),
            desc="check",
            unit="frame",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        ):
            logger.debug(
                "%s: background %.1f, noise %.2f, %d stars, FWHM %.2f, elongation %.2f",
                result.file,
                result.background,
                result.noise,
                result.star_count,
                result.fwhm,
                result.elongation,
            )
            results.append(result)

    # Entries named like frames that discovery could not hand over: rows saying why.
    results.extend(_unusable_entry(folder / name, settings) for name in unusable)

    ordered = sorted(
        results,
        key=lambda r: (0, r.mjd_mid, r.file) if math.isfinite(r.mjd_mid) else (1, 0.0, r.file),
    )
    shape = _judge(ordered, settings)
    untimed = [r.file for r in ordered if not r.kinds and not math.isfinite(r.mjd_mid)]
    if untimed:
        # The session is then linked by frame order: take the capture order, which
        # capture programs write into the file names, rather than the timed frames first.
        ordered.sort(key=lambda r: _natural_key(r.file))
    reference = _choose_reference(ordered, settings)
    warnings: list[str] = []
    if len([r for r in ordered if r.read_error is None]) < 3:
        warnings.append(
            "fewer than 3 readable frames: frames were not compared with each other for "
            "cloud, trailing or focus"
        )
    drift = _drift(ordered, reference, settings, warnings)
    peers = [r for r in ordered if r.read_error is None and shape is not None and r.shape == shape]

    if untimed:
        they = "they" if len(untimed) > 1 else "it"
        warnings.insert(
            0,
            f"{_count(len(untimed), 'frame has', 'frames have')} no usable time: {they} will "
            f"be linked by frame order, the session's frames taken in file-name order "
            f"({_list_names(untimed)})",
        )
    same_time = Counter(r.mjd_mid for r in ordered if not r.kinds and math.isfinite(r.mjd_mid))
    shared = sum(n for n in same_time.values() if n > 1)
    if shared:
        warnings.append(
            f"{shared} frames share their mid-exposure time with another frame: their order "
            "among themselves is by file name"
        )
    usual = _usual_saturation([r for r in peers if r.measured])
    if usual > settings.max_saturated_fraction:
        warnings.append(
            f"the frames have {_percent(usual)} of their pixels saturated (median): frames "
            "were rejected for saturation only above that"
        )
    if other_files:
        warnings.append(
            f"{_count(len(other_files), 'file', 'files')} in the session folder "
            f"{'is not a frame and was' if len(other_files) == 1 else 'are not frames and were'}"
            f" skipped: {_list_names(sorted(other_files))}"
        )

    ok = [r for r in ordered if not r.kinds]
    hints = _hints(ok, peers, shape, settings)
    hints["drift"] = drift

    by_reason: Counter[str] = Counter()
    for r in ordered:
        by_reason.update(dict.fromkeys(r.kinds, 1))
    summary: dict[str, Any] = {
        "counts": {
            "frames": len(ordered),
            "ok": len(ok),
            "rejected": len(ordered) - len(ok),
            "rejected_by_reason": {k: by_reason[k] for k in REASON_KINDS if by_reason[k]},
        },
        "skipped_files": sorted(other_files),
        "reference_frame": reference.file if reference else None,
        "shape": list(shape) if shape else None,
        "time_span": _time_span(ordered),
        "session": _session_medians(ok),
        "hints": hints,
        "aligned": drift["aligned"],
        "warnings": warnings,
        "settings": asdict(settings),
    }
    for r in ordered:
        if r.kinds:
            logger.info("%s rejected: %s", r.file, "; ".join(r.reasons))
    return _table(ordered, summary), jsonable(summary)


def _table(ordered: list[_FrameResult], summary: Mapping[str, Any]) -> Table:
    rows = {
        "file": [r.file for r in ordered],
        "index": list(range(len(ordered))),
        "date_obs": [r.date_obs for r in ordered],
        "mjd_start": [r.mjd_start for r in ordered],
        "mjd_mid": [r.mjd_mid for r in ordered],
        "exposure_s": [r.exposure_s for r in ordered],
        "time_source": [r.time_source for r in ordered],
        "width": [r.width for r in ordered],
        "height": [r.height for r in ordered],
        "bitpix": [r.bitpix for r in ordered],
        "colour": [r.colour for r in ordered],
        "background": [r.background for r in ordered],
        "noise": [r.noise for r in ordered],
        "star_count": [r.star_count for r in ordered],
        "fwhm": [r.fwhm for r in ordered],
        "elongation": [r.elongation for r in ordered],
        "dx": [r.dx for r in ordered],
        "dy": [r.dy for r in ordered],
        "saturated_fraction": [r.saturated_fraction for r in ordered],
        "status": ["rejected" if r.kinds else "ok" for r in ordered],
        "reason": ["; ".join(r.reasons) for r in ordered],
        "reason_kind": [",".join(dict.fromkeys(r.kinds)) for r in ordered],
        "drift_stars": [r.drift_stars for r in ordered],
        "nonfinite_fraction": [r.nonfinite_fraction for r in ordered],
        "darkest_adu": [r.darkest_adu for r in ordered],
        "corner_darkening": [r.corner_darkening for r in ordered],
        "fwhm_minor": [r.fwhm_minor for r in ordered],
        "saturation_adu": [r.saturation_adu for r in ordered],
    }
    dtypes = {
        "file": str,
        "index": np.int64,
        "date_obs": str,
        "time_source": str,
        "width": np.int64,
        "height": np.int64,
        "bitpix": np.int64,
        "colour": str,
        "star_count": np.int64,
        "status": str,
        "reason": str,
        "reason_kind": str,
        "drift_stars": np.int64,
    }
    units = {
        "mjd_start": u.day,
        "mjd_mid": u.day,
        "exposure_s": u.s,
        "width": u.pix,
        "height": u.pix,
        "background": u.adu,
        "noise": u.adu,
        "fwhm": u.pix,
        "dx": u.pix,
        "dy": u.pix,
        "darkest_adu": u.adu,
        "fwhm_minor": u.pix,
        "saturation_adu": u.adu,
    }
    table = Table()
    for name in FRAME_COLUMNS:
        dtype = dtypes.get(name, np.float64)
        values = np.array(rows[name], dtype=dtype) if rows[name] else np.array([], dtype=dtype)
        table[name] = values
        if name in units:
            table[name].unit = units[name]
    table.meta["stage"] = "check"
    table.meta["reference_frame"] = summary.get("reference_frame")
    table.meta["shape"] = summary.get("shape")
    table.meta["comments"] = [
        "One row per frame, by mid-exposure time; see spacepixels.check.check_session.",
        "dx, dy: a star at (x, y) in the reference frame is at (x + dx, y + dy) here.",
    ]
    return table


def write_check(
    table: Table, summary: Mapping[str, Any], frames_path: Path, summary_path: Path
) -> None:
    """Write ``check/frames.ecsv`` and ``check/summary.json``, each whole or not at all.

    Parameters
    ----------
    table : astropy.table.Table
        The per-frame table from :func:`check_session`.
    summary : Mapping
        The summary from :func:`check_session` (NaN becomes null: the JSON is strict).
    frames_path, summary_path : Path
        Where to write them; each is written under a temporary name in the same folder
        and renamed into place.
    """
    text = json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n"
    write_atomically(
        Path(frames_path),
        lambda temp: table.write(temp, format="ascii.ecsv", overwrite=True),
    )
    write_atomically(Path(summary_path), lambda temp: temp.write_text(text, encoding="utf-8"))
