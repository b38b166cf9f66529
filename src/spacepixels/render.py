"""The render stage: animated GIFs of every candidate and PNG overviews of the session.

A person decides what is real by looking, so every candidate gets two small animations cut
from the frames themselves, and the session gets two still pictures:

``<id>_object.gif`` (object-centric)
    A square crop that follows the candidate's fitted path from frame to frame, so the
    object stands still in the middle and the stars drift past. The path is a straight line
    in time fitted to the candidate's rows of ``detections.ecsv`` (``x_fit``/``y_fit`` when
    present, else ``x``/``y``) in the reference frame's pixels (each frame's ``dx``/``dy``
    from the check taken out); a good frame where the candidate was not detected gets the
    line's position there, shifted by that frame's offset. For a flash or a single streak
    the path is one point, and the frames shown are the event's with ``context_frames``
    good frames before and after it.
``<id>_stars.gif`` (star-centric)
    A fixed crop over the whole path (streak ends included) with ``margin_px`` around it,
    moved only by each frame's offset from the reference so that the stars stand still,
    while the object walks. It is circled in every frame: a solid circle where it was
    detected, a dotted one where it was not (the fitted position). A streak's two ends are
    marked with short ticks beyond them. For a flash this is also its context view
    (``context`` in the manifest names the same file: the frames before, the flash, the
    frames after), and for a streak or a streak track its streak view (``streak``).

Frames are shown in time order; a view with more than ``max_gif_frames`` frames shows that
many spread evenly over it (its first and last and every frame with the event kept).
Crops that reach past the image's edge are black there.

The stretch: one per GIF, for all its frames, so nothing flickers. Every crop has its own
median subtracted when it is cut (the local sky of that frame at that place: clouds, the
sky's drift through the night and the gradient a moving crop crosses all go), and the
GIF's noise ``sigma`` is the normalised MAD of all its crops' pixels. Black sits
``black_sigma`` sigmas below the sky; white is the larger of the ``white_percentile`` of the
pixels and ``white_min_sigma`` sigmas; between them an ``asinh`` curve puts the sky at grey
``sky_grey`` (the curve of :func:`spacepixels.convert.apply_stretch`, as the blink previews use).

The palette: a GIF holds at most 256 colours, and LZW compresses sky noise poorly, so the
size of a GIF is set by how many grey levels its noise spans. The data are therefore cut
into ``grey_levels`` levels whose width is ``level_sigma`` sigmas near the sky and grows
geometrically up to white (fine steps where the noise is, coarse ones in star cores), and
each level is shown in the grey the stretch gives its centre. The sky falls in the middle of
a level, never on an edge where noise would flip it between two greys. One palette serves
every frame of a GIF (plus a few colours for the marks). A 200x200 crop of 50 frames of
sky noise takes about 0.6 MB at the defaults (32 levels of one sigma); a crop shown
enlarged takes less.

Display size: a crop is enlarged by a whole factor (nearest neighbour, so pixels stay
pixels) until its longest side reaches ``min_gif_px``; a crop whose longest side exceeds
``max_gif_px`` is binned (the mean of whole blocks of pixels) to fit. The frame's name and
its mid-exposure time (UTC) are written in the top left corner with Pillow's own default
font (nothing is fetched).

Reading: every frame a view needs is read once per session, however many candidates use it:
the views first say which frames and which boxes they need, then the frames are read in
order and every crop is cut from each as it is read; the GIFs are assembled afterwards. The
crops wait in memory as float16 (binned already): two bytes per GIF pixel per frame, about
0.5 MB for a 64 px crop of 60 frames, 28 MB for the largest (480 px) one; the log says how
much a session holds.

The overviews:

``overview.png``
    The median stack (``sky/stack.fits``) with every candidate's path drawn in its kind's
    colour and labelled with its id (tracks as their fitted line with a dot at the start,
    streaks as their segments, flashes circled), with a legend of kinds.
``masks.png``
    The stack in grey with the stationary mask in translucent blue and the defects (hot
    pixels circled, bad columns as lines) in red, with a legend.

``render.json`` lists it all (paths relative to the render folder); see
:func:`render_session`. It is written last, once everything else is in place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray
from scipy.optimize import brentq

from spacepixels.convert import Stretch, apply_stretch, bin_image
from spacepixels.files import jsonable, write_atomically
from spacepixels.frames import frame_stem, read_frame, read_image
from spacepixels.settings import section_values
from spacepixels.times import mjd_to_iso

__all__ = ["RENDER_FILE_VERSION", "RenderSettings", "render_session"]

logger = logging.getLogger(__name__)

RENDER_FILE_VERSION = 1
"""Version of the layout of ``render.json``; raised when a key changes meaning."""

MANIFEST_NAME = "render.json"
"""Name of the manifest in the render folder."""

KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "track": (80, 220, 100),
    "slow_mover": (90, 200, 255),
    "streak_track": (255, 170, 40),
    "streak": (255, 110, 200),
    "anomaly": (255, 230, 60),
}
"""Colour of each candidate kind in the overview (and its legend)."""

_OTHER_KIND_COLOUR = (220, 220, 220)
_MARK_DETECTED = (90, 255, 120)
_MARK_PREDICTED = (255, 200, 60)
_MARK_TEXT = (255, 255, 255)
_MAD_TO_SIGMA = 1.482602218505602
_SAMPLE_PIXELS = 100_000
_SINGLE_FRAME_KINDS = ("anomaly", "streak")
_STREAK_KINDS = ("streak", "streak_track")
_MEDIAN_PIXELS = 40_000
"""A crop's sky (its median) is taken on an even grid of at most about this many pixels."""
_FLOAT16_LIMIT = 65000.0
"""Crops are kept as float16 until encoded; values beyond this (ADU above the sky) are
clipped to it, far above any white point."""
_OVERVIEW_PERCENTILE = 99.9
"""White point of the overviews, as a percentile of the stack's pixels (in the stars)."""
_CONTEXT_WIDEN = 3
"""A flash's star-centric (context) crop is this many times the object crop's side."""


@dataclass(frozen=True)
class RenderSettings:
    """The ``render:`` section of the configuration.

    Attributes
    ----------
    frame_duration_ms : int
        How long each GIF frame is shown, in milliseconds (default 300).
    object_crop_px : int
        Side of the object-centric crop in frame pixels (default 64). A streak track's crop
        grows to hold its streak.
    margin_px : int
        Margin around the path in the star-centric crop, in frame pixels (default 24).
    context_frames : int
        Good frames shown before and after a flash or a streak (default 3).
    max_gif_frames : int
        At most this many frames per GIF (default 60), spread over the view.
    min_gif_px : int
        A crop is enlarged by a whole factor until its longest side reaches this (default
        192).
    max_gif_px : int
        A crop whose longest side is larger is binned to fit (default 480).
    grey_levels : int
        Grey levels of a GIF's palette, 8 to 248 (default 32).
    level_sigma : float
        Width of the faintest grey levels in noise sigmas (default 1.0); larger gives
        smaller files and coarser sky noise.
    black_sigma : float
        Black point in noise sigmas below the sky (default 2.0).
    white_percentile : float
        White point as a percentile of a GIF's pixels (default 99.5).
    white_min_sigma : float
        The white point is at least this many noise sigmas above the sky (default 40.0).
    sky_grey : float
        Grey level (0-1) of the sky (default 0.12).
    circle_fwhm : float
        Radius of the circle around the object, in the session's FWHM (default 2.5).
    overview_max_px : int
        Longest side of the overview PNGs; the stack is binned to fit (default 1600).
    """

    frame_duration_ms: int = 300
    object_crop_px: int = 64
    margin_px: int = 24
    context_frames: int = 3
    max_gif_frames: int = 60
    min_gif_px: int = 192
    max_gif_px: int = 480
    grey_levels: int = 32
    level_sigma: float = 1.0
    black_sigma: float = 2.0
    white_percentile: float = 99.5
    white_min_sigma: float = 40.0
    sky_grey: float = 0.12
    circle_fwhm: float = 2.5
    overview_max_px: int = 1600

    def __post_init__(self) -> None:
        problems = []

        def integer(name: str, low: int, high: int | None = None) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
            if not ok or (high is not None and value > high):
                bound = f"from {low} to {high}" if high is not None else f">= {low}"
                problems.append(f"{name} must be an integer {bound}, not {value!r}")

        def number(name: str, low: float, high: float, *, open_low: bool = False) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value <= high
            ok = ok and (value > low if open_low else value >= low)
            if not ok:
                problems.append(f"{name} must be a number from {low} to {high}, not {value!r}")

        integer("frame_duration_ms", 20, 10_000)
        integer("object_crop_px", 16, 2048)
        integer("margin_px", 0, 2048)
        integer("context_frames", 0, 100)
        integer("max_gif_frames", 2, 1000)
        integer("min_gif_px", 16, 4096)
        integer("max_gif_px", 32, 4096)
        integer("grey_levels", 8, 248)
        integer("overview_max_px", 64, 8192)
        number("level_sigma", 0.0, 20.0, open_low=True)
        number("black_sigma", 0.0, 20.0)
        number("white_percentile", 50.0, 100.0, open_low=True)
        number("white_min_sigma", 0.0, 1e6, open_low=True)
        number("sky_grey", 0.0, 1.0, open_low=True)
        number("circle_fwhm", 0.0, 50.0, open_low=True)
        if not problems and self.min_gif_px > self.max_gif_px:
            problems.append(
                f"min_gif_px ({self.min_gif_px}) exceeds max_gif_px ({self.max_gif_px})"
            )
        if not problems and self.sky_grey >= 1.0:
            problems.append("sky_grey must be below 1")
        if problems:
            raise ValueError("render settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RenderSettings:
        """Settings from the merged ``render:`` section (missing or null keys: defaults).

        Raises
        ------
        ValueError
            For an unknown key (named) or a value out of range.
        """
        given = section_values(cls, values, "render")
        for key in ("level_sigma", "black_sigma", "white_percentile", "white_min_sigma"):
            if isinstance(given.get(key), int) and not isinstance(given[key], bool):
                given[key] = float(given[key])
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping (the inverse of :meth:`from_mapping`)."""
        return asdict(self)


# --------------------------------------------------------------------------------------
# The session's frames and candidates


@dataclass(frozen=True)
class _Frames:
    """The good frames of a session, in time order."""

    files: list[str]
    t: NDArray[np.float64]  # mid-exposure MJD, or the frame's index when untimed
    mjd: NDArray[np.float64]
    dx: NDArray[np.float64]
    dy: NDArray[np.float64]
    fwhm: float
    shape: tuple[int, int] | None

    @property
    def n(self) -> int:
        return len(self.files)


def _column(table: Table, name: str, default: float) -> NDArray[np.float64]:
    if name not in table.colnames:
        return np.full(len(table), default, dtype=np.float64)
    values = np.asarray(table[name], dtype=np.float64)
    return np.where(np.isfinite(values), values, default)


def _read_frames_table(path: Path) -> _Frames:
    table = Table.read(path, format="ascii.ecsv")
    for name in ("file", "status"):
        if name not in table.colnames:
            raise ValueError(f"{path}: no {name!r} column")
    good = table[np.asarray(table["status"]).astype(str) == "ok"]
    mjd = _column(good, "mjd_mid", math.nan)
    if "mjd_mid" in good.colnames:
        mjd = np.asarray(good["mjd_mid"], dtype=np.float64)
    timed = bool(len(good)) and bool(np.all(np.isfinite(mjd)))
    order = np.argsort(mjd, kind="stable") if timed else np.arange(len(good))
    good = good[order]
    mjd = mjd[order]
    fwhm_values = _column(good, "fwhm", math.nan)
    fwhm_values = fwhm_values[np.isfinite(fwhm_values) & (fwhm_values > 0)]
    shape = None
    if len(good) and {"width", "height"} <= set(good.colnames):
        shape = (int(good["height"][0]), int(good["width"][0]))
    return _Frames(
        files=[str(f) for f in good["file"]],
        t=mjd if timed else np.arange(len(good), dtype=np.float64),
        mjd=mjd,
        dx=_column(good, "dx", 0.0),
        dy=_column(good, "dy", 0.0),
        fwhm=float(np.median(fwhm_values)) if fwhm_values.size else 3.0,
        shape=shape,
    )


@dataclass
class _Candidate:
    """A candidate's path over the good frames, in the frames' own pixels."""

    id: str
    kind: str
    score: float
    detected: dict[int, tuple[float, float]]  # good-frame index -> measured position
    ends: dict[int, tuple[float, float, float, float]]  # streak ends per frame
    fit_x: tuple[float, float]  # reference-frame line: x = a + b (t - t0)
    fit_y: tuple[float, float]
    t0: float
    first: int
    last: int
    length_px: float

    def position(self, frames: _Frames, k: int) -> tuple[float, float]:
        """Where the fitted path puts the candidate in good frame ``k`` (its own pixels)."""
        lag = float(frames.t[k]) - self.t0
        return (
            self.fit_x[0] + self.fit_x[1] * lag + float(frames.dx[k]),
            self.fit_y[0] + self.fit_y[1] * lag + float(frames.dy[k]),
        )


def _line(t: NDArray[np.float64], v: NDArray[np.float64], t0: float) -> tuple[float, float]:
    if t.size >= 2 and np.ptp(t) > 0:
        slope, intercept = np.polyfit(t - t0, v, 1)
        return float(intercept), float(slope)
    return float(np.mean(v)), 0.0


def _read_candidates(
    candidates_path: Path, detections_path: Path, frames: _Frames
) -> tuple[list[_Candidate], list[tuple[str, str, float]]]:
    """The candidates with a row in a good frame, and every candidate's id, kind, score."""
    candidates = Table.read(candidates_path, format="ascii.ecsv")
    detections = Table.read(detections_path, format="ascii.ecsv")
    for name in ("id", "kind"):
        if name not in candidates.colnames:
            raise ValueError(f"{candidates_path}: no {name!r} column")
    for name in ("candidate_id", "frame", "x", "y"):
        if name not in detections.colnames:
            raise ValueError(f"{detections_path}: no {name!r} column")
    index = {name: k for k, name in enumerate(frames.files)}
    xs = _column(detections, "x_fit", math.nan) if "x_fit" in detections.colnames else None
    ys = _column(detections, "y_fit", math.nan) if "y_fit" in detections.colnames else None
    x_raw = np.asarray(detections["x"], dtype=np.float64)
    y_raw = np.asarray(detections["y"], dtype=np.float64)
    measured = (
        np.asarray(detections["measured"], dtype=bool)
        if "measured" in detections.colnames
        else np.ones(len(detections), dtype=bool)
    )
    ends = [_column(detections, name, math.nan) for name in ("x0", "y0", "x1", "y1")]
    rows_of: dict[str, list[int]] = {}
    for i, cid in enumerate(detections["candidate_id"]):
        rows_of.setdefault(str(cid), []).append(i)
    out = []
    listed = []
    for row in candidates:
        cid, kind = str(row["id"]), str(row["kind"])
        score = float(row["score"]) if "score" in candidates.colnames else math.nan
        listed.append((cid, kind, score))
        ks, fx, fy, det, streak_ends = [], [], [], {}, {}
        for i in rows_of.get(cid, []):
            k = index.get(str(detections["frame"][i]))
            if k is None:
                continue
            px = xs[i] if xs is not None and np.isfinite(xs[i]) else x_raw[i]
            py = ys[i] if ys is not None and np.isfinite(ys[i]) else y_raw[i]
            if not (np.isfinite(px) and np.isfinite(py)):
                continue
            ks.append(k)
            fx.append(px - frames.dx[k])
            fy.append(py - frames.dy[k])
            if measured[i] and np.isfinite(x_raw[i]) and np.isfinite(y_raw[i]):
                det[k] = (float(x_raw[i]), float(y_raw[i]))
            if all(np.isfinite(e[i]) for e in ends):
                streak_ends[k] = tuple(float(e[i]) for e in ends)
        if not ks:
            logger.warning("render: candidate %s has no row in a good frame; not drawn", cid)
            continue
        t = frames.t[np.asarray(ks)]
        t0 = float(np.mean(t))
        length = float(row["length_px"]) if "length_px" in candidates.colnames else 0.0
        if not math.isfinite(length) or length <= 0:
            length = max(
                (math.hypot(e[2] - e[0], e[3] - e[1]) for e in streak_ends.values()), default=0.0
            )
        out.append(
            _Candidate(
                id=cid,
                kind=kind,
                score=score,
                detected=det,
                ends=streak_ends,
                fit_x=_line(t, np.asarray(fx), t0),
                fit_y=_line(t, np.asarray(fy), t0),
                t0=t0,
                first=min(ks),
                last=max(ks),
                length_px=length,
            )
        )
    return out, listed


# --------------------------------------------------------------------------------------
# Views: which frames, which boxes


@dataclass
class _View:
    """One GIF: the frames it shows and the box cut from each."""

    candidate: _Candidate
    name: str  # "object" or "stars"
    frames: list[int]
    origins: list[tuple[int, int]]  # (x0, y0) of the box in each frame's pixels
    width: int  # box size in frame pixels (a multiple of binning)
    height: int
    binning: int
    crops: dict[int, NDArray[np.float16]] = field(default_factory=dict)


def _spread(indices: list[int], keep: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` of ``indices``, evenly spread, the ends and ``keep`` included."""
    if len(indices) <= limit:
        return indices
    picks = {indices[round(i * (len(indices) - 1) / (limit - 1))] for i in range(limit)}
    picks.update(k for k in keep if k in indices)
    return sorted(picks)


def _binning(width: int, height: int, settings: RenderSettings) -> int:
    return max(1, math.ceil(max(width, height) / settings.max_gif_px))


def _sized(size: float, binning: int) -> int:
    return max(binning, int(math.ceil(size / binning)) * binning)


def _views(cand: _Candidate, frames: _Frames, settings: RenderSettings) -> list[_View]:
    """The object-centric and the star-centric view of a candidate."""
    event = sorted(set(cand.detected) | set(cand.ends)) or [cand.first]
    if cand.kind in _SINGLE_FRAME_KINDS or cand.kind == "streak_track":
        first = max(0, cand.first - settings.context_frames)
        last = min(frames.n - 1, cand.last + settings.context_frames)
    else:
        first, last = cand.first, cand.last
    shown = _spread(list(range(first, last + 1)), event, settings.max_gif_frames)
    # A streak track's object view keeps to its own frames: before and after them the
    # fitted line runs far off (its rate is a streak's length per exposure).
    object_shown = shown
    if cand.kind == "streak_track":
        object_shown = [k for k in shown if cand.first <= k <= cand.last]
    path = [cand.position(frames, k) for k in range(cand.first, cand.last + 1)]

    # Object-centric: a square that follows the path.
    side = float(settings.object_crop_px)
    if cand.kind == "streak_track":
        side = max(side, cand.length_px + 2 * settings.margin_px)
    binning = _binning(int(side), int(side), settings)
    side_px = _sized(side, binning)
    object_origins = []
    for k in object_shown:
        x, y = cand.position(frames, k)
        object_origins.append((round(x - (side_px - 1) / 2.0), round(y - (side_px - 1) / 2.0)))
    views = [_View(cand, "object", object_shown, object_origins, side_px, side_px, binning)]

    # Star-centric: a fixed box (in the reference frame) over the whole path.
    xs = [p[0] - frames.dx[k] for p, k in zip(path, range(cand.first, cand.last + 1), strict=True)]
    ys = [p[1] - frames.dy[k] for p, k in zip(path, range(cand.first, cand.last + 1), strict=True)]
    for k, (x0, y0, x1, y1) in cand.ends.items():
        xs += [x0 - frames.dx[k], x1 - frames.dx[k]]
        ys += [y0 - frames.dy[k], y1 - frames.dy[k]]
    low_x, high_x = min(xs) - settings.margin_px, max(xs) + settings.margin_px
    low_y, high_y = min(ys) - settings.margin_px, max(ys) + settings.margin_px
    # At least the object crop; a flash's context is wider than its zoom.
    least = float(settings.object_crop_px) * (_CONTEXT_WIDEN if cand.kind == "anomaly" else 1)
    width = max(high_x - low_x, least)
    height = max(high_y - low_y, least)
    if frames.shape is not None:  # no wider than the frame (a satellite crossing it all)
        width = min(width, float(frames.shape[1]) + 2 * settings.margin_px)
        height = min(height, float(frames.shape[0]) + 2 * settings.margin_px)
    binning = _binning(int(math.ceil(width)), int(math.ceil(height)), settings)
    width_px, height_px = _sized(width, binning), _sized(height, binning)
    cx, cy = 0.5 * (low_x + high_x), 0.5 * (low_y + high_y)
    stars_origins = [
        (
            round(cx - (width_px - 1) / 2.0 + frames.dx[k]),
            round(cy - (height_px - 1) / 2.0 + frames.dy[k]),
        )
        for k in shown
    ]
    views.append(_View(cand, "stars", shown, stars_origins, width_px, height_px, binning))
    return views


def _reference_box(view: _View, frames: _Frames) -> list[float]:
    """``[x0, y0, width, height]`` of a fixed view's box in the reference frame's pixels."""
    k = view.frames[0]
    x0, y0 = view.origins[0]
    return [
        round(x0 - float(frames.dx[k]), 2),
        round(y0 - float(frames.dy[k]), 2),
        view.width,
        view.height,
    ]


def _cut(
    image: NDArray[np.float32], x0: int, y0: int, width: int, height: int
) -> NDArray[np.float32]:
    """The box ``[y0, y0 + height) x [x0, x0 + width)``; NaN outside the image."""
    out = np.full((height, width), np.nan, dtype=np.float32)
    ih, iw = image.shape
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(iw, x0 + width), min(ih, y0 + height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _cut_crop(image: NDArray[np.float32], view: _View, slot: int) -> NDArray[np.float16]:
    """One view's crop of a frame, less its median, binned, kept as float16 (half the
    memory: its 11-bit precision is far finer than the sky noise or the 32 grey levels)."""
    x0, y0 = view.origins[slot]
    crop = _cut(image, x0, y0, view.width, view.height)
    step = max(1, math.isqrt(crop.size // _MEDIAN_PIXELS))  # an even grid of a big crop
    grid = crop[::step, ::step]
    finite = grid[np.isfinite(grid)]
    if finite.size:
        crop -= np.float32(np.median(finite))
    if view.binning > 1:
        crop = _bin_nan(crop, view.binning)
    np.clip(crop, -_FLOAT16_LIMIT, _FLOAT16_LIMIT, out=crop)
    return crop.astype(np.float16)


def _bin_nan(image: NDArray[np.float32], factor: int) -> NDArray[np.float32]:
    """Mean of ``factor x factor`` blocks, NaN (off the image) counted as the sky (0)."""
    blank = ~np.isfinite(image)
    binned = bin_image(np.where(blank, np.float32(0), image), factor)
    if blank.any():
        fraction = bin_image(blank.astype(np.float32), factor)
        binned[fraction >= 0.5] = np.nan
    return binned


# --------------------------------------------------------------------------------------
# Stretch, palette and GIF


@dataclass(frozen=True)
class _Palette:
    """Grey levels in data units and their display greys, plus the marks' colours."""

    bounds: NDArray[np.float32]  # inner boundaries between levels (levels - 1 values)
    greys: NDArray[np.uint8]
    levels: int

    @property
    def detected(self) -> int:
        return self.levels

    @property
    def predicted(self) -> int:
        return self.levels + 1

    @property
    def text(self) -> int:
        return self.levels + 2

    @property
    def black(self) -> int:
        return self.levels + 3

    def flat(self) -> list[int]:
        colours = [(int(g), int(g), int(g)) for g in self.greys]
        colours += [_MARK_DETECTED, _MARK_PREDICTED, _MARK_TEXT, (0, 0, 0)]
        return [c for colour in colours for c in colour]

    def index(self, image: NDArray[np.float32]) -> NDArray[np.uint8]:
        idx = np.searchsorted(self.bounds, np.nan_to_num(image, nan=-np.inf)).astype(np.uint8)
        idx[~np.isfinite(image)] = 0
        return idx


def _noise(sample: NDArray[np.float32]) -> float:
    """Sigma-clipped normalised MAD around the median (the crops' sky is near 0)."""
    values = sample[np.isfinite(sample)]
    if values.size == 0:
        return 1.0
    centre = float(np.median(values))
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(values - centre)))
    for _ in range(3):
        if not sigma > 0:
            break
        kept = values[np.abs(values - centre) < 3.0 * sigma]
        if kept.size < 16:
            break
        centre = float(np.median(kept))
        sigma = _MAD_TO_SIGMA * float(np.median(np.abs(kept - centre)))
    return sigma if sigma > 0 else float(np.std(values)) or 1.0


def _stretch(
    sample: NDArray[np.float32],
    sky: float,
    sigma: float,
    settings: RenderSettings,
    percentile: float,
) -> Stretch:
    """Black ``black_sigma`` below the sky, white at ``percentile`` (at least
    ``white_min_sigma`` above the sky, at most the brightest pixel), and the asinh softening
    that shows the sky at ``sky_grey`` (the curve of :func:`spacepixels.convert.apply_stretch`)."""
    black = sky - settings.black_sigma * sigma
    top = float(np.max(sample)) if sample.size else sky + 1.0
    white = max(
        float(np.percentile(sample, percentile)), min(sky + settings.white_min_sigma * sigma, top)
    )
    if not white > black:
        white = black + max(abs(black), 1.0)
    sky_x = (sky - black) / (white - black)
    softening = 1e3
    if 0 < sky_x < settings.sky_grey:

        def grey_at(log_softening: float) -> float:
            s = math.exp(log_softening)
            return math.asinh(sky_x / s) / math.asinh(1.0 / s) - settings.sky_grey

        softening = math.exp(brentq(grey_at, math.log(1e-9), math.log(1e3)))
    return Stretch(kind="asinh", black=black, white=white, softening=softening)


def _geometric_ratio(levels: int, span: float) -> float:
    """The ratio ``g`` with ``1 + g + ... + g**(levels - 1) == span`` (1 when span <= levels)."""
    if span <= levels:
        return 1.0
    low, high = 1.0, 2.0
    while (high**levels - 1) / (high - 1) < span:
        high *= 2
    for _ in range(80):
        mid = 0.5 * (low + high)
        if (mid**levels - 1) / (mid - 1) < span:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _gif_palette(
    crops: Sequence[NDArray[np.float32]], settings: RenderSettings
) -> tuple[_Palette, Stretch]:
    """One stretch and one palette for all the crops of a GIF."""
    stacked = np.concatenate([c.ravel() for c in crops])
    step = max(1, stacked.size // _SAMPLE_PIXELS)
    sample = stacked[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        sample = np.zeros(16, dtype=np.float32)
    sigma = _noise(sample)
    sky = float(np.median(sample))
    stretch = _stretch(sample, sky, sigma, settings, settings.white_percentile)
    width = settings.level_sigma * sigma
    # The sky in the middle of a level, not on an edge between two (where the noise of
    # one frame against another would flip it from one grey to the next).
    below = math.ceil(settings.black_sigma / settings.level_sigma - 0.5) + 0.5
    black = sky - below * width
    white = stretch.white
    ratio = _geometric_ratio(settings.grey_levels, max(white - black, width) / width)
    widths = width * ratio ** np.arange(settings.grey_levels)
    edges = black + np.concatenate([[0.0], np.cumsum(widths)])
    centres = 0.5 * (edges[:-1] + edges[1:])
    centres[0] = black  # the lowest level is what lies below black: shown black
    greys = apply_stretch(centres.astype(np.float32), stretch)
    return _Palette(edges[1:-1].astype(np.float32), greys, settings.grey_levels), stretch


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _frame_label(frames: _Frames, k: int, font: Any) -> str:
    mjd = float(frames.mjd[k])
    when = mjd_to_iso(mjd)[11:19] + " UTC" if math.isfinite(mjd) else "no time"
    return _drawable(f"{frame_stem(frames.files[k])}  {when}", font)


def _drawable(text: str, font: Any) -> str:
    """``text`` as the font can draw it: Pillow's bitmap fallback font (without FreeType)
    knows Latin-1 only, so other characters of a file name become ``?``."""
    try:
        font.getbbox(text)
    except UnicodeEncodeError:
        return text.encode("latin-1", "replace").decode("latin-1")
    return text


def _dotted_circle(draw: Any, x: float, y: float, r: float, fill: int, width: int) -> None:
    for start in range(0, 360, 30):
        draw.arc((x - r, y - r, x + r, y + r), start, start + 15, fill=fill, width=width)


def _encode_view(view: _View, frames: _Frames, settings: RenderSettings) -> tuple[bytes, list[int]]:
    """The GIF of one view, and its size in display pixels."""
    import io

    from PIL import Image, ImageDraw

    crops = [view.crops[k].astype(np.float32) for k in view.frames]
    palette, _ = _gif_palette(crops, settings)
    h, w = crops[0].shape
    zoom = max(1, min(math.ceil(settings.min_gif_px / max(w, h)), settings.max_gif_px // max(w, h)))
    scale = zoom / view.binning  # display px per frame px
    font = _font(11 if max(w, h) * zoom >= 160 else 9)
    radius = max(6.0, settings.circle_fwhm * frames.fwhm * scale)
    line = 2 if zoom >= 2 else 1
    cand = view.candidate
    images = []
    for slot, k in enumerate(view.frames):
        idx = palette.index(crops[slot])
        if zoom > 1:
            idx = np.repeat(np.repeat(idx, zoom, axis=0), zoom, axis=1)
        image = Image.fromarray(idx, mode="P")
        image.putpalette(palette.flat())
        draw = ImageDraw.Draw(image)
        x0, y0 = view.origins[slot]

        def to_display(x: float, y: float, x0: int = x0, y0: int = y0) -> tuple[float, float]:
            return (x - x0 + 0.5) * scale - 0.5, (y - y0 + 0.5) * scale - 0.5

        if view.name == "stars" and cand.first <= k <= cand.last:
            if k in cand.ends:
                _mark_streak(draw, [to_display(*p) for p in _pairs(cand.ends[k])], palette, line)
            elif cand.kind not in _STREAK_KINDS:
                if k in cand.detected:
                    px, py = to_display(*cand.detected[k])
                    draw.ellipse(
                        (px - radius, py - radius, px + radius, py + radius),
                        outline=palette.detected,
                        width=line,
                    )
                else:
                    px, py = to_display(*cand.position(frames, k))
                    _dotted_circle(draw, px, py, radius, palette.predicted, line)
        elif view.name == "stars" and cand.kind == "anomaly":
            # Before and after the flash: where it will be, or was, dotted.
            px, py = to_display(*cand.position(frames, k))
            _dotted_circle(draw, px, py, radius, palette.predicted, line)
        elif view.name == "object":
            # Ticks at the middle of each edge point at the object, out of its light:
            # solid colour where it was detected, the fitted position's colour where not.
            colour = palette.detected if k in cand.detected else palette.predicted
            if cand.first <= k <= cand.last or k in cand.ends:
                _edge_ticks(draw, w * zoom, h * zoom, colour, line)
        label = _frame_label(frames, k, font)
        left, top, right, bottom = draw.textbbox((3, 2), label, font=font)
        draw.rectangle((0, 0, right + 3, bottom + 2), fill=palette.black)
        draw.text((3, 2), label, fill=palette.text, font=font)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=settings.frame_duration_ms,
        loop=0,
        optimize=False,
        disposal=1,
    )
    return buffer.getvalue(), [w * zoom, h * zoom]


def _edge_ticks(draw: Any, width: int, height: int, colour: int, line: int) -> None:
    tick = max(5, min(width, height) // 16)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    draw.line((cx, height - 1, cx, height - 1 - tick), fill=colour, width=line)
    draw.line((0, cy, tick, cy), fill=colour, width=line)
    draw.line((width - 1, cy, width - 1 - tick, cy), fill=colour, width=line)


def _pairs(ends: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    return [(ends[0], ends[1]), (ends[2], ends[3])]


def _mark_streak(draw: Any, ends: list[tuple[float, float]], palette: _Palette, line: int) -> None:
    """Short ticks beyond each end of a streak, on its line, clear of its light."""
    (ax, ay), (bx, by) = ends
    length = math.hypot(bx - ax, by - ay)
    if length == 0:
        return
    ux, uy = (bx - ax) / length, (by - ay) / length
    gap, tick = 6.0, 10.0
    for (ex, ey), sign in (((ax, ay), -1.0), ((bx, by), 1.0)):
        sx, sy = ex + sign * ux * gap, ey + sign * uy * gap
        draw.line(
            (sx, sy, sx + sign * ux * tick, sy + sign * uy * tick),
            fill=palette.detected,
            width=line,
        )


# --------------------------------------------------------------------------------------
# Overviews


def _overview_base(
    stack: NDArray[np.float32], settings: RenderSettings
) -> tuple[NDArray[np.uint8], int]:
    """The stack stretched to 8-bit grey and binned to fit ``overview_max_px``."""
    factor = max(1, math.ceil(max(stack.shape) / settings.overview_max_px))
    finite = np.isfinite(stack)
    image = bin_image(np.where(finite, stack, np.float32(0)), factor)
    step = max(1, math.isqrt(image.size // _SAMPLE_PIXELS))
    sample = image[::step, ::step].ravel()
    sigma = _noise(sample)
    stretch = _stretch(sample, float(np.median(sample)), sigma, settings, _OVERVIEW_PERCENTILE)
    return apply_stretch(image, stretch), factor


def _label(
    draw: Any, xy: tuple[float, float], text: str, colour: tuple[int, int, int], font: Any
) -> None:
    text = _drawable(text, font)
    draw.text(xy, text, fill=colour, font=font, stroke_width=2, stroke_fill=(0, 0, 0))


def _legend(draw: Any, entries: list[tuple[str, tuple[int, int, int]]], font: Any) -> None:
    """The legend under the title, on a dark box."""
    y = 26
    right = max(draw.textbbox((24, 0), _drawable(text, font), font=font)[2] for text, _ in entries)
    draw.rectangle((4, y - 2, right + 6, y + 16 * len(entries) + 2), fill=(0, 0, 0))
    for text, colour in entries:
        draw.rectangle((8, y + 3, 18, y + 13), fill=colour)
        _label(draw, (24, y), text, colour, font)
        y += 16


def _overview_png(
    grey: NDArray[np.uint8],
    factor: int,
    candidates: Sequence[_Candidate],
    frames: _Frames,
    title: str,
) -> bytes:
    import io

    from PIL import Image, ImageDraw

    image = Image.fromarray(grey, mode="L").convert("RGB")
    draw = ImageDraw.Draw(image)
    font = _font(13)

    def to_display(x: float, y: float) -> tuple[float, float]:
        return (x + 0.5) / factor - 0.5, (y + 0.5) / factor - 0.5

    counts: dict[str, int] = {}
    for cand in candidates:
        colour = KIND_COLOURS.get(cand.kind, _OTHER_KIND_COLOUR)
        counts[cand.kind] = counts.get(cand.kind, 0) + 1
        anchor: tuple[float, float]
        if cand.kind in _STREAK_KINDS and cand.ends:
            for k, ends in sorted(cand.ends.items()):
                a = to_display(ends[0] - frames.dx[k], ends[1] - frames.dy[k])
                b = to_display(ends[2] - frames.dx[k], ends[3] - frames.dy[k])
                draw.line((*a, *b), fill=colour, width=2)
            k = min(cand.ends)
            anchor = to_display(cand.ends[k][0] - frames.dx[k], cand.ends[k][1] - frames.dy[k])
        elif cand.kind == "anomaly" or cand.first == cand.last:
            x, y = to_display(cand.fit_x[0], cand.fit_y[0])
            draw.ellipse((x - 9, y - 9, x + 9, y + 9), outline=colour, width=2)
            anchor = (x + 7, y + 7)
        else:
            lag0 = float(frames.t[cand.first]) - cand.t0
            lag1 = float(frames.t[cand.last]) - cand.t0
            a = to_display(
                cand.fit_x[0] + cand.fit_x[1] * lag0, cand.fit_y[0] + cand.fit_y[1] * lag0
            )
            b = to_display(
                cand.fit_x[0] + cand.fit_x[1] * lag1, cand.fit_y[0] + cand.fit_y[1] * lag1
            )
            draw.line((*a, *b), fill=colour, width=2)
            draw.ellipse((a[0] - 3, a[1] - 3, a[0] + 3, a[1] + 3), fill=colour)
            # An arrowhead at the end says which way it went.
            angle = math.atan2(b[1] - a[1], b[0] - a[0])
            head = [
                b,
                (b[0] - 8 * math.cos(angle - 0.45), b[1] - 8 * math.sin(angle - 0.45)),
                (b[0] - 8 * math.cos(angle + 0.45), b[1] - 8 * math.sin(angle + 0.45)),
            ]
            draw.polygon(head, fill=colour)
            anchor = (a[0] + 6, a[1] + 4)
        x = min(max(anchor[0], 2), image.width - 50)
        y = min(max(anchor[1], 2), image.height - 16)
        _label(draw, (x, y), cand.id, colour, font)
    total = len(candidates)
    _label(draw, (8, 6), f"{title}: {total} candidate{'s' * (total != 1)}", _MARK_TEXT, font)
    entries = [
        (f"{kind} ({counts[kind]})", KIND_COLOURS.get(kind, _OTHER_KIND_COLOUR)) for kind in counts
    ]
    if entries:
        _legend(draw, entries, font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _masks_png(
    grey: NDArray[np.uint8],
    factor: int,
    stationary: NDArray[Any] | None,
    defects: NDArray[Any] | None,
    title: str,
) -> bytes:
    import io

    from PIL import Image, ImageDraw

    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)
    h, w = grey.shape
    notes = []
    if stationary is not None:
        covered = bin_image((np.asarray(stationary) > 0).astype(np.float32), factor)[:h, :w] > 0
        tint = np.array([40, 120, 255], dtype=np.float32)
        rgb[covered] = 0.55 * rgb[covered] + 0.45 * tint
        notes.append((f"stationary mask ({100 * covered.mean():.1f} % of pixels)", (40, 120, 255)))
    image = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    font = _font(13)
    if defects is not None:
        defects = np.asarray(defects).astype(np.int64)
        hot_y, hot_x = np.nonzero(defects & 1)
        columns = [c for c in range(defects.shape[1]) if (defects[:, c] & 2).any()]
        for x, y in zip(hot_x, hot_y, strict=True):
            dx, dy = (x + 0.5) / factor - 0.5, (y + 0.5) / factor - 0.5
            draw.ellipse((dx - 3, dy - 3, dx + 3, dy + 3), outline=(255, 60, 60), width=1)
        for c in columns:
            dx = (c + 0.5) / factor - 0.5
            draw.line((dx, 0, dx, h), fill=(255, 60, 60), width=1)
        notes.append(
            (f"defects: {hot_x.size} hot pixels, {len(columns)} bad columns", (255, 60, 60))
        )
    _label(draw, (8, 6), f"{title}: masks", _MARK_TEXT, font)
    if notes:
        _legend(draw, notes, font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# The stage


def _write_bytes(path: Path, payload: bytes) -> None:
    def write(temporary: Path) -> None:
        temporary.write_bytes(payload)

    write_atomically(path, write)


def render_session(
    session_id: str,
    session_folder: str | os.PathLike[str],
    frames_table: str | os.PathLike[str],
    candidates_path: str | os.PathLike[str],
    detections_path: str | os.PathLike[str],
    sky_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: RenderSettings,
) -> dict[str, Any]:
    """Write a session's GIFs, overviews and ``render.json``.

    Parameters
    ----------
    session_id : str
        The session's id, written in the overviews and the manifest.
    session_folder : path-like
        The folder of the session's frames.
    frames_table : path-like
        The check's ``frames.ecsv`` (``file``, ``status``, ``mjd_mid``, ``dx``, ``dy``,
        ``fwhm``, ``width``, ``height`` are used; only ``file`` and ``status`` are needed).
    candidates_path, detections_path : path-like
        The session's public ``candidates.ecsv`` and ``detections.ecsv``.
    sky_dir : path-like
        The sky model's folder (``stack.fits``, ``stationary_mask.fits``, ``defects.fits``).
    out_dir : path-like
        The render folder (created if missing). Files of an earlier run that this one does
        not write are removed.
    settings : RenderSettings

    Returns
    -------
    dict
        What ``render.json`` holds: ``version``, ``session``, ``frames_read`` (frame reads,
        each good frame a view needs read once), ``seconds`` (the whole stage),
        ``read_seconds``, ``overview`` and ``masks`` (PNG names), ``settings``, and
        ``candidates``: one entry per row of ``candidates.ecsv`` that has a row in a good
        frame, in its order, with ``id``, ``kind``, ``score``, ``gifs`` (``object`` and
        ``stars``, plus ``context`` for an anomaly and ``streak`` for the streak kinds,
        naming the same file as ``stars``), ``bytes`` (size of each file), ``frames``
        (the frames shown), ``n_gif_frames``, ``crop_px`` (``[width, height]`` of the
        object crop in frame pixels), ``stars_crop_px``, ``gif_px`` (display size of each
        GIF), ``binning`` (frame pixels per GIF pixel of each GIF) and ``seconds`` (time
        to cut and encode its GIFs; the reading is shared).

    Raises
    ------
    ValueError
        When an input table lacks a needed column (the message names the file).
    spacepixels.frames.FrameReadError
        When a frame cannot be read (the message names it).
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(session_folder)
    frames = _read_frames_table(Path(frames_table))
    candidates, listed = _read_candidates(Path(candidates_path), Path(detections_path), frames)

    views = [view for cand in candidates for view in _views(cand, frames, settings)]
    needed: dict[int, list[tuple[_View, int]]] = {}
    for view in views:
        for slot, k in enumerate(view.frames):
            needed.setdefault(k, []).append((view, slot))

    # Every frame once: cut every view's crop from it as it is read.
    read_started = time.perf_counter()
    cut_seconds: dict[str, float] = {}
    for k in sorted(needed):
        image = read_frame(folder / frames.files[k]).data
        for view, slot in needed[k]:
            tick = time.perf_counter()
            view.crops[k] = _cut_crop(image, view, slot)
            cid = view.candidate.id
            cut_seconds[cid] = cut_seconds.get(cid, 0.0) + time.perf_counter() - tick
        del image
    read_seconds = time.perf_counter() - read_started - sum(cut_seconds.values())
    held = sum(crop.nbytes for view in views for crop in view.crops.values())
    logger.info(
        "render: read %d frame(s) once for %d view(s); %.1f MB of crops held",
        len(needed),
        len(views),
        held / 1e6,
    )

    entries: dict[str, dict[str, Any]] = {}
    written: set[str] = set()
    by_candidate: dict[str, list[_View]] = {}
    for view in views:
        by_candidate.setdefault(view.candidate.id, []).append(view)
    for cand in candidates:
        tick = time.perf_counter()
        gifs, sizes, gif_px, binning = {}, {}, {}, {}
        for view in by_candidate[cand.id]:
            name = f"{cand.id}_{view.name}.gif"
            payload, display = _encode_view(view, frames, settings)
            _write_bytes(out / name, payload)
            view.crops.clear()
            written.add(name)
            gifs[view.name] = name
            sizes[name] = len(payload)
            gif_px[name] = display
            binning[name] = view.binning
        if cand.kind == "anomaly":
            gifs["context"] = gifs["stars"]
        if cand.kind in _STREAK_KINDS:
            gifs["streak"] = gifs["stars"]
        object_view, stars_view = by_candidate[cand.id]
        seconds = time.perf_counter() - tick + cut_seconds.get(cand.id, 0.0)
        entries[cand.id] = {
            "id": cand.id,
            "kind": cand.kind,
            "score": cand.score,
            "gifs": gifs,
            "bytes": sizes,
            "frames": [frames.files[k] for k in object_view.frames],
            "n_gif_frames": len(object_view.frames),
            "crop_px": [object_view.width, object_view.height],
            "stars_crop_px": [stars_view.width, stars_view.height],
            "stars_box": _reference_box(stars_view, frames),
            "gif_px": gif_px,
            "binning": binning,
            "seconds": round(seconds, 4),
        }
        logger.info(
            "render: %s (%s): %d frame(s), %s in %.2f s",
            cand.id,
            cand.kind,
            len(object_view.frames),
            ", ".join(f"{n} {s / 1024:.0f} KB" for n, s in sizes.items()),
            seconds,
        )

    rendered = list(entries.values())
    ordered = [
        entries.get(cid)
        or {
            "id": cid,
            "kind": kind,
            "score": score,
            "gifs": {},
            "bytes": {},
            "frames": [],
            "n_gif_frames": 0,
            "note": "no detection in a good frame: nothing to show",
        }
        for cid, kind, score in listed
    ]
    sky = Path(sky_dir)
    stack = read_image(sky / "stack.fits")
    if stack is None:
        raise ValueError(f"{sky / 'stack.fits'}: missing or without an image")
    grey, factor = _overview_base(np.asarray(stack, dtype=np.float32), settings)
    _write_bytes(out / "overview.png", _overview_png(grey, factor, candidates, frames, session_id))
    stationary = read_image(sky / "stationary_mask.fits")
    defects = read_image(sky / "defects.fits")
    _write_bytes(out / "masks.png", _masks_png(grey, factor, stationary, defects, session_id))
    written.update({"overview.png", "masks.png", MANIFEST_NAME})

    for stale in out.iterdir():
        if stale.is_file() and stale.suffix in (".gif", ".png") and stale.name not in written:
            stale.unlink()
    manifest = {
        "version": RENDER_FILE_VERSION,
        "session": session_id,
        "frames_read": len(needed),
        "seconds": round(time.perf_counter() - started, 3),
        "read_seconds": round(read_seconds, 3),
        "overview": "overview.png",
        "masks": "masks.png",
        "overview_binning": factor,
        "settings": settings.to_dict(),
        "candidates": ordered,
    }
    text = json.dumps(jsonable(manifest), indent=1) + "\n"
    _write_bytes(out / MANIFEST_NAME, text.encode())
    logger.info(
        "render: %d candidate(s), %d frame(s) read, %.1f s",
        len(rendered),
        len(needed),
        manifest["seconds"],
    )
    return manifest
