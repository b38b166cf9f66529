"""Link: from per-frame detections to what moved through the field.

The extraction lists the sources of every good frame. Searched as they are, the frames
give mostly stars, at the same place in (nearly) every frame; searched as differences from
the session's stack (extract's default from 8 good frames), what is left of the stars
after the fit (a ring or a dipole where the seeing or the star's wander was not followed).
Both come with hot pixels, a bad column, cosmic rays, noise, and, rarely, the objects we
are after. Link sorts them out in five steps, and writes the candidates in the public
output contract (``candidates.ecsv``, ``detections.ecsv``, pixel coordinates).

1. **Defects and cosmic rays.** A detection on a hot pixel of the defect map (bit 1,
   within a pixel), centred on a bad column (bit 2), or stretched along a bad column that
   its bounding box holds (a column piece blended with a star) is a defect. A detection at
   least ``cosmic_ray_sharpness`` sharp (the extraction's ``sharpness``: about 1 for
   stars, about 10 for a single pixel) and shorter than five FWHM is a cosmic ray, unless
   it is at the same place in other frames, which makes it a hot pixel.

2. **Stationary sources.** The other detections are marked on a raster of the frame, and
   those whose positions touch across frames form groups (a friends-of-friends link of
   about two pixels, made in one pass over the raster instead of comparing every pair).
   The frames are aligned but jitter: the residual offset of each frame is measured on
   the groups that hold a bright star in most frames and taken out, and the extraction's
   centroid errors (``hypot(a, b) / snr``) are scaled, with a floor, so that those stars
   scatter by one sigma. A straight-line motion in time is fitted to every group. A group
   whose core (the detections within ``stationary_radius_px`` of its centre, in two
   frames or more) does not move significantly is a stationary source: its core is
   dropped, the rest (a mover crossing the star, a noise peak on its wing) released. A
   group that moves significantly stays free: slow movers and blends of a mover with a
   star come back this way. What remains outside moving groups is stationary when the
   median stack holds it: a source at its place at least half as bright (a faint star
   caught once, a hot pixel), or for an elongated detection, a level along its major axis
   of at least 15 % of its peak (a blend of stars, a bleed trail). The stack is taken less
   its smooth background, since the sky model subtracts each frame's level as a number.

3. **Point tracks.** The free detections of each frame are put in a k-d tree
   (``scipy.spatial.cKDTree``). A seed is a pair of free detections at most three good
   frames apart and at most ``max_rate_px_per_frame`` (in px per minute at the median
   cadence) times their time difference from each other: the search costs the number of
   detections times the few neighbours each has within reach, not the square of all
   detections. The straight line through a seed counts the frames with a detection near
   its prediction; a seed with enough support grows: the frames are visited from the
   nearest in time outwards, the nearest detection within a gate of 3.5 sigma (centroid
   and prediction errors; at most ``match_radius_px`` beyond the prediction's own error)
   joins, and the weighted least-squares line ``x(t)``, ``y(t)`` is refitted; outliers
   are dropped and a last pass over all frames picks up what was missed. Time is the
   mid-exposure MJD, so rejected frames and pauses in the cadence cost only their missing
   points; frames without a time are linked by their index (the statistics and a warning
   say so, and rates are then per frame). A stationary detection may join a track that
   passes over a star (with a larger error), but never seeds one nor counts towards
   ``min_points``. A trailed detection joins only when its elongation and angle agree
   with the motion over the exposure, and its centroid error grows with its trail.

   A track needs ``min_points`` free detections, a motion significant at 5 sigma and of
   at least ``slow_min_motion_px`` over its detections, a fit consistent with the errors
   (reduced chi-square at most 4), detections in at least a third of the good frames of
   its span, no run of more than ``max_gap_frames`` missed frames unless both sides stand
   alone, positions that advance along it rather than sit in two clumps (a step must not
   fit them three times better than the line: a blend that the extraction splits one way
   or the other), and, unless it is slow, at least ``min_points`` detections where the
   median stack has nothing (a hop between faint stars does not). A slow track (one that
   stays within two FWHM through a third of the session, and every slow mover) must
   also show that it moved in the early and late stacks: early minus late is positive
   where it started and negative where it ended, by at least 30 % of its brightness
   there and three sigmas of the difference's noise (eight for a slow mover), and not
   around a saturated star, where the stacks differ by how far the saturation spreads.
   Tracks are accepted greedily by score; one that loses detections to a better one is
   refitted on the rest, and one that continues an accepted track (same motion, on its
   line, in other frames) is merged into it. A track slower than a fifth of the FWHM per
   frame is a ``slow_mover``: the median stack and the stationary mask swallow those.

   Slow movers the extraction never separates (blended with a star in every frame) are
   found in the stacks instead: early minus late (smoothed over the seeing) has a
   positive peak where one started and a negative one where it ended, at least six
   sigmas of its noise and of similar amplitudes, no further apart than a slow mover
   goes between the two stacks, away from defects and saturated stars and their bleeds.
   Each pair is fitted as a dipole of two stellar profiles, and kept when it moves by at
   least ``slow_min_motion_px`` over the session, passes the contrast test above, and
   no accepted track explains it. Its rows in ``detections.ecsv`` are the detection at
   its place in each frame where there is one, else the position the stacks give
   (``measured`` false).

4. **Streaks.** Free detections elongated at least ``streak_min_elongation`` and longer
   than two FWHM are streak pieces, each a segment: a thin one is its major axis cut by
   its bounding box; a wide one (a trail merged with a star or a bleed trail, whose
   centroid follows the star) is the diagonal of its bounding box. In each frame, pieces
   on one line are merged (angles within 6 degrees, each centre within
   ``streak_line_tolerance_px`` of the other's line; or end to end, the line joining their
   centres along both), with small detections on the line up to ``streak_join_gap_px``
   beyond the ends. Streaks of different frames on one line whose centres advance along it
   at the speed their lengths imply (length over exposure, within a factor of two) form a
   ``streak_track``, which then takes the single streaks lying where it predicts. The
   other streaks are ``streak`` candidates if at least five FWHM long. Streaks that overlap
   a streak of another frame at the same place are fixed to the pixels and dropped.

5. **Flashes.** A detection left over, of aperture S/N at least ``flash_min_snr``, shaped
   like a star (sharpness 0.4-1.6, elongation at most 2, not saturated), away from the
   edges, with the median stack below 30 % of its peak at its place, is an ``anomaly``
   when no other frame has a detection within ``match_radius_px`` of it, or, on a faint
   star, when it is at least 1.5 times the star's usual flux (its brightest detection
   there, median over the frames), by ``flash_min_snr`` sigmas and five times the star's
   own scatter: a flare, or a flash in front of it. Detections close to an accepted track
   in its frames (its own light that did not make it into the fit) are neither streaks
   nor flashes. The stationary mask is not used directly: grown by the seeing at a low
   threshold, it covers a large part of a rich field, and the stack's level at the
   detection answers the same question more sharply.

Scores
------
Every candidate gets a score in 0-1, the product of terms that each say how sure we are:

- tracks and slow movers: ``sqrt(fill) * (1 - exp(-S / 25)) / (1 + max(0, chi2 - 1) / 2)``
  where ``fill`` is the fraction of the good frames of its span in which it was detected,
  ``S`` the combined S/N of its detections (root sum of squares) and ``chi2`` the reduced
  chi-square of the line fit; a slow mover's is multiplied by
  ``min(1, motion / (2 slow_min_motion_px))``, and one checked on the early and late
  stacks by ``min(1, contrast / 0.6)``;
- slow movers from the stacks: ``(1 - exp(-D / 25)) * min(1, contrast / 0.6) *
  min(1, motion / (2 slow_min_motion_px))``, ``D`` the dipole's significance;
- streak tracks: ``(1 - exp(-S / 25)) * min(1, n_frames / 3)``; streaks:
  ``(1 - exp(-S / 25)) * min(1, length / (20 FWHM))``;
- flashes: ``(1 - exp(-snr / flash_min_snr)) * exp(-|ln sharpness|)``.

Candidates are written best first; ids count per kind in that order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray

from spacepixels.difference import saturation_zone
from spacepixels.frames import read_image

__all__ = [
    "CANDIDATE_COLUMNS",
    "DETECTION_COLUMNS",
    "INPUT_COLUMNS",
    "KINDS",
    "LinkSettings",
    "link_session",
    "read_detections",
    "write_link",
]

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("track", "streak_track", "streak", "anomaly", "slow_mover")
"""Candidate kinds, as written in the ``kind`` column."""

_ID_PREFIX: dict[str, str] = {
    "track": "T",
    "streak_track": "K",
    "streak": "S",
    "anomaly": "F",
    "slow_mover": "M",
}

INPUT_COLUMNS: tuple[str, ...] = (
    "frame",
    "frame_index",
    "mjd",
    "x",
    "y",
    "flux",
    "snr",
    "peak_snr",
    "a",
    "b",
    "theta",
    "elongation",
    "sharpness",
)
"""Columns of the extraction catalogues that link needs."""

USED_COLUMNS: tuple[str, ...] = (
    *INPUT_COLUMNS,
    "peak",
    "xmin",
    "xmax",
    "ymin",
    "ymax",
    "flags",
)
"""Columns of the extraction catalogues that link reads when they are there."""

CONTRACT_CANDIDATE_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "n_frames",
    "mjd_start",
    "mjd_end",
    "x_start",
    "y_start",
    "x_end",
    "y_end",
    "rate_px_per_min",
    "direction_deg",
    "snr_median",
    "score",
)
"""The public contract's candidate columns in pixel coordinates (DESIGN.md), in order."""

CONTRACT_DETECTION_COLUMNS: tuple[str, ...] = (
    "candidate_id",
    "frame",
    "mjd",
    "x",
    "y",
    "flux",
    "snr",
    "x0",
    "y0",
    "x1",
    "y1",
)
"""The public contract's detection columns in pixel coordinates, in order."""

CANDIDATE_COLUMNS: tuple[str, ...] = (
    *CONTRACT_CANDIDATE_COLUMNS,
    "rate_px_per_frame",
    "fit_rms_px",
    "n_missed",
    "flux_median",
    "length_px",
    "frame_start",
    "frame_end",
)
"""Columns of ``candidates.ecsv``. The first 13 are the public contract; then
``rate_px_per_frame`` (at the session's median cadence), ``fit_rms_px`` (rms distance of the
detections from the fitted line, 0 for one detection), ``n_missed`` (good frames inside
the candidate's span where it was not detected), ``flux_median`` (ADU),
``length_px`` (a streak's length in its frames, median; 0 for point sources) and the first
and last frames' base names."""

DETECTION_COLUMNS: tuple[str, ...] = (
    *CONTRACT_DETECTION_COLUMNS,
    "frame_index",
    "peak_snr",
    "x_fit",
    "y_fit",
    "elongation",
    "measured",
)
"""Columns of ``detections.ecsv``. ``x0, y0, x1, y1`` are a streak's ends (NaN for point
sources); ``x_fit``, ``y_fit`` the fitted track's position in that frame (the measured one
for single-frame candidates); ``measured`` is False for a row of a slow mover found in the
early and late stacks where no detection of that frame lies at its place (``x``, ``y``
are then the position the stacks give, and ``flux``, ``snr`` NaN)."""

_GATE_SIGMA = 3.5
"""A detection joins a track when it lies within this many sigma of the prediction."""

_MERGE_SLACK_FWHM = 0.25
"""Two tracks of the same motion in different frames are tried as one when the second's
detections lie within the first's prediction error and this many FWHM of its line."""

_MOTION_CHI2 = 25.0
"""Chi-square gain (two axes) of a straight-line motion over a fixed position that counts
as significant motion (about 5 sigma)."""

_STACK_RATIO_STATIC = 0.5
"""A detection outside a moving group is a stationary source when the median stack's peak
at its place is at least this fraction of the detection's own peak."""

_STACK_RATIO_ELONGATED = 0.15
"""For an elongated detection, the median of the stack along its major axis over its peak
above which it is stationary (a blend of stars, a bleed trail)."""

_STACK_RATIO_FLASH = 0.3
"""A flash needs the median stack's peak at its place below this fraction of its peak."""

_SEED_GAPS = 3
"""Seeds pair detections in frames up to this many good frames apart."""

_MIN_FILL = 1.0 / 3.0
"""A track must be detected in at least this fraction of the good frames of its span."""

_ABANDON_P = 1.0e-3
"""A seed is abandoned while it grows once its free detections (the ones a track is
counted by) in the frames visited so far, nearest in time first and on the image, are
this unlikely for a track detected in ``_MIN_FILL`` of its frames (binomial tail). A real
track has many seeds; one that fails this is a line through stars or noise."""

_ABANDON_MIN_FRAMES = 8
"""Frames a seed is grown through before it may be abandoned."""

_MAX_CHI2_RED = 4.0
"""Largest reduced chi-square of an accepted track's line fit (calibrated errors)."""

_SLOW_FWHM_PER_FRAME = 0.2
"""A track slower than this many FWHM per frame is reported as a slow mover."""

_STREAK_MIN_FWHM = 5.0
"""A single-frame streak is at least this many FWHM long (shorter elongated detections are
trailed movers, cosmic-ray tracks or blends, unless they link into a streak track)."""

_STREAK_MAX_WIDTH_SIGMA = 3.5
"""A streak piece whose minor axis (sep's ``b``) is wider than this many sigmas of the
seeing is a trail merged with a star or a bleed trail: its line is taken from its bounding
box rather than from its moments."""

_STREAK_ANGLE_DEG = 6.0
"""Pieces of one streak agree in angle within this many degrees."""

_STREAK_JOIN_ANGLE_DEG = 8.0
"""Pieces of one streak in a frame that lie end to end are one when the line joining their
centres is within this many degrees of both (each may be bent by a blend with a star)."""

_STEP_RATIO = 3.0
"""A track whose positions a step (two clumps) fits this many times better than a line
is a blend split in two ways, not a mover."""

_TRAIL_CENTROID_FRACTION = 0.1
"""The centroid of a trailed detection is uncertain along the trail by this fraction of its
length (added to the centroid error in quadrature)."""

_SLOW_MIN_CONTRAST = 0.3
"""A slow track's early-minus-late dipole must be at least this fraction of its
brightness in the stacks (when the sky model has early and late stacks)."""

_SLOW_MIN_SIGNIFICANCE = 3.0
"""... and significant at this many sigmas of the early-minus-late noise."""

_SLOW_MOVER_SIGNIFICANCE = 8.0
"""... this many for a slow mover, which stays in the stacks at full brightness (those of
per-frame S/N 8 show at 20 sigmas and more; a hop between faint stars at a few)."""

_DIPOLE_SIGMA = 6.0
"""A slow mover in the early and late stacks shows as peaks of early minus late (smoothed
over the seeing) at least this many sigmas of its noise, one positive and one negative."""

_DIPOLE_BALANCE = 0.4
"""... of amplitudes within this ratio of each other."""

_MAX_DIPOLE_FITS = 40
"""Most pairs of peaks fitted as dipoles per session (the strongest first)."""

_MAX_DIPOLE_PEAKS = 5000
"""More positive peaks than this in early minus late means the stacks do not match (bad
registration, clouds): the search is skipped."""

_FLASH_MAX_ELONGATION = 2.0
"""A flash is not more elongated than this."""

_FLASH_MIN_SHARPNESS = 0.4
"""A flash is not more diffuse than this (sharpness below it is a smudge, not a point)."""

_FLASH_MAX_SHARPNESS = 1.6
"""A flash is not sharper than this (stars give 0.7-1.3; grazing cosmic rays of two or
three pixels 2 and more)."""

_FLASH_MIN_JUMP = 1.5
"""A flash on a star (detected in other frames) has at least this many times the star's
usual flux (its brightest detection there, median over the frames), by ``flash_min_snr``
sigmas of the flux errors and five times the star's own scatter."""

_FLASH_MIN_ADDED_SHARPNESS = 0.6
"""... and what it adds to the star is at least this sharp (peak over flux, relative to the
star's): a neighbour that the extraction merged in some frames adds flux and little peak."""

_FLAG_SATURATED = 0x100
"""The extraction's flag of a source whose brightest pixel is saturated (no flash)."""

_EDGE_PX = 3.0
"""Flashes are not looked for within this many pixels of the image edge."""

_SIGMA_FLOOR_PX = 0.03
"""Smallest centroid error assumed for any detection (px)."""

_MAX_SEEDS_REFINED = 20000
"""Most seeds grown into full tracks (the best supported first)."""

_FRAME_SLAB = 1.0e7
"""Distance (px) between frames along the third axis of the tree of all frames."""

_CACHE_FRAMES = 16
"""Frames whose neighbours of a growing track's predictions are looked up at once."""

# Detection classes (internal).
_FREE = 0
_STATIC = 1
_COSMIC = 2
_DEFECT = 3


@dataclass(frozen=True)
class LinkSettings:
    """Settings of the link stage; ``None`` means "tuned".

    The names are those :mod:`spacepixels.tune` chooses (``LINK_KEYS``); a value left as
    None (not tuned, not configured) takes the fallback given here, computed from the
    check's median FWHM.

    Attributes
    ----------
    match_radius_px : float or None
        Largest distance (px) between a track's predicted position and a detection that
        joins it (the gate is 3.5 sigma of the centroid and prediction errors, capped by
        this). Fallback ``max(1.5, 0.7 FWHM)``.
    stationary_radius_px : float or None
        A detection within this distance (px) of a stationary source's mean position
        belongs to it. Fallback ``max(1.0, 0.5 FWHM)``.
    max_rate_px_per_frame : float or None
        Fastest point track searched for (px per frame at the session's median cadence);
        faster objects trail into streaks. Fallback 12.
    min_points : int or None
        Fewest detections of a point track (at least 2). Fallback
        ``max(3, ceil(0.4 x good frames))``.
    max_gap_frames : int or None
        Most consecutive good frames a track may miss; a longer run splits it, and a side
        with fewer than ``max(3, min_points / 2)`` detections is dropped. Fallback 3.
    cosmic_ray_sharpness : float or None
        A detection at least this sharp (the extraction's ``sharpness``: about 1 for
        stars, about 10 for a single pixel) is a cosmic ray or a hot pixel. Fallback 2.5.
    streak_min_elongation : float or None
        Smallest elongation (major over minor axis) of a streak piece. Fallback 3.
    streak_line_tolerance_px : float or None
        Largest distance (px) of a streak piece's centre from the line of the streak it
        joins. Fallback ``max(2, FWHM + 0.5)``.
    streak_join_gap_px : float or None
        Largest gap (px) beyond a streak's end over which small pieces on its line join
        it. Fallback ``5 FWHM``.
    flash_min_snr : float or None
        Smallest aperture S/N (the extraction's ``snr``) of a flash. Fallback 10.
    slow_min_motion_px : float or None
        Smallest motion (px) over its detections for anything to count as moving (point
        tracks and slow movers). Fallback ``max(1.5, FWHM)``.
    """

    match_radius_px: float | None = None
    stationary_radius_px: float | None = None
    max_rate_px_per_frame: float | None = None
    min_points: int | None = None
    max_gap_frames: int | None = None
    cosmic_ray_sharpness: float | None = None
    streak_min_elongation: float | None = None
    streak_line_tolerance_px: float | None = None
    streak_join_gap_px: float | None = None
    flash_min_snr: float | None = None
    slow_min_motion_px: float | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"link setting {item.name} must be a number, not {value!r}")
            low_ok = value >= 0 if item.name == "max_gap_frames" else value > 0
            if not math.isfinite(float(value)) or not low_ok:
                raise ValueError(f"link setting {item.name} must be positive, not {value!r}")
        for name, low in (("min_points", 2), ("max_gap_frames", 0)):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < low):
                raise ValueError(
                    f"link setting {name} must be a whole number >= {low}, not {value}"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> LinkSettings:
        """Settings from a mapping of resolved values (config merged with the tuned ones).

        Parameters
        ----------
        values : mapping or None
            Keys are the attribute names; a value of ``None`` means "tuned".

        Returns
        -------
        LinkSettings

        Raises
        ------
        ValueError
            Naming any unknown key, or a value that is not a positive number.
        """
        values = dict(values or {})
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown link setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        for name in ("min_points", "max_gap_frames"):
            value = values.get(name)
            if isinstance(value, float) and value.is_integer():
                values[name] = int(value)
        return cls(**values)


@dataclass(frozen=True)
class _Resolved:
    """Settings with every value decided."""

    match_radius_px: float
    stationary_radius_px: float
    max_rate_px_per_frame: float
    min_points: int
    max_gap_frames: int
    cosmic_ray_sharpness: float
    streak_min_elongation: float
    streak_line_tolerance_px: float
    streak_join_gap_px: float
    flash_min_snr: float
    slow_min_motion_px: float
    fwhm: float

    def as_dict(self) -> dict[str, float | int]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


def _resolve(settings: LinkSettings, fwhm: float, n_good: int) -> _Resolved:
    def pick(value: float | None, default: float) -> float:
        return float(default if value is None else value)

    return _Resolved(
        match_radius_px=pick(settings.match_radius_px, max(1.5, 0.7 * fwhm)),
        stationary_radius_px=pick(settings.stationary_radius_px, max(1.0, 0.5 * fwhm)),
        max_rate_px_per_frame=pick(settings.max_rate_px_per_frame, 12.0),
        min_points=int(
            settings.min_points
            if settings.min_points is not None
            else max(3, math.ceil(0.4 * n_good))
        ),
        max_gap_frames=int(pick(settings.max_gap_frames, 3)),
        cosmic_ray_sharpness=pick(settings.cosmic_ray_sharpness, 2.5),
        streak_min_elongation=pick(settings.streak_min_elongation, 3.0),
        streak_line_tolerance_px=pick(settings.streak_line_tolerance_px, max(2.0, fwhm + 0.5)),
        streak_join_gap_px=pick(settings.streak_join_gap_px, 5.0 * fwhm),
        flash_min_snr=pick(settings.flash_min_snr, 10.0),
        slow_min_motion_px=pick(settings.slow_min_motion_px, max(1.5, fwhm)),
        fwhm=fwhm,
    )


# --------------------------------------------------------------------------------------
# Inputs


@dataclass
class _Frames:
    """The good frames, in time order, and what link needs of them."""

    file: list[str]
    index: NDArray[np.int64]
    mjd: NDArray[np.float64]
    t: NDArray[np.float64]  # minutes since the first good frame (or frame index)
    exposure: NDArray[np.float64]  # minutes (or frames)
    dx: NDArray[np.float64]
    dy: NDArray[np.float64]
    timed: bool
    cadence: float  # minutes (or 1 frame) per frame, median
    shape: tuple[int, int]
    n_all: int

    @property
    def n(self) -> int:
        return len(self.file)


def _frames(frames_table: Table, shape: tuple[int, int] | None) -> tuple[_Frames, list[str]]:
    warnings: list[str] = []
    for column in ("file", "index", "status"):
        if column not in frames_table.colnames:
            raise ValueError(f"the frames table has no {column!r} column")
    good = frames_table[np.asarray(frames_table["status"]) == "ok"]
    if len(good) == 0:
        raise ValueError("no frame of the session passed the check; nothing to link")
    order = np.argsort(np.asarray(good["index"]), kind="stable")
    good = good[order]
    mjd = (
        np.asarray(good["mjd_mid"], dtype=np.float64)
        if "mjd_mid" in good.colnames
        else np.full(len(good), np.nan)
    )
    index = np.asarray(good["index"], dtype=np.int64)
    timed = bool(np.all(np.isfinite(mjd)))
    if timed:
        order = np.argsort(mjd, kind="stable")
        good, mjd, index = good[order], mjd[order], index[order]
        t = (mjd - mjd[0]) * 1440.0
        exposure = (
            np.asarray(good["exposure_s"], dtype=np.float64) / 60.0
            if "exposure_s" in good.colnames
            else np.full(len(good), np.nan)
        )
    else:
        missing = [str(f) for f, m in zip(good["file"], mjd, strict=True) if not np.isfinite(m)]
        warnings.append(
            f"{len(missing)} good frame(s) have no time (e.g. {missing[0]}): frames are "
            "linked by their order, rates are per frame and times are not given"
        )
        t = index.astype(np.float64)
        exposure = np.full(len(good), np.nan)
    if len(t) > 1:
        steps = np.diff(t) / np.maximum(np.diff(index), 1)
        cadence = float(np.median(steps)) if np.all(np.isfinite(steps)) else 1.0
    else:
        cadence = 1.0
    if not math.isfinite(cadence) or cadence <= 0:
        cadence = 1.0
    bad_exposure = ~np.isfinite(exposure) | (exposure <= 0)
    exposure = np.where(bad_exposure, 0.95 * cadence, exposure)
    dx = np.asarray(good["dx"], dtype=np.float64) if "dx" in good.colnames else np.zeros(len(good))
    dy = np.asarray(good["dy"], dtype=np.float64) if "dy" in good.colnames else np.zeros(len(good))
    dx = np.where(np.isfinite(dx), dx, 0.0)
    dy = np.where(np.isfinite(dy), dy, 0.0)
    if shape is None:
        if "width" in good.colnames and "height" in good.colnames:
            shape = (int(np.max(good["height"])), int(np.max(good["width"])))
        else:
            shape = (0, 0)
    return (
        _Frames(
            file=[str(f) for f in good["file"]],
            index=index,
            mjd=mjd,
            t=t,
            exposure=exposure,
            dx=dx,
            dy=dy,
            timed=timed,
            cadence=cadence,
            shape=shape,
            n_all=len(frames_table),
        ),
        warnings,
    )


@dataclass
class _Sky:
    stack: NDArray[np.float32] | None
    mask: NDArray[np.uint8] | None
    defects: NDArray[np.uint8] | None
    early: NDArray[np.float32] | None
    late: NDArray[np.float32] | None
    info: dict[str, Any]


def _flattened(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """The image less its smooth background (a stack of frames whose sky level was taken
    out as one number keeps the gradients and vignetting of the sky); in place when the
    image is float32 and C-contiguous."""
    import sep

    height, width = image.shape
    mesh = int(max(16, min(64, height // 4, width // 4)))
    if height < 2 * mesh or width < 2 * mesh:
        return image - np.float32(np.median(image))
    data = np.ascontiguousarray(image, dtype=np.float32)
    sep.Background(data, bw=mesh, bh=mesh).subfrom(data)
    return data


def _read_sky(sky_dir: Path | None) -> tuple[_Sky, list[str]]:
    warnings: list[str] = []
    if sky_dir is None:
        return _Sky(None, None, None, None, None, {}), ["no sky model given"]
    sky_dir = Path(sky_dir)
    images: dict[str, NDArray[Any] | None] = {}
    for name in ("stack", "stationary_mask", "defects", "early", "late"):
        images[name] = read_image(sky_dir / f"{name}.fits")
        if images[name] is None and name in ("stack", "defects"):
            warnings.append(f"the sky model has no {name}.fits in {sky_dir}")
    info: dict[str, Any] = {}
    if (sky_dir / "sky.json").is_file():
        try:
            info = json.loads((sky_dir / "sky.json").read_text())
        except (OSError, ValueError) as exc:
            warnings.append(f"cannot read {sky_dir / 'sky.json'}: {exc}")

    def as_float(a: NDArray[Any] | None) -> NDArray[np.float32] | None:
        if a is None:
            return None
        native = a.astype(np.float32, copy=False)  # read for this alone: made finite in place
        bad = ~np.isfinite(native)
        if bad.any():
            native[bad] = 0.0
        return _flattened(native)

    def as_u8(a: NDArray[Any] | None) -> NDArray[np.uint8] | None:
        if a is None:
            return None
        if a.dtype.kind in "iub":
            return a.astype(np.uint8)
        return np.nan_to_num(a.astype(np.float32), copy=False).astype(np.uint8)

    return (
        _Sky(
            stack=as_float(images["stack"]),
            mask=as_u8(images["stationary_mask"]),
            defects=as_u8(images["defects"]),
            early=as_float(images["early"]),
            late=as_float(images["late"]),
            info=info if isinstance(info, dict) else {},
        ),
        warnings,
    )


@dataclass
class _Dets:
    """The detections of the good frames as arrays (one entry per detection)."""

    row: NDArray[np.int64]  # row in the input table
    f: NDArray[np.int64]  # good-frame ordinal
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    X: NDArray[np.float64]  # jitter-corrected
    Y: NDArray[np.float64]
    t: NDArray[np.float64]
    flux: NDArray[np.float64]
    snr: NDArray[np.float64]
    peak: NDArray[np.float64]
    peak_snr: NDArray[np.float64]
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    theta: NDArray[np.float64]
    elong: NDArray[np.float64]
    sharp: NDArray[np.float64]
    xmin: NDArray[np.float64]
    xmax: NDArray[np.float64]
    ymin: NDArray[np.float64]
    ymax: NDArray[np.float64]
    flags: NDArray[np.int64]
    sigma: NDArray[np.float64]
    cls: NDArray[np.int8]

    @property
    def n(self) -> int:
        return int(self.x.size)


def _column(table: Table, name: str, default: float = np.nan) -> NDArray[np.float64]:
    if name in table.colnames:
        return np.asarray(np.ma.filled(table[name], np.nan), dtype=np.float64)
    return np.full(len(table), default, dtype=np.float64)


def _dets(detections: Table, frames: _Frames) -> tuple[_Dets, list[str]]:
    warnings: list[str] = []
    missing = [c for c in ("frame", "x", "y", "flux", "snr") if c not in detections.colnames]
    if missing:
        raise ValueError(f"the detections have no column(s) {', '.join(missing)}")
    ordinal = {name: k for k, name in enumerate(frames.file)}
    # Each frame's name once, not one Python string per detection (millions of them).
    names, which = np.unique(np.asarray(detections["frame"]), return_inverse=True)
    of_name = np.array([ordinal.get(str(name), -1) for name in names], dtype=np.int64)
    f = of_name[which.ravel()] if names.size else np.zeros(0, dtype=np.int64)
    del which
    unknown = sorted(str(n) for n, k in zip(names, of_name, strict=True) if k < 0)
    if unknown:
        warnings.append(
            f"{len(unknown)} frame(s) with detections are not good frames of the check "
            f"table and were ignored (e.g. {unknown[0]})"
        )
    keep = np.nonzero(f >= 0)[0]
    sub = detections[keep] if len(keep) < len(detections) else detections
    f = f[keep]
    x = _column(sub, "x")
    y = _column(sub, "y")
    finite = np.isfinite(x) & np.isfinite(y)
    keep, f, x, y = keep[finite], f[finite], x[finite], y[finite]
    sub = sub[finite] if not finite.all() else sub
    snr = np.maximum(_column(sub, "snr"), 0.0)
    snr = np.where(np.isfinite(snr), snr, 0.0)
    a = _column(sub, "a", 1.0)
    b = _column(sub, "b", 1.0)
    a = np.where(np.isfinite(a) & (a > 0), a, 1.0)
    b = np.where(np.isfinite(b) & (b > 0), b, a)
    elong = _column(sub, "elongation")
    elong = np.where(np.isfinite(elong), elong, a / np.maximum(b, 1e-3))
    peak_snr = _column(sub, "peak_snr")
    peak_snr = np.where(np.isfinite(peak_snr), peak_snr, snr / 2.0)
    sharp = _column(sub, "sharpness", 1.0)
    sharp = np.where(np.isfinite(sharp), sharp, 1.0)
    sigma_raw = np.hypot(a, b) / np.maximum(snr, 1.0)
    return (
        _Dets(
            row=keep.astype(np.int64),
            f=f,
            x=x,
            y=y,
            X=x - frames.dx[f],
            Y=y - frames.dy[f],
            t=frames.t[f],
            flux=_column(sub, "flux"),
            snr=snr,
            peak=_column(sub, "peak"),
            peak_snr=peak_snr,
            a=a,
            b=b,
            theta=np.where(np.isfinite(_column(sub, "theta")), _column(sub, "theta"), 0.0),
            elong=elong,
            sharp=sharp,
            xmin=_column(sub, "xmin"),
            xmax=_column(sub, "xmax"),
            ymin=_column(sub, "ymin"),
            ymax=_column(sub, "ymax"),
            flags=np.nan_to_num(_column(sub, "flags", 0.0)).astype(np.int64),
            sigma=np.maximum(sigma_raw, _SIGMA_FLOOR_PX),
            cls=np.zeros(len(keep), dtype=np.int8),
        ),
        warnings,
    )


def read_detections(paths: Iterable[str | os.PathLike[str]]) -> Table:
    """Read and join the extraction's chunk catalogues: the columns link uses.

    Parameters
    ----------
    paths : iterable of path-like
        ECSV tables, one row per source per frame (see :data:`INPUT_COLUMNS`).

    Returns
    -------
    astropy.table.Table
        All rows, in the order of the files, with the columns of :data:`USED_COLUMNS`
        the files have. Columns are joined one at a time, so that the peak memory is the
        joined table and one column more, not twice the table.
    """
    from spacepixels.extract import read_catalogue

    pieces: dict[str, list[Any]] = {}
    for p in paths:
        table = read_catalogue(Path(p), columns=USED_COLUMNS)
        if len(table.colnames):
            for name in table.colnames:
                pieces.setdefault(name, []).append(table[name].data)
        del table
    if not pieces:
        return Table(names=INPUT_COLUMNS, dtype=[str, int] + [float] * (len(INPUT_COLUMNS) - 2))
    names = [name for name in USED_COLUMNS if name in pieces]
    joined = Table()
    for name in names:
        joined[name] = np.concatenate(pieces.pop(name))
    return joined


# --------------------------------------------------------------------------------------
# Small helpers


def _finite_median(values: NDArray[np.float64]) -> float:
    """Median of the finite values (NaN when there are none), without a warning."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else math.nan


def _lookup(image: NDArray[Any] | None, x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    """Values of ``image`` at the pixels nearest to ``(x, y)`` (clipped to the image)."""
    if image is None or x.size == 0:
        return np.zeros(x.size)
    height, width = image.shape
    xi = np.clip(np.rint(x).astype(np.int64), 0, width - 1)
    yi = np.clip(np.rint(y).astype(np.int64), 0, height - 1)
    return image[yi, xi]


def _lookup_max3(image: NDArray[Any] | None, x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    """The largest value of ``image`` in the 3 x 3 pixels around the pixel nearest to each
    ``(x, y)`` (the image's edge repeated beyond it): a 3 x 3 maximum filter, looked up
    only where it is needed."""
    if image is None or x.size == 0:
        return np.zeros(x.size)
    height, width = image.shape
    xi = np.clip(np.rint(x).astype(np.int64), 0, width - 1)
    yi = np.clip(np.rint(y).astype(np.int64), 0, height - 1)
    return _window_extreme(image, yi, xi, 3, np.maximum)


def _window_extreme(
    image: NDArray[Any], yi: NDArray[np.integer], xi: NDArray[np.integer], size: int, op: Any
) -> NDArray[Any]:
    """``op`` (``np.maximum`` or ``np.minimum``) of ``image`` over the ``size`` x ``size``
    pixels (odd) around each pixel ``(xi, yi)``, the image's edge repeated beyond it."""
    height, width = image.shape
    best = image[yi, xi].copy()
    half = size // 2
    for dy in range(-half, half + 1):
        rows = np.clip(yi + dy, 0, height - 1)
        for dx in range(-half, half + 1):
            if dx or dy:
                op(best, image[rows, np.clip(xi + dx, 0, width - 1)], out=best)
    return best


def _box_mean(
    image: NDArray[Any], x: NDArray[np.float64], y: NDArray[np.float64], size: int
) -> NDArray[np.float64]:
    """The mean of ``image`` in the ``size`` x ``size`` box (odd) centred on the pixel
    nearest to each ``(x, y)`` (clipped to the image), the image mirrored beyond its edges:
    a ``scipy.ndimage.uniform_filter`` looked up only where it is needed."""
    if x.size == 0:
        return np.zeros(0)
    height, width = image.shape
    xi = np.clip(np.rint(x).astype(np.int64), 0, width - 1)
    yi = np.clip(np.rint(y).astype(np.int64), 0, height - 1)
    steps = np.arange(size) - size // 2

    def mirrored(index: NDArray[np.int64], n: int) -> NDArray[np.int64]:
        index = np.where(index < 0, -index - 1, index)
        return np.where(index >= n, 2 * n - index - 1, index)

    rows = mirrored(yi[:, None] + steps, height)
    cols = mirrored(xi[:, None] + steps, width)
    box = image[rows[:, :, None], cols[:, None, :]].astype(np.float64)
    return box.mean(axis=(1, 2))


_EXTREMA_BY_FILTER = 0.02
"""Above this fraction of the pixels to test, :func:`_local_extrema` filters the image."""


def _local_extrema(
    image: NDArray[np.float32], candidates: NDArray[np.bool_], size: int, op: Any
) -> NDArray[np.bool_]:
    """``candidates`` that hold the largest (``op`` ``np.maximum``) or smallest
    (``np.minimum``) value of ``image`` in the ``size`` x ``size`` box around them: what
    ``image == maximum_filter(image, size)`` gives there, looked up at the candidates only
    when they are few. Changes and returns ``candidates``."""
    ys, xs = np.nonzero(candidates)
    if ys.size > _EXTREMA_BY_FILTER * image.size:
        from scipy import ndimage

        fn = ndimage.maximum_filter if op is np.maximum else ndimage.minimum_filter
        candidates &= image == fn(image, size)
        return candidates
    beaten = _window_extreme(image, ys, xs, size, op) != image[ys, xs]
    candidates[ys[beaten], xs[beaten]] = False
    return candidates


def _near_defect(
    defects: NDArray[np.uint8], ys: NDArray[np.intp], xs: NDArray[np.intp]
) -> NDArray[np.bool_]:
    """Whether a defect lies within two pixels (``|dx| + |dy| <= 2``) of each pixel
    ``(xs, ys)``: ``binary_dilation(defects > 0, iterations=2)`` there."""
    height, width = defects.shape
    near = np.zeros(ys.size, dtype=bool)
    for dy in range(-2, 3):
        for dx in range(-(2 - abs(dy)), 3 - abs(dy)):
            y, x = ys + dy, xs + dx
            inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            near[inside] |= defects[y[inside], x[inside]] > 0
    return near


def _angle_diff(a: NDArray[np.float64] | float, b: NDArray[np.float64] | float) -> Any:
    """Smallest difference between two undirected angles (radians), in 0..pi/2."""
    d = np.mod(np.asarray(a) - np.asarray(b), np.pi)
    return np.minimum(d, np.pi - d)


def _streak_length(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Length of a line whose second moments are ``a`` (along) and ``b`` (across): a
    uniform line of length L has a variance L**2 / 12 along it, on top of the profile's."""
    return np.sqrt(12.0 * np.maximum(a * a - b * b, 0.0))


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return list(out.values())


# --------------------------------------------------------------------------------------
# Step 1 and 2: defects, cosmic rays, stationary sources, jitter and centroid errors


def _is_long(d: _Dets, rs: _Resolved) -> NDArray[np.bool_]:
    """Detections that may be pieces of a streak: elongated and longer than the seeing."""
    return (d.elong >= rs.streak_min_elongation) & (_streak_length(d.a, d.b) >= 2.0 * rs.fwhm)


@dataclass
class _Lines:
    """The line each detection would be as a piece of a streak (frame pixels)."""

    cx: NDArray[np.float64]
    cy: NDArray[np.float64]
    angle: NDArray[np.float64]
    x0: NDArray[np.float64]
    y0: NDArray[np.float64]
    x1: NDArray[np.float64]
    y1: NDArray[np.float64]

    @property
    def length(self) -> NDArray[np.float64]:
        return np.hypot(self.x1 - self.x0, self.y1 - self.y0)


def _lines(d: _Dets, rs: _Resolved) -> _Lines:
    """Each detection as a segment.

    A thin detection (minor axis within a few sigmas of the seeing) is the line through its
    centroid along its major axis, cut by its bounding box less a sigma on each side. A
    wide one is a trail merged with a star or a bleed trail: its centroid and axis follow
    the star, but its bounding box still spans the trail, which runs along the box's
    diagonal that slopes like the major axis.
    """
    sigma = rs.fwhm / 2.3548
    half = 0.5 * _streak_length(d.a, d.b)
    ux, uy = np.cos(d.theta), np.sin(d.theta)
    x0, y0 = d.x - half * ux, d.y - half * uy
    x1, y1 = d.x + half * ux, d.y + half * uy
    cx, cy, angle = d.x.copy(), d.y.copy(), d.theta.copy()
    boxed = np.isfinite(d.xmin) & np.isfinite(d.xmax) & np.isfinite(d.ymin) & np.isfinite(d.ymax)
    if boxed.any():
        xlo = np.minimum(d.xmin + sigma, d.x)
        xhi = np.maximum(d.xmax - sigma, d.x)
        ylo = np.minimum(d.ymin + sigma, d.y)
        yhi = np.maximum(d.ymax - sigma, d.y)
        # Thin: clip the axis line by the box.
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(np.abs(ux) > 1e-9, np.maximum((xlo - d.x) / ux, (xhi - d.x) / ux), np.inf)
            ty = np.where(np.abs(uy) > 1e-9, np.maximum((ylo - d.y) / uy, (yhi - d.y) / uy), np.inf)
            sx = np.where(
                np.abs(ux) > 1e-9, np.minimum((xlo - d.x) / ux, (xhi - d.x) / ux), -np.inf
            )
            sy = np.where(
                np.abs(uy) > 1e-9, np.minimum((ylo - d.y) / uy, (yhi - d.y) / uy), -np.inf
            )
        t_hi = np.minimum(tx, ty)
        t_lo = np.maximum(sx, sy)
        ok = boxed & np.isfinite(t_hi) & np.isfinite(t_lo) & (t_hi > t_lo)
        x0 = np.where(ok, d.x + t_lo * ux, x0)
        y0 = np.where(ok, d.y + t_lo * uy, y0)
        x1 = np.where(ok, d.x + t_hi * ux, x1)
        y1 = np.where(ok, d.y + t_hi * uy, y1)
        # Wide: the box's diagonal.
        wide = boxed & (d.b > _STREAK_MAX_WIDTH_SIGMA * sigma)
        rising = np.sin(2.0 * d.theta) >= 0  # y grows with x along the axis
        x0 = np.where(wide, xlo, x0)
        x1 = np.where(wide, xhi, x1)
        y0 = np.where(wide, np.where(rising, ylo, yhi), y0)
        y1 = np.where(wide, np.where(rising, yhi, ylo), y1)
        cx = np.where(wide, 0.5 * (x0 + x1), cx)
        cy = np.where(wide, 0.5 * (y0 + y1), cy)
        angle = np.where(wide, np.arctan2(y1 - y0, x1 - x0), angle)
    return _Lines(cx=cx, cy=cy, angle=angle, x0=x0, y0=y0, x1=x1, y1=y1)


def _bad_columns(defects: NDArray[np.uint8] | None) -> NDArray[np.int64]:
    if defects is None:
        return np.empty(0, dtype=np.int64)
    flagged = ((defects & 2) > 0).mean(axis=0)
    return np.nonzero(flagged > 0.5)[0].astype(np.int64)


def _mark_defects(d: _Dets, sky: _Sky, rs: _Resolved) -> dict[str, int]:
    """Set the class of detections on defects and of cosmic rays; return the counts."""
    defect = np.zeros(d.n, dtype=bool)
    if sky.defects is not None:
        # Bit 1: hot pixels (spacepixels.skymodel.DEFECT_HOT_PIXEL), and their neighbours.
        defect |= _lookup_max3(sky.defects & 1, d.x, d.y) > 0
        columns = _bad_columns(sky.defects)
        if columns.size:
            nearest = np.abs(d.x[:, None] - columns[None, :]).min(axis=1)
            # A detection stretched along a bad column, centred on it (a piece of the
            # column itself) or whose footprint holds it (a piece blended with a star).
            vertical = _angle_diff(d.theta, math.pi / 2) <= math.radians(10.0)
            half_width = 2.0 * np.sqrt((d.a * np.cos(d.theta)) ** 2 + (d.b * np.sin(d.theta)) ** 2)
            lo = np.where(np.isfinite(d.xmin), d.xmin, d.x - half_width) - 0.5
            hi = np.where(np.isfinite(d.xmax), d.xmax, d.x + half_width) + 0.5
            holds = ((columns[None, :] >= lo[:, None]) & (columns[None, :] <= hi[:, None])).any(1)
            # A round detection on the column is a star or a mover crossing it.
            defect |= vertical & (d.elong >= 1.5) & ((nearest <= 1.5) | holds)
    # A streak is sharp across but long: not a cosmic ray (those are a few pixels long).
    trail = _is_long(d, rs) & (_streak_length(d.a, d.b) >= _STREAK_MIN_FWHM * rs.fwhm)
    cosmic = (d.sharp >= rs.cosmic_ray_sharpness) & ~defect & ~trail
    d.cls[defect] = _DEFECT
    d.cls[cosmic] = _COSMIC
    return {"defect": int(defect.sum()), "cosmic_ray": int(cosmic.sum())}


def _raster_groups(d: _Dets, use: NDArray[np.bool_], shape: tuple[int, int]) -> NDArray[np.int64]:
    """Group detections whose (jitter-corrected) positions touch across frames.

    Each detection marks its nearest pixel on a raster of the frame; the raster is grown
    by one pixel (a 3 x 3 square) and its connected regions (4-connected) are the groups:
    a friends-of-friends link of about two pixels. Two marked pixels are in one region
    when their squares overlap or share an edge: at most 3 px apart in x and in y, and not
    3 in both. That is worked out on the marked pixels alone (a k-d tree of them), not on
    the frame's raster. Returns a group number per detection (-1 where ``use`` is false),
    numbered in the order the regions start in the raster, row by row.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    height, width = shape
    if height <= 0 or width <= 0:
        height = int(np.nanmax(d.Y, initial=0)) + 2
        width = int(np.nanmax(d.X, initial=0)) + 2
    groups = np.full(d.n, -1, dtype=np.int64)
    idx = np.nonzero(use)[0]
    if idx.size == 0:
        return groups
    xi = np.clip(np.rint(d.X[idx]).astype(np.int64), 0, width - 1)
    yi = np.clip(np.rint(d.Y[idx]).astype(np.int64), 0, height - 1)
    pixels, which = np.unique(yi * width + xi, return_inverse=True)
    py, px = np.divmod(pixels, width)
    pairs = cKDTree(np.column_stack([px, py])).query_pairs(3.0, p=np.inf, output_type="ndarray")
    if pairs.size:
        corner = (np.abs(px[pairs[:, 0]] - px[pairs[:, 1]]) == 3) & (
            np.abs(py[pairs[:, 0]] - py[pairs[:, 1]]) == 3
        )
        pairs = pairs[~corner]
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
        shape=(pixels.size, pixels.size),
    )
    _, region = connected_components(graph, directed=False)
    # A region's first pixel in the grown raster: the least of its squares' first pixels.
    first = np.full(region.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, region, np.maximum(py - 1, 0) * width + np.maximum(px - 1, 0))
    order = np.empty_like(first)
    order[np.argsort(first, kind="stable")] = np.arange(first.size)
    groups[idx] = order[region[which]]
    return groups


@dataclass
class _GroupFit:
    n: NDArray[np.float64]
    cx: NDArray[np.float64]
    cy: NDArray[np.float64]
    vx: NDArray[np.float64]
    vy: NDArray[np.float64]
    dchi2: NDArray[np.float64]
    span: NDArray[np.float64]


def _group_fit(
    g: NDArray[np.int64],
    t: NDArray[np.float64],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    w: NDArray[np.float64],
    n_groups: int,
) -> _GroupFit:
    """Weighted straight-line fits ``x(t)``, ``y(t)`` of many groups at once."""

    def total(values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.bincount(g, weights=values, minlength=n_groups)

    sw = total(w)
    safe = np.where(sw > 0, sw, 1.0)
    tm = total(w * t) / safe
    cx = total(w * x) / safe
    cy = total(w * y) / safe
    tc = t - tm[g]
    stt = total(w * tc * tc)
    stx = total(w * tc * (x - cx[g]))
    sty = total(w * tc * (y - cy[g]))
    ok = stt > 1e-12
    stt_safe = np.where(ok, stt, 1.0)
    vx = np.where(ok, stx / stt_safe, 0.0)
    vy = np.where(ok, sty / stt_safe, 0.0)
    dchi2 = np.where(ok, (stx * stx + sty * sty) / stt_safe, 0.0)
    tmin = np.full(n_groups, np.inf)
    tmax = np.full(n_groups, -np.inf)
    np.minimum.at(tmin, g, t)
    np.maximum.at(tmax, g, t)
    return _GroupFit(
        n=np.bincount(g, minlength=n_groups).astype(np.float64),
        cx=cx,
        cy=cy,
        vx=vx,
        vy=vy,
        dchi2=dchi2,
        span=np.where(np.isfinite(tmax - tmin), tmax - tmin, 0.0),
    )


def _distinct_frames(g: NDArray[np.int64], f: NDArray[np.int64], n_groups: int) -> Any:
    if g.size == 0:
        return np.zeros(n_groups, dtype=np.int64)
    key = np.unique(g * (int(f.max()) + 1) + f)
    return np.bincount(key // (int(f.max()) + 1), minlength=n_groups)


def _stationary(
    d: _Dets, frames: _Frames, rs: _Resolved, stack_ratio: NDArray[np.float64]
) -> dict[str, Any]:
    """Measure the residual jitter, calibrate centroid errors, and mark stationary sources.

    Works in place on ``d`` (``X``, ``Y``, ``sigma``, ``cls``); returns statistics.
    """
    use = d.cls != _DEFECT
    groups = _raster_groups(d, use, frames.shape)
    idx = np.nonzero(use)[0]
    g = groups[idx]
    n_groups = int(g.max()) + 1 if g.size else 0
    stats: dict[str, Any] = {"groups": n_groups}
    if n_groups == 0:
        return stats
    n_frames_of = _distinct_frames(g, d.f[idx], n_groups)
    radius = rs.stationary_radius_px

    # Residual jitter: the median offset of bright stars seen in most frames, per frame.
    offsets_x = np.zeros(frames.n)
    offsets_y = np.zeros(frames.n)
    for _ in range(2):
        w = 1.0 / d.sigma[idx] ** 2
        fit = _group_fit(g, d.t[idx], d.X[idx], d.Y[idx], w, n_groups)
        rx = d.X[idx] - fit.cx[g]
        ry = d.Y[idx] - fit.cy[g]
        star = (
            (n_frames_of[g] >= max(2, 0.6 * frames.n))
            & (fit.n[g] <= 1.2 * n_frames_of[g])
            & (d.snr[idx] >= 10.0)
            & (np.hypot(rx, ry) <= radius)
            & (d.cls[idx] == _FREE)
        )
        if star.sum() < 3:
            break
        fs = d.f[idx][star]
        for k in range(frames.n):
            sel = fs == k
            if sel.sum() >= 3:
                mx = float(np.median(rx[star][sel]))
                my = float(np.median(ry[star][sel]))
                offsets_x[k] += mx
                offsets_y[k] += my
                d.X[d.f == k] -= mx
                d.Y[d.f == k] -= my
    frames.dx += offsets_x
    frames.dy += offsets_y
    stats["jitter_correction_rms_px"] = float(np.sqrt(np.mean(offsets_x**2 + offsets_y**2)))

    # Centroid errors: scale the extraction's estimate so that stars scatter by one sigma,
    # with a floor measured on the bright ones.
    w = 1.0 / d.sigma[idx] ** 2
    fit = _group_fit(g, d.t[idx], d.X[idx], d.Y[idx], w, n_groups)
    rx = d.X[idx] - fit.cx[g]
    ry = d.Y[idx] - fit.cy[g]
    star = (
        (n_frames_of[g] >= max(3, 0.6 * frames.n))
        & (fit.n[g] <= 1.2 * n_frames_of[g])
        & (np.hypot(rx, ry) <= radius)
        & (d.cls[idx] == _FREE)
    )
    scale, floor = 1.0, _SIGMA_FLOOR_PX
    if star.sum() >= 20:
        s_raw = d.sigma[idx][star]
        resid = np.concatenate([rx[star], ry[star]])
        s2 = np.concatenate([s_raw, s_raw])
        faint = s2 >= np.percentile(s2, 50)
        bright = s2 <= np.percentile(s2, 20)
        scale = float(np.clip(1.4826 * np.median(np.abs(resid[faint] / s2[faint])), 0.3, 5.0))
        bright_rms = 1.4826 * float(np.median(np.abs(resid[bright])))
        predicted = scale * float(np.median(s2[bright]))
        floor = float(np.clip(math.sqrt(max(bright_rms**2 - predicted**2, 0.0)), 0.01, 0.5))
        floor = max(floor, _SIGMA_FLOOR_PX)
    d.sigma = np.sqrt((scale * d.sigma) ** 2 + floor**2)
    stats["centroid_error_scale"] = scale
    stats["centroid_error_floor_px"] = floor

    # Stationary sources: groups whose core does not move.
    w = 1.0 / d.sigma[idx] ** 2
    fit = _group_fit(g, d.t[idx], d.X[idx], d.Y[idx], w, n_groups)
    cx, cy = fit.cx, fit.cy
    core = np.ones(idx.size, dtype=bool)
    for _ in range(2):
        core = np.hypot(d.X[idx] - cx[g], d.Y[idx] - cy[g]) <= radius
        sw = np.bincount(g[core], weights=w[core], minlength=n_groups)
        has = sw > 0
        cx = np.where(
            has,
            np.bincount(g[core], weights=(w * d.X[idx])[core], minlength=n_groups)
            / np.where(has, sw, 1.0),
            cx,
        )
        cy = np.where(
            has,
            np.bincount(g[core], weights=(w * d.Y[idx])[core], minlength=n_groups)
            / np.where(has, sw, 1.0),
            cy,
        )
    core = np.hypot(d.X[idx] - cx[g], d.Y[idx] - cy[g]) <= radius
    gc = np.where(core, g, n_groups)  # the outliers go to a dummy group
    core_fit = _group_fit(gc, d.t[idx], d.X[idx], d.Y[idx], w, n_groups + 1)
    core_frames = _distinct_frames(gc, d.f[idx], n_groups + 1)[:n_groups]
    core_moves = core_fit.dchi2[:n_groups] >= _MOTION_CHI2
    all_moves = fit.dchi2 >= _MOTION_CHI2
    multi = n_frames_of >= 2
    static_core = multi & ~core_moves & (core_frames >= np.maximum(2, 0.5 * n_frames_of))
    static_all = multi & ~static_core & ~all_moves
    moving = multi & ~static_core & ~static_all

    free = d.cls[idx] == _FREE
    # A faint star seen in few frames scatters more than the core radius: all of it is
    # stationary, out to twice that radius.
    wide = np.hypot(d.X[idx] - cx[g], d.Y[idx] - cy[g]) <= 2.0 * radius
    # A streak piece is not judged by the group its centre falls in (where it crosses a
    # star, the extraction may centre the blend on the star), only on the stack below.
    # Unless it is there in other frames too: a saturated star's bleed, a blend of stars.
    long = _is_long(d, rs)[idx]
    long_frames = _distinct_frames(g[long], d.f[idx][long], n_groups)
    fixed_long = long & (long_frames[g] >= np.maximum(2, 0.3 * n_frames_of[g]))
    mark_static = free & (~long | fixed_long) & ((static_all[g] & wide) | (static_core[g] & core))
    # What is left outside moving groups is stationary when the median stack shows a
    # source at its place nearly as bright (a star caught once, a saturated star's bleed).
    # Streak pieces are judged on the stack along their length wherever they are.
    loose = ~moving[g] | long
    mark_static |= free & loose & (stack_ratio[idx] >= _STACK_RATIO_STATIC)
    d.cls[idx[mark_static]] = _STATIC
    # Sharp sources at the same place in several frames are hot pixels, not cosmic rays.
    sharp_fixed = (d.cls[idx] == _COSMIC) & multi[g] & ~moving[g]
    d.cls[idx[sharp_fixed]] = _DEFECT
    stats.update(
        {
            "stationary_groups": int((static_core | static_all).sum()),
            "moving_groups": int(moving.sum()),
            "moving_group_detections": int((moving[g] & free).sum()),
            "hot_pixel_detections": int(sharp_fixed.sum()),
        }
    )
    return stats


def _stack_noise(stack: NDArray[np.float32]) -> float:
    """Robust per-pixel noise of the (flattened) stack."""
    sample = stack.ravel()[:: max(1, stack.size // 200_000)]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0
    # The dark side of the distribution: stars only add light.
    low = sample[sample <= np.median(sample)]
    return float(1.4826 * np.median(np.abs(low - np.median(sample)))) if low.size else 0.0


def _stack_ratio(
    d: _Dets, sky: _Sky, lines: _Lines, long: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """How much of each detection the median stack holds, as a ratio where 0.5 and more
    means "stationary" (:data:`_STACK_RATIO_STATIC`).

    A point source: the stack's peak near it over its own peak. An elongated one: the
    median of the stack along its major axis over its peak, scaled so that
    :data:`_STACK_RATIO_ELONGATED` maps to 0.5 (a blend of stars or a bleed trail shows up
    along its length; a streak does not, even where it crosses a star, which the median
    ignores). A streak piece: the same along its segment, or a median at least five times
    the stack's noise (a bleed trail of a saturated star blended with the star).
    """
    if sky.stack is None:
        return np.zeros(d.n)
    local_max = sky.stack
    value = _lookup_max3(local_max, d.X, d.Y).astype(np.float64)
    peak = np.where(np.isfinite(d.peak) & (d.peak > 0), d.peak, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = value / peak
    steps = np.linspace(-1.0, 1.0, 9)
    elongated = np.nonzero((d.elong >= 1.5) & ~long)[0]
    if elongated.size:
        along = d.a[elongated, None] * steps[None, :]
        xs = d.X[elongated, None] + along * np.cos(d.theta[elongated])[:, None]
        ys = d.Y[elongated, None] + along * np.sin(d.theta[elongated])[:, None]
        samples = _lookup_max3(local_max, xs.ravel(), ys.ravel()).reshape(xs.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio[elongated] = (
                _STACK_RATIO_STATIC * np.median(samples, axis=1) / peak[elongated]
            ) / _STACK_RATIO_ELONGATED
    pieces = np.nonzero(long)[0]
    if pieces.size:
        shift_x = (d.x - d.X)[pieces, None]
        shift_y = (d.y - d.Y)[pieces, None]
        frac = (steps[None, :] + 1.0) / 2.0
        xs = lines.x0[pieces, None] + (lines.x1 - lines.x0)[pieces, None] * frac - shift_x
        ys = lines.y0[pieces, None] + (lines.y1 - lines.y0)[pieces, None] * frac - shift_y
        samples = _lookup_max3(local_max, xs.ravel(), ys.ravel()).reshape(xs.shape)
        level = np.median(samples, axis=1)
        noise = _stack_noise(sky.stack)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = level / peak[pieces] / _STACK_RATIO_ELONGATED
            absolute = level / (5.0 * noise) if noise > 0 else np.zeros(pieces.size)
            ratio[pieces] = _STACK_RATIO_STATIC * np.fmax(relative, absolute)
    return np.where(np.isfinite(ratio), ratio, 0.0)


# --------------------------------------------------------------------------------------
# Step 3: point tracks


class _EarlyLate:
    """The median stacks of the first and last thirds of the session, to confirm slow
    movers: a source that moved leaves a positive blob in early minus late where it
    started and a negative one where it ended; a stationary source leaves neither (a
    change of seeing changes both ends alike, which the difference of the two cancels)."""

    def __init__(
        self, sky: _Sky, frames: _Frames, fwhm: float, zone: NDArray[np.bool_] | None = None
    ) -> None:
        from scipy import ndimage

        assert sky.early is not None and sky.late is not None
        self.zone = zone
        self.size = max(3, 2 * int(round(0.5 * fwhm)) + 1)
        # The stacks are smoothed by a box of `size` pixels where they are compared. Only
        # their difference is needed whole; the stacks themselves only at a few points.
        self.raw_early = sky.early
        self.raw_difference = sky.early - sky.late
        self.difference = ndimage.uniform_filter(self.raw_difference, size=self.size)
        third = max(1, frames.n // 3)
        self.t_early = float(np.mean(frames.t[:third]))
        self.t_late = float(np.mean(frames.t[-third:]))
        where = {name: k for k, name in enumerate(frames.file)}
        for key, attr in (("early_frames", "t_early"), ("late_frames", "t_late")):
            names = sky.info.get(key)
            if isinstance(names, list):
                ks = [where[str(n)] for n in names if str(n) in where]
                if ks:
                    setattr(self, attr, float(np.mean(frames.t[ks])))
        self.offset_x = float(np.mean(frames.dx))
        self.offset_y = float(np.mean(frames.dy))
        # Noise of one (smoothed) pixel of early minus late, for the dipole's significance.
        self.noise = _stack_noise(self.difference)

    def contrast(
        self,
        tc: float,
        x0: float,
        y0: float,
        vx: float,
        vy: float,
        significance: float = _SLOW_MIN_SIGNIFICANCE,
    ) -> float:
        """Dipole of the early-minus-late difference along a track, over the track's
        brightness in the stacks (about 1 for a source that moved by more than its
        FWHM between the two stacks, about 0 for a stationary one); 0 when the dipole is
        below ``significance`` times its noise."""
        xs = np.array([x0 + vx * (self.t_early - tc), x0 + vx * (self.t_late - tc)])
        ys = np.array([y0 + vy * (self.t_early - tc), y0 + vy * (self.t_late - tc)])
        xs += self.offset_x
        ys += self.offset_y
        if self.zone is not None and self.zone.shape == self.difference.shape:
            # Around saturated stars the stacks differ by how far the saturation spreads.
            mid_x, mid_y = np.array([xs.mean()]), np.array([ys.mean()])
            if _lookup(self.zone, np.r_[xs, mid_x], np.r_[ys, mid_y]).any():
                return 0.0
        e = _box_mean(self.raw_early, xs, ys, self.size)
        late = e - _box_mean(self.raw_difference, xs, ys, self.size)
        amplitude = 0.5 * (e[0] + late[1])
        dipole = 0.5 * ((e[0] - late[0]) + (late[1] - e[1]))
        if not amplitude > 0 or dipole < significance * self.noise / math.sqrt(2.0):
            return 0.0
        return float(dipole / amplitude)


def _saturated_zone(stack: NDArray[np.float32] | None, fwhm: float) -> NDArray[np.bool_] | None:
    """Where the stack is saturated (at least half its brightest value: the saturation
    plateau when stars saturate), grown by a few FWHM and along the columns where a
    saturated star bleeds (:func:`spacepixels.difference.saturation_zone`). The early and
    late stacks differ there by how far saturation spreads with the seeing, which looks
    like motion; slow movers are not looked for there."""
    if stack is None or stack.size == 0:
        return None
    top = float(stack.max())
    if not top > 0:
        return None
    return saturation_zone(stack >= 0.5 * top, fwhm)


@dataclass
class _StackMover:
    """A slow mover found as a dipole of the early-minus-late stacks (reference pixels)."""

    x_early: float
    y_early: float
    x_late: float
    y_late: float
    tc: float  # time of the early position
    vx: float
    vy: float
    dipole: float  # ADU, fitted amplitude
    contrast: float
    significance: float


def _fit_dipole(
    difference: NDArray[np.float32], p: tuple[float, float], n: tuple[float, float], fwhm: float
) -> tuple[float, float, float, float, float] | None:
    """Fit ``A (g(r - p) - g(r - n)) + c`` (``g`` a Gaussian of the seeing, peak 1) to the
    early-minus-late difference around a pair of peaks; return ``(A, px, py, nx, ny)``."""
    from scipy.optimize import least_squares

    height, width = difference.shape
    pad = 2.5 * fwhm
    x0 = max(0, int(math.floor(min(p[0], n[0]) - pad)))
    x1 = min(width, int(math.ceil(max(p[0], n[0]) + pad)) + 1)
    y0 = max(0, int(math.floor(min(p[1], n[1]) - pad)))
    y1 = min(height, int(math.ceil(max(p[1], n[1]) + pad)) + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    patch = difference[y0:y1, x0:x1].astype(np.float64)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    two_s2 = 2.0 * (fwhm / 2.3548) ** 2

    def lobes(q: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        _, px, py, nx, ny, _ = q
        plus = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / two_s2)
        minus = np.exp(-((xx - nx) ** 2 + (yy - ny) ** 2) / two_s2)
        return plus, minus

    def residual(q: NDArray[np.float64]) -> NDArray[np.float64]:
        plus, minus = lobes(q)
        return (q[0] * (plus - minus) + q[5] - patch).ravel()

    def jacobian(q: NDArray[np.float64]) -> NDArray[np.float64]:
        a, px, py, nx, ny, _ = q
        plus, minus = lobes(q)
        scale = 2.0 * a / two_s2
        columns = (
            plus - minus,
            scale * plus * (xx - px),
            scale * plus * (yy - py),
            -scale * minus * (xx - nx),
            -scale * minus * (yy - ny),
            np.ones_like(plus),
        )
        return np.stack([c.ravel() for c in columns], axis=1)

    start = np.array([max(patch.max(), 1e-3), p[0], p[1], n[0], n[1], 0.0])
    lower = [0.0, x0, y0, x0, y0, -np.inf]
    upper = [np.inf, x1 - 1, y1 - 1, x1 - 1, y1 - 1, np.inf]
    try:
        result = least_squares(residual, start, jac=jacobian, bounds=(lower, upper), max_nfev=100)
    except ValueError:
        return None
    a, px, py, nx, ny, _ = (float(v) for v in result.x)
    return a, px, py, nx, ny


def _stack_movers(
    early_late: _EarlyLate,
    frames: _Frames,
    rs: _Resolved,
    tracks: Sequence[_Track],
    defects: NDArray[np.uint8] | None,
    zone: NDArray[np.bool_] | None,
) -> list[_StackMover]:
    """Slow movers the extraction could not separate (blended with a star in every frame),
    found where they are not blended: in early minus late, a positive blob where one
    started next to a negative one where it ended, of similar amplitude, separated by no
    more than a slow mover travels between the two stacks, fitted as a dipole, and
    confirmed like the slow tracks (contrast and significance). Those an accepted track
    already explains are skipped."""
    from scipy.spatial import cKDTree

    el = early_late
    difference = el.difference
    noise = el.noise
    if not noise > 0:
        return []
    size = 2 * int(round(rs.fwhm)) + 1
    level = _DIPOLE_SIGMA * noise

    def peaks(candidates: NDArray[np.bool_], op: Any) -> tuple[NDArray[np.intp], ...]:
        ys, xs = np.nonzero(_local_extrema(difference, candidates, size, op))
        keep = np.ones(ys.size, dtype=bool)
        if defects is not None and defects.shape == difference.shape:
            # Hot pixels and bad columns change between the stacks with the dark current.
            keep &= ~_near_defect(defects, ys, xs)
        if zone is not None and zone.shape == difference.shape:
            keep &= ~zone[ys, xs]
        return ys[keep], xs[keep]

    py, px = peaks(difference >= level, np.maximum)
    ny, nx = peaks(difference <= -level, np.minimum)
    if px.size == 0 or nx.size == 0 or px.size > _MAX_DIPOLE_PEAKS:
        return []
    span = el.t_late - el.t_early
    if span <= 0:
        return []
    fastest = _SLOW_FWHM_PER_FRAME * rs.fwhm / frames.cadence  # px per time unit
    reach = 1.5 * fastest * span + rs.fwhm
    tree = cKDTree(np.column_stack([nx, ny]))
    pairs = []
    for i, near in enumerate(tree.query_ball_point(np.column_stack([px, py]), reach)):
        for j in near:
            a_plus = float(difference[py[i], px[i]])
            a_minus = -float(difference[ny[j], nx[j]])
            if min(a_plus, a_minus) >= _DIPOLE_BALANCE * max(a_plus, a_minus):
                pairs.append((-(a_plus + a_minus), i, j))
    pairs.sort()
    used_p: set[int] = set()
    used_n: set[int] = set()
    found: list[_StackMover] = []
    session = float(frames.t[-1] - frames.t[0])
    fits = 0
    for _, i, j in pairs:
        if i in used_p or j in used_n or fits >= _MAX_DIPOLE_FITS:
            continue
        quick = el.contrast(
            el.t_early,
            float(px[i]) - el.offset_x,
            float(py[i]) - el.offset_y,
            (float(nx[j] - px[i])) / span,
            (float(ny[j] - py[i])) / span,
        )
        if quick < 0.8 * _SLOW_MIN_CONTRAST:
            continue
        fits += 1
        fit = _fit_dipole(
            el.raw_difference,
            (float(px[i]), float(py[i])),
            (float(nx[j]), float(ny[j])),
            rs.fwhm,
        )
        if fit is None:
            continue
        amplitude, fx, fy, gx, gy = fit
        # Back to reference pixels (the stacks sit at the frames' mean offset).
        fx, gx = fx - el.offset_x, gx - el.offset_x
        fy, gy = fy - el.offset_y, gy - el.offset_y
        vx, vy = (gx - fx) / span, (gy - fy) / span
        speed = math.hypot(vx, vy)
        if speed * session < rs.slow_min_motion_px or speed > fastest * 1.5:
            continue
        if any(_explains(track, el.t_early, fx, fy, rs.fwhm) for track in tracks):
            continue
        contrast = el.contrast(el.t_early, fx, fy, vx, vy, _SLOW_MOVER_SIGNIFICANCE)
        if contrast < _SLOW_MIN_CONTRAST:
            continue
        used_p.add(i)
        used_n.add(j)
        found.append(
            _StackMover(
                x_early=fx,
                y_early=fy,
                x_late=gx,
                y_late=gy,
                tc=el.t_early,
                vx=vx,
                vy=vy,
                dipole=amplitude,
                contrast=contrast,
                significance=amplitude / noise,
            )
        )
    return found


def _explains(track: _Track, t: float, x: float, y: float, fwhm: float) -> bool:
    """Whether an accepted track was near ``(x, y)`` at time ``t``."""
    lag = t - track.tc
    return math.hypot(track.x0 + track.vx * lag - x, track.y0 + track.vy * lag - y) <= 2 * fwhm


class _LineFit:
    """Weighted least-squares line ``p(t) = p0 + v (t - tc)`` for x and y at once."""

    __slots__ = ("sw", "st", "stt", "sx", "sy", "stx", "sty")

    def __init__(self) -> None:
        self.sw = self.st = self.stt = self.sx = self.sy = self.stx = self.sty = 0.0

    def add(self, t: float, x: float, y: float, w: float) -> None:
        self.sw += w
        self.st += w * t
        self.stt += w * t * t
        self.sx += w * x
        self.sy += w * y
        self.stx += w * t * x
        self.sty += w * t * y

    def solve(self) -> tuple[float, float, float, float, float, float, float, float]:
        """``(tc, x0, y0, vx, vy, var0, varv, det)`` with the variances of the line."""
        tc = self.st / self.sw
        stt = self.stt - self.sw * tc * tc
        x0 = self.sx / self.sw
        y0 = self.sy / self.sw
        if stt <= 1e-12:
            return tc, x0, y0, 0.0, 0.0, 1.0 / self.sw, math.inf, stt
        vx = (self.stx - self.sw * tc * x0) / stt
        vy = (self.sty - self.sw * tc * y0) / stt
        return tc, x0, y0, vx, vy, 1.0 / self.sw, 1.0 / stt, stt

    def predict(self, t: float) -> tuple[float, float, float]:
        tc, x0, y0, vx, vy, var0, varv, _ = self.solve()
        dt = t - tc
        var = var0 + (varv * dt * dt if math.isfinite(varv) else 1e6)
        return x0 + vx * dt, y0 + vy * dt, var


@dataclass
class _Track:
    members: NDArray[np.int64]
    tc: float
    x0: float
    y0: float
    vx: float
    vy: float
    var_v: float
    chi2_red: float
    rms: float
    fill: float
    n_expected: int
    score: float
    kind: str = "track"

    @property
    def speed(self) -> float:
        return math.hypot(self.vx, self.vy)


def _jumps(t: NDArray[np.float64], s: NDArray[np.float64]) -> bool:
    """Whether positions ``s`` along a track, at times ``t``, sit in two clumps with a jump
    between them rather than advancing steadily: a step fits them at least
    :data:`_STEP_RATIO` times better than a line (the pieces of a blend that the extraction
    splits one way in some frames and the other way in others)."""
    order = np.argsort(t, kind="stable")
    t, s = t[order], s[order]
    n = s.size
    if n < 4:
        return False
    a = np.vstack([t - t.mean(), np.ones(n)]).T
    line = float(np.sum((s - a @ np.linalg.lstsq(a, s, rcond=None)[0]) ** 2))
    csum = np.cumsum(s)
    csum2 = np.cumsum(s * s)
    best = math.inf
    for k in range(2, n - 1):  # at least two points on each side
        left = csum2[k - 1] - csum[k - 1] ** 2 / k
        right = (csum2[-1] - csum2[k - 1]) - (csum[-1] - csum[k - 1]) ** 2 / (n - k)
        best = min(best, float(left + right))
    return best * _STEP_RATIO < line


def _give_up_hits(n_frames: int) -> list[int]:
    """For each number of frames visited, the most hits at which a seed is abandoned
    (-1: never), from the binomial tail of ``_MIN_FILL`` at ``_ABANDON_P``."""
    from scipy.special import bdtr

    n = np.arange(n_frames + 2)
    h = np.arange(n_frames + 2)
    tail = bdtr(np.minimum(h[None, :], n[:, None]), n[:, None], _MIN_FILL)  # P(hits <= h | n)
    below = (tail < _ABANDON_P) & (h[None, :] <= n[:, None])
    most = np.where(below.any(axis=1), below.shape[1] - 1 - np.argmax(below[:, ::-1], axis=1), -1)
    most[:_ABANDON_MIN_FRAMES] = -1
    return most.tolist()


class _TrackFinder:
    """Seeds, grows, checks and accepts point tracks among the free detections."""

    def __init__(
        self,
        d: _Dets,
        frames: _Frames,
        rs: _Resolved,
        pool: NDArray[np.bool_],
        early_late: _EarlyLate | None = None,
        stack_ratio: NDArray[np.float64] | None = None,
        zone: NDArray[np.bool_] | None = None,
    ) -> None:
        from scipy.spatial import cKDTree

        # Nothing longer than the trail of the fastest mover searched is a track point.
        longest = self.vmax_trail(frames, rs)
        pool = pool & ~((d.elong >= 1.3) & (_streak_length(d.a, d.b) > longest))
        self.early_late = early_late
        self.zone = zone
        self.offset = (float(np.mean(frames.dx)), float(np.mean(frames.dy)))
        self.in_stack = (
            stack_ratio >= _STACK_RATIO_STATIC
            if stack_ratio is not None
            else np.zeros(d.n, dtype=bool)
        )
        self.d = d
        self.frames = frames
        self.rs = rs
        self.vmax = rs.max_rate_px_per_frame / frames.cadence  # px per time unit
        self.by_frame: list[NDArray[np.int64]] = []
        self.trees: list[Any] = []
        pool_idx = np.nonzero(pool)[0]
        pool_f = d.f[pool_idx]
        order = np.argsort(pool_f, kind="stable")
        pool_idx, pool_f = pool_idx[order], pool_f[order]
        bounds = np.searchsorted(pool_f, np.arange(frames.n + 1))
        for k in range(frames.n):
            members = pool_idx[bounds[k] : bounds[k + 1]]
            self.by_frame.append(members)
            self.trees.append(
                cKDTree(np.column_stack([d.X[members], d.Y[members]])) if members.size else None
            )
        # One tree of every frame's pool, the frames stacked far apart along a third axis,
        # so that the neighbours of predictions in many frames come in one query.
        self.pool_all = pool_idx
        self.tree3 = (
            cKDTree(
                np.column_stack([d.X[pool_idx], d.Y[pool_idx], pool_f * _FRAME_SLAB]),
                balanced_tree=False,
            )
            if pool_idx.size
            else None
        )
        # A stationary detection that joins a track is the track's light blended with a
        # star's: its centroid is off by up to a fraction of the seeing.
        self.sigma = np.where(d.cls == _STATIC, np.hypot(d.sigma, 0.3 * rs.fwhm), d.sigma)
        # The centroid of a trail wanders along it (a windowed centroid follows the noise).
        self.trail = np.where(d.elong >= 1.3, _streak_length(d.a, d.b), 0.0)
        self.sigma = np.hypot(self.sigma, _TRAIL_CENTROID_FRACTION * self.trail)
        self.sigma_typ = float(np.median(self.sigma[pool])) if pool.any() else 0.3
        self.sigma_max = float(self.sigma[pool].max()) if pool.any() else 1.0
        self.trail_max = float(self.trail[pool].max()) if pool.any() else 0.0
        # Seeds are pairs of free detections; stationary ones may join a track that passes
        # over them (its light blended with a star's), but never start one.
        self.seedable = pool & (d.cls == _FREE)
        self.give_up = _give_up_hits(frames.n)
        self.seedable_list = self.seedable.astype(np.int64).tolist()
        # The frames' offsets, for whether a prediction lies on the image. Set here, read
        # by every seed's growth (the jitter correction has already refined them).
        self.shift_x, self.shift_y = frames.dx.tolist(), frames.dy.tolist()
        # Per frame, the values :meth:`_best_fast` reads of each tree's points.
        self.frame_values = [
            (
                d.X[m],
                d.Y[m],
                self.sigma[m],
                3.0 * _TRAIL_CENTROID_FRACTION * self.trail[m],
                m,
            )
            for m in self.by_frame
        ]

    @staticmethod
    def vmax_trail(frames: _Frames, rs: _Resolved) -> float:
        """Length (px) of the trail of the fastest mover searched, with a margin."""
        exposure = float(np.max(frames.exposure)) if frames.n else frames.cadence
        return 1.5 * rs.max_rate_px_per_frame / frames.cadence * exposure + 2.0 * rs.fwhm

    # -- seeds ------------------------------------------------------------------------

    def seeds(self) -> list[tuple[int, int, int]]:
        """Pairs of detections a few frames apart within reach; with their support."""
        frames, rs = self.frames, self.rs
        pairs_i: list[NDArray[np.int64]] = []
        pairs_j: list[NDArray[np.int64]] = []
        for k in range(frames.n):
            if self.trees[k] is None:
                continue
            for gap in range(1, _SEED_GAPS + 1):
                k2 = k + gap
                if k2 >= frames.n or self.trees[k2] is None:
                    continue
                dt = frames.t[k2] - frames.t[k]
                if dt <= 0:
                    continue
                reach = self.vmax * dt + 2.0 * rs.match_radius_px
                sparse = self.trees[k].sparse_distance_matrix(
                    self.trees[k2], reach, output_type="ndarray"
                )
                if len(sparse) == 0:
                    continue
                i = self.by_frame[k][sparse["i"]]
                j = self.by_frame[k2][sparse["j"]]
                both = self.seedable[i] & self.seedable[j]
                pairs_i.append(i[both])
                pairs_j.append(j[both])
        if not pairs_i:
            return []
        si = np.concatenate(pairs_i)
        sj = np.concatenate(pairs_j)
        support = self._coarse_support(si, sj)
        need = max(2, rs.min_points - 1)
        keep = np.nonzero(support >= need)[0]
        keep = keep[np.argsort(-support[keep], kind="stable")][:_MAX_SEEDS_REFINED]
        return [(int(si[q]), int(sj[q]), int(support[q])) for q in keep]

    def _coarse_support(self, si: NDArray[np.int64], sj: NDArray[np.int64]) -> Any:
        """Frames with a detection near each seed pair's straight-line prediction."""
        d, frames, rs = self.d, self.frames, self.rs
        dt = d.t[sj] - d.t[si]
        vx = (d.X[sj] - d.X[si]) / dt
        vy = (d.Y[sj] - d.Y[si]) / dt
        sig_v = np.hypot(self.sigma[si], self.sigma[sj]) / dt
        tm = 0.5 * (d.t[si] + d.t[sj])
        xm = 0.5 * (d.X[si] + d.X[sj])
        ym = 0.5 * (d.Y[si] + d.Y[sj])
        support = np.full(si.size, 2, dtype=np.int64)
        cap = 4.0 * rs.match_radius_px
        for k in range(frames.n):
            tree = self.trees[k]
            if tree is None:
                continue
            lag = frames.t[k] - tm
            px = xm + vx * lag
            py = ym + vy * lag
            gate = np.minimum(
                _GATE_SIGMA * np.sqrt(2.0 * self.sigma_typ**2 + (sig_v * lag) ** 2)
                + 0.5 * rs.match_radius_px,
                cap,
            )
            own = (d.f[si] == k) | (d.f[sj] == k)
            dist, _ = tree.query(np.column_stack([px, py]), distance_upper_bound=cap)
            support += ((dist <= gate) & ~own).astype(np.int64)
        return support

    # -- growing a seed ---------------------------------------------------------------

    def _trail_ok(self, j: int, vx: float, vy: float, k: int) -> bool:
        """Whether detection ``j``'s shape agrees with moving at ``(vx, vy)`` in frame ``k``."""
        d = self.d
        trail = math.hypot(vx, vy) * float(self.frames.exposure[k])
        fwhm = self.rs.fwhm
        if d.elong[j] >= self.rs.streak_min_elongation and trail < 0.5 * fwhm:
            return False  # a streak piece, not a point
        if trail >= fwhm and d.elong[j] >= 1.4:
            direction = math.atan2(vy, vx)
            if float(_angle_diff(d.theta[j], direction)) > math.radians(30.0):
                return False
        if trail >= 1.5 * fwhm and d.elong[j] >= 1.3:
            length = float(_streak_length(d.a[j : j + 1], d.b[j : j + 1])[0])
            if length > 2.5 * trail + fwhm:
                return False
        return True

    def _best(self, k: int, px: float, py: float, var: float, vx: float, vy: float) -> int:
        tree = self.trees[k]
        if tree is None:
            return -1
        d, rs = self.d, self.rs
        cap = rs.match_radius_px + 2.0 * math.sqrt(var)
        reach = min(_GATE_SIGMA * math.sqrt(self.sigma_max**2 + var), cap + 3.0 * self.trail_max)
        near = tree.query_ball_point((px, py), reach)
        best, best_score = -1, math.inf
        for q in near:
            j = int(self.by_frame[k][q])
            dist2 = (d.X[j] - px) ** 2 + (d.Y[j] - py) ** 2
            norm = dist2 / (self.sigma[j] ** 2 + var)
            limit = cap + 3.0 * _TRAIL_CENTROID_FRACTION * self.trail[j]
            if norm > _GATE_SIGMA**2 or dist2 > limit**2:
                continue
            if not self._trail_ok(j, vx, vy, k):
                continue
            if norm < best_score:
                best, best_score = j, norm
        return best

    def _fit(self, members: Sequence[int]) -> _LineFit:
        d = self.d
        fit = _LineFit()
        m = np.asarray(members, dtype=np.int64)
        for t, x, y, s in zip(
            d.t[m].tolist(), d.X[m].tolist(), d.Y[m].tolist(), self.sigma[m].tolist(), strict=True
        ):
            fit.add(t, x, y, 1.0 / s**2)
        return fit

    def _clip(self, members: list[int]) -> tuple[list[int], _LineFit]:
        """Drop the worst outlier beyond the gate until none is left."""
        d = self.d
        fit = self._fit(members)
        while len(members) > 2:
            tc, x0, y0, vx, vy, *_ = fit.solve()
            m = np.asarray(members)
            rx = d.X[m] - (x0 + vx * (d.t[m] - tc))
            ry = d.Y[m] - (y0 + vy * (d.t[m] - tc))
            norm = (rx * rx + ry * ry) / self.sigma[m] ** 2
            worst = int(np.argmax(norm))
            if norm[worst] <= 2.0 * _GATE_SIGMA**2 / 2.0:
                break
            members = [j for q, j in enumerate(members) if q != worst]
            fit = self._fit(members)
        return members, fit

    def _predict_many(
        self, fit: _LineFit, ks: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """:meth:`_LineFit.predict` at the times of frames ``ks`` (the same arithmetic)."""
        tc, x0, y0, vx, vy, var0, varv, _ = fit.solve()
        dt = self.frames.t[ks] - tc
        px = x0 + vx * dt
        py = y0 + vy * dt
        var = var0 + varv * dt * dt if math.isfinite(varv) else var0 + np.full(dt.shape, 1e6)
        return px, py, var

    def _best_many(
        self,
        ks: NDArray[np.int64],
        px: NDArray[np.float64],
        py: NDArray[np.float64],
        var: NDArray[np.float64],
        vx: float,
        vy: float,
    ) -> NDArray[np.int64]:
        """:meth:`_best` in each of the frames ``ks`` at once: one query of all frames'
        neighbours, a vectorised gate with a margin, then the exact per-detection test
        on the few that pass it."""
        import itertools

        out = np.full(ks.size, -1, dtype=np.int64)
        if self.tree3 is None or ks.size == 0:
            return out
        d, rs = self.d, self.rs
        cap = rs.match_radius_px + 2.0 * np.sqrt(var)
        reach = np.minimum(
            _GATE_SIGMA * np.sqrt(self.sigma_max**2 + var), cap + 3.0 * self.trail_max
        )
        reach = np.minimum(reach * (1.0 + 1e-9) + 1e-6, 0.25 * _FRAME_SLAB)
        points = np.column_stack([px, py, ks * _FRAME_SLAB])
        lists = self.tree3.query_ball_point(points, reach, return_sorted=False)
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=ks.size)
        total = int(counts.sum())
        if total == 0:
            return out
        q = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=total)
        p = np.repeat(np.arange(ks.size), counts)
        jj = self.pool_all[q]
        dist2 = (d.X[jj] - px[p]) ** 2 + (d.Y[jj] - py[p]) ** 2
        norm = dist2 / (self.sigma[jj] ** 2 + var[p])
        limit = cap[p] + 3.0 * _TRAIL_CENTROID_FRACTION * self.trail[jj]
        tol = 1.0 + 1e-9
        ok = (norm <= _GATE_SIGMA**2 * tol) & (dist2 <= limit * limit * tol)
        if not ok.any():
            return out
        sel = np.nonzero(ok)[0]
        sel = sel[np.lexsort((jj[sel], p[sel]))]
        start = 0
        while start < sel.size:
            pk = int(p[sel[start]])
            stop = start
            while stop < sel.size and int(p[sel[stop]]) == pk:
                stop += 1
            fv = float(var[pk])
            out[pk] = self._best_rows(
                self._rows(jj[sel[start:stop]]),
                int(ks[pk]),
                float(px[pk]),
                float(py[pk]),
                fv,
                vx,
                vy,
                float(cap[pk]),
            )
            start = stop
        return out

    def _best_fast(self, k: int, px: float, py: float, var: float, vx: float, vy: float) -> int:
        """:meth:`_best` with the candidates' values as plain floats (the same arithmetic,
        without numpy scalars); an exact tie falls back to :meth:`_best` itself."""
        tree = self.trees[k]
        if tree is None:
            return -1
        rs = self.rs
        cap = rs.match_radius_px + 2.0 * math.sqrt(var)
        reach = min(_GATE_SIGMA * math.sqrt(self.sigma_max**2 + var), cap + 3.0 * self.trail_max)
        near = tree.query_ball_point((px, py), reach, return_sorted=False)
        if not near:
            return -1
        q = np.asarray(near, dtype=np.int64)
        xs, ys, sig, tl, js = self.frame_values[k]
        rows = list(
            zip(
                xs[q].tolist(),
                ys[q].tolist(),
                sig[q].tolist(),
                tl[q].tolist(),
                js[q].tolist(),
                strict=True,
            )
        )
        return self._best_rows(rows, k, px, py, var, vx, vy, cap)

    def _rows(self, jj: NDArray[np.int64]) -> list[tuple[float, float, float, float, int]]:
        """Per detection of ``jj``, the values :meth:`_best_rows` reads, as plain floats."""
        d = self.d
        return list(
            zip(
                d.X[jj].tolist(),
                d.Y[jj].tolist(),
                self.sigma[jj].tolist(),
                (3.0 * _TRAIL_CENTROID_FRACTION * self.trail[jj]).tolist(),
                jj.tolist(),
                strict=True,
            )
        )

    def _best_rows(
        self,
        rows: list[tuple[float, float, float, float, int]],
        k: int,
        px: float,
        py: float,
        var: float,
        vx: float,
        vy: float,
        cap: float,
    ) -> int:
        """The loop of :meth:`_best` over candidates (a superset of those within its
        reach) given as plain floats; an exact tie falls back to :meth:`_best` itself."""
        gate2 = _GATE_SIGMA**2
        best, best_score, tie = -1, math.inf, False
        for x, y, s, t, j in rows:
            dist2 = (x - px) ** 2 + (y - py) ** 2
            norm = dist2 / (s**2 + var)
            limit = cap + t
            if norm > gate2 or dist2 > limit**2:
                continue
            if not self._trail_ok(j, vx, vy, k):
                continue
            if norm < best_score:
                best, best_score, tie = j, norm, False
            elif norm == best_score:
                tie = True
        if tie:
            return self._best(k, px, py, var, vx, vy)
        return best

    def _near_cache(
        self,
        ks: NDArray[np.int64],
        px: NDArray[np.float64],
        py: NDArray[np.float64],
        r: Any,
        cache: list[Any],
    ) -> None:
        """The pool detections within ``r`` of ``(px, py)`` in each frame of ``ks`` (one
        query of the tree of all frames), by frame: the disc's centre and radius, and per
        detection the values :meth:`_best_rows` reads, as plain floats."""
        import itertools

        if self.tree3 is None or ks.size == 0:
            return
        r = np.minimum(np.broadcast_to(r, ks.shape), 0.25 * _FRAME_SLAB)
        lists = self.tree3.query_ball_point(
            np.column_stack([px, py, ks * _FRAME_SLAB]), r, return_sorted=False
        )
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=ks.size)
        q = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=counts.sum())
        rows = self._rows(self.pool_all[q])
        start = 0
        for k, cx, cy, rk, n in zip(
            ks.tolist(), px.tolist(), py.tolist(), r.tolist(), counts.tolist(), strict=True
        ):
            cache[k] = (cx, cy, rk, rows[start : start + n])
            start += n

    def grow(self, i: int, j: int) -> list[int]:
        """The detections of the track seeded by ``i`` and ``j``."""
        d, frames = self.d, self.frames
        chosen = {int(d.f[i]): i, int(d.f[j]): j}
        fit = self._fit([i, j])
        centre = 0.5 * (d.t[i] + d.t[j])
        order = np.argsort(np.abs(frames.t - centre), kind="stable")
        order = order[(order != d.f[i]) & (order != d.f[j])]
        times = frames.t.tolist()
        # The neighbours of the predictions, with room for the line to move as it is
        # refitted, come from one query of the next few frames (again for a frame whose
        # reach leaves its disc).
        match = self.rs.match_radius_px
        sigma_max2 = self.sigma_max**2
        trail3 = 3.0 * self.trail_max
        radius_max = 1.5 * _GATE_SIGMA * self.sigma_max + match
        cache: list[Any] = [None] * frames.n

        def refresh(ks: NDArray[np.int64]) -> None:
            tc, x0, y0, vx, vy, var0, varv, _ = fit.solve()
            lag = frames.t[ks] - tc
            var = var0 + varv * lag * lag if math.isfinite(varv) else var0 + 1e6 + 0.0 * lag
            reach = np.minimum(
                _GATE_SIGMA * np.sqrt(sigma_max2 + var), match + 2.0 * np.sqrt(var) + trail3
            )
            radius = np.minimum(reach, radius_max) + 2.0 * match
            self._near_cache(ks, x0 + vx * lag, y0 + vy * lag, radius, cache)

        ks_all = order.tolist()
        # Whether each visited frame's prediction lies on the image, for giving up early.
        height, width = frames.shape
        shift_x, shift_y = self.shift_x, self.shift_y
        give_up = self.give_up
        seedable = self.seedable_list
        visited = hits = 0
        for pos, k in enumerate(ks_all):
            # fit.predict(t), with the one solve of the line both need.
            tc, x0, y0, vx, vy, var0, varv, _ = fit.solve()
            dt = times[k] - tc
            var = var0 + (varv * dt * dt if math.isfinite(varv) else 1e6)
            px, py = x0 + vx * dt, y0 + vy * dt
            cap = match + 2.0 * math.sqrt(var)
            reach = min(_GATE_SIGMA * math.sqrt(sigma_max2 + var), cap + trail3)
            entry = cache[k]
            if entry is None or (
                math.hypot(px - entry[0], py - entry[1]) + reach * (1.0 + 1e-9) + 1e-6 > entry[2]
            ):
                # The neighbours of the next frames' predictions (again when the line moved).
                refresh(order[pos : pos + _CACHE_FRAMES])
                entry = cache[k]
            if entry is None or (
                math.hypot(px - entry[0], py - entry[1]) + reach * (1.0 + 1e-9) + 1e-6 > entry[2]
            ):
                best = self._best_fast(k, px, py, var, vx, vy)
            elif entry[3]:
                best = self._best_rows(entry[3], k, px, py, var, vx, vy, cap)
            else:
                best = -1
            if best >= 0:
                chosen[k] = best
                hits += seedable[best]
                fit.add(
                    float(d.t[best]), float(d.X[best]), float(d.Y[best]), 1 / self.sigma[best] ** 2
                )
            if height <= 0 or (
                0.0 <= px + shift_x[k] <= width - 1 and 0.0 <= py + shift_y[k] <= height - 1
            ):
                visited += 1
                if hits <= give_up[visited]:
                    return sorted(chosen.values(), key=lambda m: (d.t[m], m))
        members, fit = self._clip(list(chosen.values()))
        # A last pass with the final line picks up what the first pass missed.
        have = {int(d.f[m]) for m in members}
        _, _, _, vx, vy, *_ = fit.solve()
        ks = np.array([k for k in range(frames.n) if k not in have], dtype=np.int64)
        px, py, var = self._predict_many(fit, ks)
        best = self._best_many(ks, px, py, var, vx, vy)
        hits = [int(b) for b in best if b >= 0]
        if hits:
            members.extend(hits)
            members, fit = self._clip(members)
        return sorted(members, key=lambda m: (d.t[m], m))

    # -- judging a track --------------------------------------------------------------

    def _bridge_gaps(self, m: NDArray[np.int64]) -> NDArray[np.int64]:
        """Split a track where it misses more than ``max_gap_frames`` good frames in a
        row; keep the sides that stand on their own (``max(3, min_points / 2)``
        detections), or the largest side when none does."""
        f = self.d.f[m]
        cuts = np.nonzero(np.diff(f) - 1 > self.rs.max_gap_frames)[0]
        if cuts.size == 0:
            return m
        sides = np.split(m, cuts + 1)
        enough = max(3, math.ceil(self.rs.min_points / 2))
        kept = [side for side in sides if side.size >= enough]
        if not kept:
            kept = [max(sides, key=len)]
        return np.concatenate(kept)

    def assess(self, members: Sequence[int]) -> _Track | None:
        """The track through ``members``, or None when it fails a test."""
        d, frames, rs = self.d, self.frames, self.rs
        m = np.asarray(sorted(members, key=lambda q: (d.t[q], q)), dtype=np.int64)
        if m.size < rs.min_points or np.unique(d.f[m]).size != m.size:
            return None
        m = self._bridge_gaps(m)
        if m.size < rs.min_points:
            return None
        if np.count_nonzero(self.seedable[m]) < rs.min_points:
            return None  # stationary detections that joined add to the fit, not the count
        fit = self._fit(m.tolist())
        tc, x0, y0, vx, vy, _, var_v, _ = fit.solve()
        if not math.isfinite(var_v):
            return None
        rx = d.X[m] - (x0 + vx * (d.t[m] - tc))
        ry = d.Y[m] - (y0 + vy * (d.t[m] - tc))
        chi2 = float(np.sum((rx * rx + ry * ry) / self.sigma[m] ** 2))
        dof = max(1, 2 * m.size - 4)
        chi2_red = chi2 / dof
        if chi2_red > _MAX_CHI2_RED:
            return None
        speed = math.hypot(vx, vy)
        span = float(d.t[m[-1]] - d.t[m[0]])
        if speed * speed / var_v < _MOTION_CHI2 / 2.0:
            return None  # not significantly moving
        if speed * span < rs.slow_min_motion_px:
            return None
        if _jumps(d.t[m], (d.X[m] - x0) * vx / speed + (d.Y[m] - y0) * vy / speed):
            return None
        third = (frames.t[-1] - frames.t[0]) / 3.0
        slowish = speed * third < 3.0 * rs.fwhm
        if slowish and self.zone is not None:
            inside = _lookup(self.zone, d.X[m] + self.offset[0], d.Y[m] + self.offset[1])
            if np.count_nonzero(inside) * 2 > m.size:
                return None  # around a saturated star (see _saturated_zone)
        if speed * frames.cadence > 1.25 * rs.max_rate_px_per_frame:
            return None
        # Frames of the span in which it should have been seen (on the image).
        inside = (frames.t >= d.t[m[0]] - 1e-9) & (frames.t <= d.t[m[-1]] + 1e-9)
        px = x0 + vx * (frames.t - tc) + frames.dx
        py = y0 + vy * (frames.t - tc) + frames.dy
        height, width = frames.shape
        if height > 0 and width > 0:
            inside &= (px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)
        n_expected = max(int(inside.sum()), m.size)
        fill = m.size / n_expected
        if fill < _MIN_FILL:
            return None
        combined = float(np.sqrt(np.sum(d.snr[m] ** 2)))
        score = math.sqrt(fill) * (1.0 - math.exp(-combined / 25.0))
        score /= 1.0 + max(0.0, chi2_red - 1.0) / 2.0
        kind = "track"
        if speed * frames.cadence < _SLOW_FWHM_PER_FRAME * rs.fwhm:
            kind = "slow_mover"
            score *= min(1.0, speed * span / (2.0 * rs.slow_min_motion_px))
        elif np.count_nonzero(~self.in_stack[m]) < rs.min_points:
            # Faster than that, the median stack does not hold it: most of a real track's
            # detections are where the stack has nothing (a hop between faint stars is).
            return None
        # Slow enough to stay within two FWHM through a third of the session: it is in the
        # early and late stacks, which must show that it moved (a blend of stars whose
        # centroid jumps as the extraction splits it or not does not move there).
        if self.early_late is not None and (kind == "slow_mover" or speed * third < 2.0 * rs.fwhm):
            contrast = self.early_late.contrast(
                tc,
                x0,
                y0,
                vx,
                vy,
                _SLOW_MOVER_SIGNIFICANCE if kind == "slow_mover" else _SLOW_MIN_SIGNIFICANCE,
            )
            if contrast < _SLOW_MIN_CONTRAST:
                return None
            score *= min(1.0, contrast / (2.0 * _SLOW_MIN_CONTRAST))
        return _Track(
            members=m,
            tc=tc,
            x0=x0,
            y0=y0,
            vx=vx,
            vy=vy,
            var_v=var_v,
            chi2_red=chi2_red,
            rms=float(np.sqrt(np.mean(rx * rx + ry * ry))),
            fill=fill,
            n_expected=n_expected,
            score=float(score),
            kind=kind,
        )

    def _merge_into(self, track: _Track, accepted: list[_Track]) -> tuple[int, _Track] | None:
        """An accepted track that ``track`` continues (the same motion, on the same line, in
        other frames), and the track through both; or None."""
        d = self.d
        for q, other in enumerate(accepted):
            if set(d.f[track.members].tolist()) & set(d.f[other.members].tolist()):
                continue
            dv = math.hypot(track.vx - other.vx, track.vy - other.vy)
            if dv > 3.0 * math.sqrt(track.var_v + other.var_v) + 0.05 * other.speed:
                continue
            m = track.members
            lag = d.t[m] - other.tc
            rx = d.X[m] - (other.x0 + other.vx * lag)
            ry = d.Y[m] - (other.y0 + other.vy * lag)
            # The line's error at that lag, and a slack of a quarter FWHM: a slow mover
            # searched in differences is pulled along its motion by the part of it the
            # stack holds, by a few tenths of a pixel, and a track broken by a missed
            # frame is still one. The union is judged in full below.
            var = other.var_v * lag**2 + (_MERGE_SLACK_FWHM * self.rs.fwhm) ** 2
            if np.median((rx * rx + ry * ry) / (self.sigma[m] ** 2 + var)) > _GATE_SIGMA**2:
                continue
            union = self.assess(np.concatenate([other.members, m]).tolist())
            if union is not None and union.members.size > other.members.size:
                return q, union
        return None

    def near_tracks(self, tracks: Sequence[_Track]) -> NDArray[np.bool_]:
        """Free detections close to an accepted track where it was in their frame: its
        own light that did not make it into the fit (a blend, a piece of a trail)."""
        d, frames = self.d, self.frames
        near = np.zeros(d.n, dtype=bool)
        reach = 2.0 * self.rs.match_radius_px
        for track in tracks:
            t0 = float(d.t[track.members[0]])
            t1 = float(d.t[track.members[-1]])
            for k in range(frames.n):
                if self.trees[k] is None or not t0 - 1e-9 <= frames.t[k] <= t1 + 1e-9:
                    continue
                lag = float(frames.t[k]) - track.tc
                px, py = track.x0 + track.vx * lag, track.y0 + track.vy * lag
                for q in self.trees[k].query_ball_point((px, py), reach):
                    near[self.by_frame[k][q]] = True
        return near

    # -- the whole search -------------------------------------------------------------

    def run(self) -> list[_Track]:
        import heapq

        d = self.d
        seeds = self.seeds()
        claimed = np.zeros(d.n, dtype=bool)
        # The last grown line each detection joined and that failed: a seed whose two
        # detections both lie on one such line grows into it again (a star whose centroid
        # wanders gives thousands of such seeds).
        failed_in = np.full(d.n, -1, dtype=np.int64)
        seen: set[tuple[int, ...]] = set()
        heap: list[tuple[float, int, _Track]] = []
        counter = 0
        for attempt, (i, j, _) in enumerate(seeds):
            if claimed[i] and claimed[j]:
                continue
            if failed_in[i] >= 0 and failed_in[i] == failed_in[j]:
                continue
            members = self.grow(i, j)
            key = tuple(members)
            if key in seen:
                continue
            seen.add(key)
            track = self.assess(members)
            if track is None:
                failed_in[members] = attempt
                continue
            claimed[track.members] = True
            heapq.heappush(heap, (-track.score, counter, track))
            counter += 1
        used = np.zeros(d.n, dtype=bool)
        accepted: list[_Track] = []
        while heap:
            _, _, track = heapq.heappop(heap)
            taken = used[track.members]
            if taken.any():
                rest = track.members[~taken]
                if rest.size < self.rs.min_points:
                    continue
                rest_list, _ = self._clip(rest.tolist())
                again = self.assess(rest_list)
                if again is not None:
                    heapq.heappush(heap, (-again.score, counter, again))
                    counter += 1
                continue
            merged = self._merge_into(track, accepted)
            if merged is not None:
                q, union = merged
                used[accepted[q].members] = False
                used[union.members] = True
                accepted[q] = union
                continue
            used[track.members] = True
            accepted.append(track)
        logger.debug(
            "%d seeds, %d distinct tracks tried, %d accepted", len(seeds), len(seen), len(accepted)
        )
        return accepted


# --------------------------------------------------------------------------------------
# Step 4: streaks


@dataclass
class _Streak:
    """One streak in one frame, merged from one or more detections."""

    frame: int
    members: list[int]
    cx: float
    cy: float
    angle: float  # radians, direction along the line (undirected)
    x0: float
    y0: float
    x1: float
    y1: float
    flux: float
    snr: float
    clipped: bool  # an end lies on the image edge

    @property
    def length(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)


def _merge_streak(
    d: _Dets, lines: _Lines, frames: _Frames, members: list[int], k: int, long: NDArray[np.bool_]
) -> _Streak:
    """One streak from its pieces (segments) and the small detections on its line."""
    m = np.asarray(members)
    pieces = m[long[m]]
    if pieces.size == 0:
        pieces = m
    weight = np.maximum(np.nan_to_num(d.flux[pieces], nan=0.0), 1e-6) * (lines.length[pieces] + 1.0)
    angle = 0.5 * math.atan2(
        float(np.sum(weight * np.sin(2 * lines.angle[pieces]))),
        float(np.sum(weight * np.cos(2 * lines.angle[pieces]))),
    )
    ux, uy = math.cos(angle), math.sin(angle)
    cx = float(np.sum(weight * lines.cx[pieces]) / weight.sum())
    cy = float(np.sum(weight * lines.cy[pieces]) / weight.sum())
    ends_x = np.concatenate([lines.x0[pieces], lines.x1[pieces]])
    ends_y = np.concatenate([lines.y0[pieces], lines.y1[pieces]])
    s_ends = (ends_x - cx) * ux + (ends_y - cy) * uy
    small = m[~long[m]]
    s_small = (d.x[small] - cx) * ux + (d.y[small] - cy) * uy
    lo = float(min(s_ends.min(), (s_small - d.b[small]).min(initial=np.inf)))
    hi = float(max(s_ends.max(), (s_small + d.b[small]).max(initial=-np.inf)))
    x0, y0 = cx + lo * ux, cy + lo * uy
    x1, y1 = cx + hi * ux, cy + hi * uy
    height, width = frames.shape
    clipped = False
    if height > 0 and width > 0:
        for px, py in ((x0, y0), (x1, y1)):
            if px < 3 or py < 3 or px > width - 4 or py > height - 4:
                clipped = True
    snr = float(np.sqrt(np.sum(d.snr[m] ** 2)))
    flux = float(np.nansum(d.flux[m]))
    return _Streak(
        frame=k,
        members=[int(q) for q in m],
        cx=0.5 * (x0 + x1),
        cy=0.5 * (y0 + y1),
        angle=angle,
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        flux=flux,
        snr=snr,
        clipped=clipped,
    )


def _perp(streak: _Streak, x: NDArray[np.float64] | float, y: NDArray[np.float64] | float) -> Any:
    """Distance of points from a streak's line, and their position along it."""
    ux, uy = math.cos(streak.angle), math.sin(streak.angle)
    dx = np.asarray(x) - streak.cx
    dy = np.asarray(y) - streak.cy
    return np.abs(dx * uy - dy * ux), dx * ux + dy * uy


def _find_streaks(
    d: _Dets,
    lines: _Lines,
    frames: _Frames,
    rs: _Resolved,
    free: NDArray[np.bool_],
    long: NDArray[np.bool_],
) -> list[_Streak]:
    """Streaks of each frame: elongated pieces on one line, merged, with the small
    detections on that line between or just beyond them."""
    piece = free & long
    tol = rs.streak_line_tolerance_px
    length = lines.length
    streaks: list[_Streak] = []
    for k in range(frames.n):
        pieces = np.nonzero(piece & (d.f == k))[0]
        if pieces.size == 0:
            continue
        uf = _UnionFind(pieces.size)
        for p in range(pieces.size):
            i = int(pieces[p])
            for q in range(p + 1, pieces.size):
                j = int(pieces[q])
                slack = math.atan2(2.0, max(min(length[i], length[j]), 1.0))
                limit = math.radians(_STREAK_ANGLE_DEG) + slack
                if float(_angle_diff(lines.angle[i], lines.angle[j])) > limit:
                    continue
                ok = True
                for u, v in ((i, j), (j, i)):
                    ux, uy = math.cos(lines.angle[u]), math.sin(lines.angle[u])
                    dx, dy = lines.cx[v] - lines.cx[u], lines.cy[v] - lines.cy[u]
                    off = abs(dx * uy - dy * ux)
                    if off > tol + math.hypot(dx, dy) * math.sin(math.radians(1.0)):
                        ok = False
                if ok:
                    uf.union(p, q)
        others = np.nonzero(free & ~long & (d.f == k))[0]
        for group in uf.groups():
            members = [int(pieces[p]) for p in group]
            streak = _merge_streak(d, lines, frames, members, k, long)
            for _ in range(3):
                if others.size == 0:
                    break
                off, along = _perp(streak, d.x[others], d.y[others])
                reach = 0.5 * streak.length + rs.streak_join_gap_px
                near = (off <= tol) & (np.abs(along) <= reach)
                add = [int(q) for q in others[near] if int(q) not in streak.members]
                if not add:
                    break
                streak = _merge_streak(d, lines, frames, streak.members + add, k, long)
            streaks.append(streak)
    return streaks


def _drop_fixed_lines(streaks: list[_Streak], rs: _Resolved) -> tuple[list[_Streak], int]:
    """Drop streaks that overlap a streak of another frame on the same line.

    An object moving at constant speed leaves, in two exposures, segments that do not
    overlap (it moves at least one segment length between them); overlapping segments at
    the same place are something fixed to the pixels or the sky (a bad column, a bleed
    trail, a diffraction spike) that the other tests missed.
    """
    tol = max(2.0, 0.7 * rs.fwhm)
    fixed = [False] * len(streaks)
    for p, a in enumerate(streaks):
        for q in range(p + 1, len(streaks)):
            b = streaks[q]
            if a.frame == b.frame:
                continue
            if float(_angle_diff(a.angle, b.angle)) > math.radians(_STREAK_ANGLE_DEG):
                continue
            off, along = _perp(a, b.cx, b.cy)
            if float(off) > tol:
                continue
            if abs(float(along)) < 0.5 * 0.5 * (a.length + b.length):
                fixed[p] = fixed[q] = True
    kept = [s for s, f in zip(streaks, fixed, strict=True) if not f]
    return kept, len(streaks) - len(kept)


def _link_streaks(streaks: list[_Streak], frames: _Frames, rs: _Resolved) -> list[list[_Streak]]:
    """Group streaks of different frames that lie on one line and move consistently."""
    n = len(streaks)
    uf = _UnionFind(n)
    tol = max(3.0, 1.5 * rs.fwhm)
    for p in range(n):
        a = streaks[p]
        for q in range(p + 1, n):
            b = streaks[q]
            if a.frame == b.frame:
                continue
            if float(_angle_diff(a.angle, b.angle)) > math.radians(_STREAK_ANGLE_DEG):
                continue
            dist = math.hypot(b.cx - a.cx, b.cy - a.cy)
            off_ab, along = _perp(a, b.cx, b.cy)
            off_ba, _ = _perp(b, a.cx, a.cy)
            slack = dist * math.sin(math.radians(1.5))
            if float(off_ab) > tol + slack or float(off_ba) > tol + slack:
                continue
            dt = abs(float(frames.t[b.frame] - frames.t[a.frame]))
            if dt <= 0:
                continue
            moved = abs(float(along)) / dt
            # The speed its lengths imply: length over exposure.
            implied = [s.length / float(frames.exposure[s.frame]) for s in (a, b) if not s.clipped]
            if implied:
                speed = float(np.median(implied))
                low, high = 0.5 * speed, 2.0 * speed
            else:
                speed = max(a.length, b.length) / float(np.median(frames.exposure))
                low, high = 0.5 * speed, math.inf
            if not low <= moved <= high:
                continue
            uf.union(p, q)
    groups: list[list[_Streak]] = []
    for group in uf.groups():
        chosen: dict[int, _Streak] = {}
        for p in group:
            s = streaks[p]
            if s.frame not in chosen or s.snr > chosen[s.frame].snr:
                chosen[s.frame] = s
        groups.append(sorted(chosen.values(), key=lambda s: s.frame))
    return _extend_streak_tracks(groups, frames, tol)


def _extend_streak_tracks(
    groups: list[list[_Streak]], frames: _Frames, tol: float
) -> list[list[_Streak]]:
    """Give each streak track the single streaks that lie where it predicts, in its frames
    or next to them (a piece whose angle a blend with a star bent)."""
    tracks = [g for g in groups if len(g) >= 2]
    singles = [g[0] for g in groups if len(g) == 1]
    taken: set[int] = set()
    for track in tracks:
        t = np.array([frames.t[s.frame] for s in track])
        vx, x0 = np.polyfit(t, [s.cx for s in track], 1)
        vy, y0 = np.polyfit(t, [s.cy for s in track], 1)
        length = float(np.median([s.length for s in track]))
        angle = float(np.arctan2(vy, vx))
        first, last = track[0].frame, track[-1].frame
        for q, single in enumerate(singles):
            if q in taken or not first - 2 <= single.frame <= last + 2:
                continue
            tq = float(frames.t[single.frame])
            px, py = x0 + vx * tq, y0 + vy * tq
            near = math.hypot(single.cx - px, single.cy - py) <= max(3.0 * tol, 0.1 * length)
            if not near or float(_angle_diff(single.angle, angle)) > math.radians(15.0):
                continue
            taken.add(q)
            if all(s.frame != single.frame for s in track):
                track.append(single)
        track.sort(key=lambda s: s.frame)
    return tracks + [[s] for q, s in enumerate(singles) if q not in taken]


def _same_line(a: _Streak, b: _Streak, tol: float) -> bool:
    """Whether two streaks lie on one line (angle, and each centre on the other's line)."""
    slack = math.atan2(2.0, max(min(a.length, b.length), 1.0))
    if float(_angle_diff(a.angle, b.angle)) > math.radians(_STREAK_ANGLE_DEG) + slack:
        return False
    dist = math.hypot(b.cx - a.cx, b.cy - a.cy)
    limit = tol + dist * math.sin(math.radians(1.0))
    if float(_perp(a, b.cx, b.cy)[0]) <= limit and float(_perp(b, a.cx, a.cy)[0]) <= limit:
        return True
    # Pieces end to end whose own lines are off by a few pixels (blends with stars): the
    # line joining their centres runs along both.
    if dist < 0.8 * 0.5 * (a.length + b.length):
        return False
    joining = math.atan2(b.cy - a.cy, b.cx - a.cx)
    loose = math.radians(_STREAK_JOIN_ANGLE_DEG)
    return all(float(_angle_diff(joining, s.angle)) <= loose for s in (a, b))


def _consolidate(
    streaks: list[_Streak],
    d: _Dets,
    lines: _Lines,
    frames: _Frames,
    rs: _Resolved,
    long: NDArray[np.bool_],
) -> list[_Streak]:
    """Merge the streaks of a frame that are one: on one line, or one lying on the other
    (a piece whose own angle a blend with a star bent)."""
    tol = rs.streak_line_tolerance_px
    by_frame: dict[int, list[_Streak]] = {}
    for streak in streaks:
        by_frame.setdefault(streak.frame, []).append(streak)
    out: list[_Streak] = []
    for k, items in sorted(by_frame.items()):
        merged = True
        while merged and len(items) > 1:
            merged = False
            items.sort(key=lambda s: -s.length)
            for p in range(len(items)):
                for q in range(p + 1, len(items)):
                    a, b = items[p], items[q]
                    on_it = _segment_distance(b.cx, b.cy, a) <= tol
                    if on_it or _same_line(a, b, tol):
                        union = _merge_streak(d, lines, frames, a.members + b.members, k, long)
                        items = [s for r, s in enumerate(items) if r not in (p, q)] + [union]
                        merged = True
                        break
                if merged:
                    break
        out.extend(items)
    return out


def _segment_distance(x: float, y: float, s: _Streak) -> float:
    """Distance from a point to a streak's segment."""
    vx, vy = s.x1 - s.x0, s.y1 - s.y0
    length2 = vx * vx + vy * vy
    u = 0.0 if length2 <= 0 else min(1.0, max(0.0, ((x - s.x0) * vx + (y - s.y0) * vy) / length2))
    return math.hypot(x - (s.x0 + u * vx), y - (s.y0 + u * vy))


# --------------------------------------------------------------------------------------
# Step 5: flashes


def _neighbours_in_batches(
    tree: Any,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    idx: NDArray[np.int64],
    reach: float,
    batch: int = 4096,
) -> Iterator[tuple[int, list[int]]]:
    """Each of ``idx`` with the points of ``tree`` within ``reach`` of it, queried a batch
    at a time (a star seen in every frame has a neighbour per frame: the lists of all of
    them at once would hold hundreds of megabytes)."""
    for start in range(0, idx.size, batch):
        part = idx[start : start + batch]
        near = tree.query_ball_point(np.column_stack([x[part], y[part]]), reach)
        yield from zip(part.tolist(), near, strict=True)


def _find_flashes(
    d: _Dets,
    frames: _Frames,
    rs: _Resolved,
    candidates: NDArray[np.bool_],
    stack_ratio: NDArray[np.float64],
) -> NDArray[np.int64]:
    """One-frame point sources: much brighter than the stack at their place and alone
    there in the other frames, or a star-shaped jump in a star's flux
    (:data:`_FLASH_MIN_JUMP`)."""
    from scipy.spatial import cKDTree

    height, width = frames.shape
    cand = (
        candidates
        & (d.snr >= rs.flash_min_snr)
        & (d.sharp >= _FLASH_MIN_SHARPNESS)
        & (d.sharp < min(rs.cosmic_ray_sharpness, _FLASH_MAX_SHARPNESS))
        & (d.elong <= _FLASH_MAX_ELONGATION)
        & ((d.flags & _FLAG_SATURATED) == 0)
        # Brighter than the stack at its place: by far alone, or by half on a star.
        & (stack_ratio < 1.0 / _FLASH_MIN_JUMP + 0.1)
    )
    if height > 0 and width > 0:
        cand &= (d.x >= _EDGE_PX) & (d.y >= _EDGE_PX)
        cand &= (d.x <= width - 1 - _EDGE_PX) & (d.y <= height - 1 - _EDGE_PX)
    idx = np.nonzero(cand)[0]
    if idx.size == 0:
        return idx
    tree = cKDTree(np.column_stack([d.X, d.Y]))
    flux_err = np.where(d.snr > 0, np.abs(d.flux) / np.maximum(d.snr, 1e-9), np.inf)
    keep = []
    # "Alone" means nothing within the seeing's reach: a star that close blends with it.
    reach = max(rs.match_radius_px, 1.5 * rs.fwhm)
    for i, near in _neighbours_in_batches(tree, d.X, d.Y, idx, reach):
        near_i = np.asarray(near, dtype=np.int64)
        # A cosmic ray or a hot pixel there in another frame is no star under the flash.
        others = near_i[(d.f[near_i] != d.f[i]) & (d.cls[near_i] != _COSMIC)]
        others = others[d.cls[others] != _DEFECT]
        if others.size == 0:
            if stack_ratio[i] < _STACK_RATIO_FLASH:
                keep.append(int(i))
            continue
        # A star is there in other frames: a flash on it is a jump in flux, against the
        # star's own detection in each frame (the brightest there, not a fragment).
        best: dict[int, int] = {}
        best_flux: dict[int, float] = {}
        for j, k, flux in zip(
            others.tolist(), d.f[others].tolist(), d.flux[others].tolist(), strict=True
        ):
            if k not in best or flux > best_flux[k]:
                best[k] = j
                best_flux[k] = flux
        star = np.fromiter(best.values(), dtype=np.int64)
        if np.any(d.flags[star] & _FLAG_SATURATED):
            continue  # a saturated star: its measured flux is clipped in other frames
        fluxes = [v for v in best_flux.values() if math.isfinite(v)]
        usual = statistics.median(fluxes) if fluxes else math.nan
        if not (math.isfinite(usual) and math.isfinite(d.flux[i])):
            continue
        jump = float(d.flux[i]) - usual
        if jump < (_FLASH_MIN_JUMP - 1.0) * max(usual, 0.0):
            continue  # the star as usual (most of them: tested first, it is cheap)
        spread = (
            1.4826 * statistics.median([abs(v - usual) for v in fluxes])
            if len(fluxes) >= 3
            else 0.0
        )
        if jump < 5.0 * spread:
            continue
        usual_err = _finite_median(flux_err[star])
        significant = jump >= rs.flash_min_snr * math.hypot(flux_err[i], usual_err)
        # What was added must be shaped like a star too: its peak over its flux as the
        # star's (a cosmic ray on the star adds a peak and little flux, a neighbour merged
        # by the extraction adds flux and no peak).
        usual_peak = _finite_median(d.peak[star])
        if not (significant and math.isfinite(usual_peak) and usual > 0 and usual_peak > 0):
            continue
        added = ((float(d.peak[i]) - usual_peak) / jump) / (usual_peak / usual)
        if _FLASH_MIN_ADDED_SHARPNESS <= added < _FLASH_MAX_SHARPNESS:
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


# --------------------------------------------------------------------------------------
# The stage


_CANDIDATE_DTYPES: dict[str, Any] = {
    "id": str,
    "kind": str,
    "n_frames": np.int64,
    "n_missed": np.int64,
    "frame_start": str,
    "frame_end": str,
}
_DETECTION_DTYPES: dict[str, Any] = {
    "candidate_id": str,
    "frame": str,
    "frame_index": np.int64,
    "measured": bool,
}


def _table_of(
    names: Sequence[str], dtypes: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> Table:
    """A table of ``rows`` (mappings by column name), built column by column."""
    if not rows:
        return Table(names=names, dtype=[dtypes.get(name, np.float64) for name in names])
    return Table(
        [
            np.array([row[name] for row in rows], dtype=dtypes.get(name, np.float64))
            for name in names
        ],
        names=names,
    )


def _empty_candidates() -> Table:
    return _table_of(CANDIDATE_COLUMNS, _CANDIDATE_DTYPES, [])


def _empty_detections() -> Table:
    return _table_of(DETECTION_COLUMNS, _DETECTION_DTYPES, [])


class _Builder:
    """Collects candidates and their detections in the contract's columns."""

    def __init__(self, d: _Dets, frames: _Frames) -> None:
        self.d = d
        self.frames = frames
        self.candidates: list[dict[str, Any]] = []
        self.rows: list[list[dict[str, Any]]] = []

    def _rate(self, speed: float) -> tuple[float, float]:
        frames = self.frames
        per_min = speed if frames.timed else math.nan
        return per_min, speed * frames.cadence

    def _mjd(self, k: int) -> float:
        return float(self.frames.mjd[k]) if self.frames.timed else math.nan

    def _det_row(self, j: int, **extra: float) -> dict[str, Any]:
        d, frames = self.d, self.frames
        k = int(d.f[j])
        row = {
            "frame": frames.file[k],
            "frame_index": int(frames.index[k]),
            "mjd": self._mjd(k),
            "x": float(d.x[j]),
            "y": float(d.y[j]),
            "flux": float(d.flux[j]),
            "snr": float(d.snr[j]),
            "peak_snr": float(d.peak_snr[j]),
            "x0": math.nan,
            "y0": math.nan,
            "x1": math.nan,
            "y1": math.nan,
            "x_fit": float(d.x[j]),
            "y_fit": float(d.y[j]),
            "elongation": float(d.elong[j]),
            "measured": True,
        }
        row.update(extra)
        return row

    def _missed(self, first: int, last: int, n: int) -> int:
        return max(0, last - first + 1 - n)

    def track(self, tr: _Track) -> None:
        d, frames = self.d, self.frames
        rows = []
        for j in tr.members:
            k = int(d.f[j])
            lag = float(frames.t[k]) - tr.tc
            rows.append(
                self._det_row(
                    int(j),
                    x_fit=tr.x0 + tr.vx * lag + float(frames.dx[k]),
                    y_fit=tr.y0 + tr.vy * lag + float(frames.dy[k]),
                )
            )
        per_min, per_frame = self._rate(tr.speed)
        k0, k1 = int(d.f[tr.members[0]]), int(d.f[tr.members[-1]])
        self.candidates.append(
            {
                "kind": tr.kind,
                "n_frames": int(tr.members.size),
                "mjd_start": self._mjd(k0),
                "mjd_end": self._mjd(k1),
                "x_start": rows[0]["x_fit"],
                "y_start": rows[0]["y_fit"],
                "x_end": rows[-1]["x_fit"],
                "y_end": rows[-1]["y_fit"],
                "rate_px_per_min": per_min,
                "direction_deg": math.degrees(math.atan2(tr.vy, tr.vx)) % 360.0,
                "snr_median": float(np.median(d.snr[tr.members])),
                "score": tr.score,
                "rate_px_per_frame": per_frame,
                "fit_rms_px": tr.rms,
                "n_missed": int(tr.n_expected - tr.members.size),
                "flux_median": _finite_median(d.flux[tr.members]),
                "length_px": 0.0,
                "frame_start": frames.file[k0],
                "frame_end": frames.file[k1],
            }
        )
        self.rows.append(rows)

    def stack_mover(self, mover: _StackMover, finder: _TrackFinder, rs: _Resolved) -> list[int]:
        """A slow mover from the early and late stacks: one row per good frame where it is
        on the image, the detection nearest to where it was when there is one within
        ``match_radius_px`` (``measured``), else the position the stacks give. Returns the
        detections it took."""
        frames = self.frames
        height, width = frames.shape
        rows = []
        taken: list[int] = []
        for k in range(frames.n):
            lag = float(frames.t[k]) - mover.tc
            px, py = mover.x_early + mover.vx * lag, mover.y_early + mover.vy * lag
            fx, fy = px + float(frames.dx[k]), py + float(frames.dy[k])
            if height > 0 and width > 0 and not (0 <= fx <= width - 1 and 0 <= fy <= height - 1):
                continue
            best = -1
            if finder.trees[k] is not None:
                dist, q = finder.trees[k].query((px, py), distance_upper_bound=rs.match_radius_px)
                if math.isfinite(dist):
                    best = int(finder.by_frame[k][q])
            if best >= 0:
                taken.append(best)
                rows.append(self._det_row(best, x_fit=fx, y_fit=fy))
            else:
                rows.append(
                    {
                        "frame": frames.file[k],
                        "frame_index": int(frames.index[k]),
                        "mjd": self._mjd(k),
                        "x": fx,
                        "y": fy,
                        "flux": math.nan,
                        "snr": math.nan,
                        "peak_snr": math.nan,
                        "x0": math.nan,
                        "y0": math.nan,
                        "x1": math.nan,
                        "y1": math.nan,
                        "x_fit": fx,
                        "y_fit": fy,
                        "elongation": math.nan,
                        "measured": False,
                    }
                )
        if len(rows) < 2:
            return []
        speed = math.hypot(mover.vx, mover.vy)
        per_min, per_frame = self._rate(speed)
        k0 = frames.file.index(rows[0]["frame"])
        k1 = frames.file.index(rows[-1]["frame"])
        measured = [r for r in rows if r["measured"]]
        motion = speed * float(frames.t[k1] - frames.t[k0])
        score = (1.0 - math.exp(-mover.significance / 25.0)) * min(
            1.0, mover.contrast / (2.0 * _SLOW_MIN_CONTRAST)
        )
        score *= min(1.0, motion / (2.0 * rs.slow_min_motion_px))
        self.candidates.append(
            {
                "kind": "slow_mover",
                "n_frames": len(rows),
                "mjd_start": self._mjd(k0),
                "mjd_end": self._mjd(k1),
                "x_start": rows[0]["x_fit"],
                "y_start": rows[0]["y_fit"],
                "x_end": rows[-1]["x_fit"],
                "y_end": rows[-1]["y_fit"],
                "rate_px_per_min": per_min,
                "direction_deg": math.degrees(math.atan2(mover.vy, mover.vx)) % 360.0,
                "snr_median": _finite_median(np.array([r["snr"] for r in measured]))
                if measured
                else math.nan,
                "score": float(score),
                "rate_px_per_frame": per_frame,
                "fit_rms_px": math.nan,
                "n_missed": len(rows) - len(measured),
                "flux_median": _finite_median(np.array([r["flux"] for r in measured]))
                if measured
                else math.nan,
                "length_px": 0.0,
                "frame_start": frames.file[k0],
                "frame_end": frames.file[k1],
            }
        )
        self.rows.append(rows)
        return taken

    def streaks(self, group: list[_Streak], rs: _Resolved) -> None:
        frames = self.frames
        t = np.array([frames.t[s.frame] for s in group])
        cx = np.array([s.cx for s in group])
        cy = np.array([s.cy for s in group])
        lengths = np.array([s.length for s in group])
        snr = np.array([s.snr for s in group])
        if len(group) >= 2:
            kind = "streak_track"
            vx, vy = np.polyfit(t, cx, 1)[0], np.polyfit(t, cy, 1)[0]
            speed = math.hypot(vx, vy)
            direction = math.atan2(vy, vx)
            px = cx.mean() + vx * (t - t.mean())
            py = cy.mean() + vy * (t - t.mean())
            rms = float(np.sqrt(np.mean((cx - px) ** 2 + (cy - py) ** 2)))
            combined = float(np.sqrt(np.sum(snr**2)))
            score = (1.0 - math.exp(-combined / 25.0)) * min(1.0, len(group) / 3.0)
        else:
            kind = "streak"
            s = group[0]
            direction = s.angle
            speed = s.length / float(frames.exposure[s.frame])
            rms = 0.0
            score = (1.0 - math.exp(-s.snr / 25.0)) * min(1.0, s.length / (20.0 * rs.fwhm))
        ux, uy = math.cos(direction), math.sin(direction)
        rows = []
        for s in group:
            ends = [(s.x0, s.y0), (s.x1, s.y1)]
            if (s.x1 - s.x0) * ux + (s.y1 - s.y0) * uy < 0:
                ends.reverse()
            rows.append(
                {
                    "frame": frames.file[s.frame],
                    "frame_index": int(frames.index[s.frame]),
                    "mjd": self._mjd(s.frame),
                    "x": s.cx,
                    "y": s.cy,
                    "flux": s.flux,
                    "snr": s.snr,
                    "peak_snr": float(np.max(self.d.peak_snr[s.members])),
                    "x0": ends[0][0],
                    "y0": ends[0][1],
                    "x1": ends[1][0],
                    "y1": ends[1][1],
                    "x_fit": s.cx,
                    "y_fit": s.cy,
                    "elongation": s.length / max(2.0 * float(np.median(self.d.b[s.members])), 1.0),
                    "measured": True,
                }
            )
        per_min, per_frame = self._rate(speed)
        k0, k1 = group[0].frame, group[-1].frame
        self.candidates.append(
            {
                "kind": kind,
                "n_frames": len(group),
                "mjd_start": self._mjd(k0),
                "mjd_end": self._mjd(k1),
                "x_start": rows[0]["x0"],
                "y_start": rows[0]["y0"],
                "x_end": rows[-1]["x1"],
                "y_end": rows[-1]["y1"],
                "rate_px_per_min": per_min,
                "direction_deg": math.degrees(direction) % 360.0,
                "snr_median": float(np.median(snr)),
                "score": float(score),
                "rate_px_per_frame": per_frame,
                "fit_rms_px": rms,
                "n_missed": self._missed(k0, k1, len(group)),
                "flux_median": _finite_median(np.array([s.flux for s in group])),
                "length_px": float(np.median(lengths)),
                "frame_start": frames.file[k0],
                "frame_end": frames.file[k1],
            }
        )
        self.rows.append(rows)

    def flash(self, j: int, rs: _Resolved) -> None:
        d, frames = self.d, self.frames
        k = int(d.f[j])
        psf_like = math.exp(-abs(math.log(max(float(d.sharp[j]), 1e-3))))
        score = (1.0 - math.exp(-float(d.snr[j]) / rs.flash_min_snr)) * psf_like
        self.candidates.append(
            {
                "kind": "anomaly",
                "n_frames": 1,
                "mjd_start": self._mjd(k),
                "mjd_end": self._mjd(k),
                "x_start": float(d.x[j]),
                "y_start": float(d.y[j]),
                "x_end": float(d.x[j]),
                "y_end": float(d.y[j]),
                "rate_px_per_min": 0.0 if frames.timed else math.nan,
                "direction_deg": math.nan,
                "snr_median": float(d.snr[j]),
                "score": float(score),
                "rate_px_per_frame": 0.0,
                "fit_rms_px": 0.0,
                "n_missed": 0,
                "flux_median": float(d.flux[j]),
                "length_px": 0.0,
                "frame_start": frames.file[k],
                "frame_end": frames.file[k],
            }
        )
        self.rows.append([self._det_row(j)])

    def tables(self) -> tuple[Table, Table]:
        order = sorted(
            range(len(self.candidates)),
            key=lambda q: (-self.candidates[q]["score"], KINDS.index(self.candidates[q]["kind"])),
        )
        counts: dict[str, int] = {}
        cand_rows: list[dict[str, Any]] = []
        det_rows: list[dict[str, Any]] = []
        for q in order:
            cand = dict(self.candidates[q])
            counts[cand["kind"]] = counts.get(cand["kind"], 0) + 1
            ident = f"{_ID_PREFIX[cand['kind']]}{counts[cand['kind']]:04d}"
            cand["id"] = ident
            cand_rows.append(cand)
            for row in self.rows[q]:
                det_rows.append({"candidate_id": ident, **row})
        return (
            _table_of(CANDIDATE_COLUMNS, _CANDIDATE_DTYPES, cand_rows),
            _table_of(DETECTION_COLUMNS, _DETECTION_DTYPES, det_rows),
        )


def link_session(
    detections: Table | Sequence[str | os.PathLike[str]],
    frames_table: Table,
    sky_dir: str | os.PathLike[str] | None,
    settings: LinkSettings | None = None,
) -> tuple[Table, Table, dict[str, Any]]:
    """Find what moved in a session: tracks, slow movers, streaks and flashes.

    Parameters
    ----------
    detections : astropy.table.Table or sequence of path-like
        The extraction's sources of every good frame (all chunks joined, see
        :func:`read_detections`), with at least the columns of :data:`INPUT_COLUMNS`;
        ``x``, ``y`` are 0-based pixel positions with ``x`` the column. Or the chunk
        catalogues' paths: they are then read here, and the table is let go once link
        holds what it needs of it (a smaller peak memory).
    frames_table : astropy.table.Table
        The check stage's ``check/frames.ecsv`` (``file``, ``index``, ``mjd_mid``,
        ``exposure_s``, ``status``, ``dx``, ``dy``, ``width``, ``height`` are used).
    sky_dir : path-like or None
        Folder of the sky model: ``stack.fits``, ``stationary_mask.fits``, ``defects.fits``
        (uint8 bits: 1 hot pixel, 2 bad column), ``early.fits``, ``late.fits`` and
        ``sky.json`` (its ``early_frames`` and ``late_frames`` date the two stacks).
        Missing files make link rely on the detections alone (and say so in the stats).
    settings : LinkSettings, optional
        Tuned and configured settings; default all tuned.

    Returns
    -------
    candidates : astropy.table.Table
        One row per candidate, best score first, with :data:`CANDIDATE_COLUMNS`.
    candidate_detections : astropy.table.Table
        One row per candidate per frame it was detected in, with :data:`DETECTION_COLUMNS`
        (a slow mover found in the early and late stacks has a row in every good frame,
        ``measured`` telling which hold a detection).
    stats : dict
        JSON-ready (NaN aside): ``settings`` (every value used), ``frames`` (all, good),
        ``time_basis`` (``mjd`` or ``frame_index``), ``cadence`` and its unit,
        ``detections``, ``sky`` (what the sky model held: stack, early and late stacks,
        the stationary mask's fraction of the image, bad columns, hot pixels),
        ``classes`` (detections that were defects, cosmic rays, stationary, free),
        ``stationary`` (groups, residual jitter taken out, centroid-error scale and
        floor), ``fixed_lines`` (streaks dropped as fixed to the pixels), ``candidates``
        (count per kind) and ``warnings``.

    Raises
    ------
    ValueError
        When the tables lack the columns link needs or no frame passed the check.
    """
    settings = settings or LinkSettings()
    sky, warnings = _read_sky(Path(sky_dir) if sky_dir is not None else None)
    shape = sky.stack.shape if sky.stack is not None else None
    frames, more = _frames(frames_table, shape)  # type: ignore[arg-type]
    warnings += more
    good = frames_table[np.asarray(frames_table["status"]) == "ok"]
    fwhm = _finite_median(_column(good, "fwhm"))
    if not math.isfinite(fwhm) and isinstance(sky.info.get("fwhm"), int | float):
        fwhm = float(sky.info["fwhm"])
    if not math.isfinite(fwhm) or fwhm <= 0:
        fwhm = 3.0
        warnings.append("no seeing measurement: assumed a FWHM of 3 px")
    rs = _resolve(settings, fwhm, frames.n)
    if not isinstance(detections, Table):
        detections = read_detections(detections)
    d, more = _dets(detections, frames)
    del detections  # what link needs is in d now (when the caller holds no reference)
    warnings += more
    stats: dict[str, Any] = {
        "settings": rs.as_dict(),
        "frames": {"all": frames.n_all, "good": frames.n},
        "time_basis": "mjd" if frames.timed else "frame_index",
        "cadence": frames.cadence,
        "cadence_unit": "min" if frames.timed else "frame",
        "detections": int(d.n),
    }
    stats["sky"] = {
        "stack": sky.stack is not None,
        "early_late": sky.early is not None and sky.late is not None,
        "mask_fraction": float(np.mean(sky.mask > 0)) if sky.mask is not None else None,
        "bad_columns": _bad_columns(sky.defects).tolist(),
        "hot_pixels": int(np.count_nonzero(sky.defects & 1)) if sky.defects is not None else 0,
    }
    counts = _mark_defects(d, sky, rs)
    lines = _lines(d, rs)
    long = _is_long(d, rs)
    ratio = _stack_ratio(d, sky, lines, long)
    stats["stationary"] = _stationary(d, frames, rs, ratio)
    ratio = _stack_ratio(d, sky, lines, long)  # with the refined offsets
    counts["stationary"] = int((d.cls == _STATIC).sum())
    counts["free"] = int((d.cls == _FREE).sum())
    stats["classes"] = counts
    builder = _Builder(d, frames)
    free = d.cls == _FREE
    early_late = None
    zone = _saturated_zone(sky.stack, rs.fwhm)
    if sky.early is not None and sky.late is not None and frames.n >= 3:
        early_late = _EarlyLate(sky, frames, rs.fwhm, zone)
        sky.early = sky.late = None  # early_late holds what is needed of them
    else:
        warnings.append("no early and late stacks: slow movers are not confirmed on them")
    finder = _TrackFinder(d, frames, rs, free | (d.cls == _STATIC), early_late, ratio, zone)
    tracks = finder.run()
    used = np.zeros(d.n, dtype=bool)
    for track in tracks:
        used[track.members] = True
        builder.track(track)
    if early_late is not None:
        for mover in _stack_movers(early_late, frames, rs, tracks, sky.defects, zone):
            used[builder.stack_mover(mover, finder, rs)] = True
    used |= finder.near_tracks(tracks)
    streaks = _find_streaks(d, lines, frames, rs, free & ~used, long)
    streaks = _consolidate(streaks, d, lines, frames, rs, long)
    for streak in streaks:
        used[streak.members] = True
    streaks, stats["fixed_lines"] = _drop_fixed_lines(streaks, rs)
    for group in _link_streaks(streaks, frames, rs):
        if len(group) == 1 and group[0].length < _STREAK_MIN_FWHM * rs.fwhm:
            continue
        builder.streaks(group, rs)
    unused = (free | (d.cls == _STATIC)) & ~used
    for j in _find_flashes(d, frames, rs, unused, ratio):
        builder.flash(int(j), rs)
    candidates, rows = builder.tables()
    stats["candidates"] = {kind: int(np.sum(candidates["kind"] == kind)) for kind in KINDS}
    stats["warnings"] = warnings
    for message in warnings:
        logger.warning("%s", message)
    logger.info(
        "linked %d detections in %d good frames: %s",
        d.n,
        frames.n,
        ", ".join(f"{n} {k}" for k, n in stats["candidates"].items()),
    )
    return candidates, rows, stats


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_link(
    candidates: Table,
    detections: Table,
    stats: Mapping[str, Any],
    candidates_path: str | os.PathLike[str],
    detections_path: str | os.PathLike[str],
    stats_path: str | os.PathLike[str],
) -> None:
    """Write link's outputs, each whole or not at all.

    Parameters
    ----------
    candidates, detections : astropy.table.Table
        As returned by :func:`link_session`.
    stats : mapping
        As returned by :func:`link_session`.
    candidates_path, detections_path : path-like
        ECSV files to write.
    stats_path : path-like
        JSON file to write.
    """

    def ecsv(table: Table) -> Callable[[Path], None]:
        return lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True)

    _atomic(Path(candidates_path), ecsv(candidates))
    _atomic(Path(detections_path), ecsv(detections))
    text = json.dumps(_jsonable(stats), indent=2, allow_nan=False) + "\n"
    _atomic(Path(stats_path), lambda tmp: tmp.write_text(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
