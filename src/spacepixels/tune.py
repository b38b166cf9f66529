"""Tune: measure the session's seeing, jitter and noise, and choose the detection settings.

Detection works best when its settings follow the night: the matched filter wants the
seeing's FWHM, the background mesh must be larger than the stars, and the linker's
tolerances follow how far a star's position wanders from frame to frame. This stage
measures those on a few good frames and writes ``tune/settings.yaml``, every chosen value
with the measurement it came from. A value set explicitly in the configuration (not null)
wins over the tuned one (:func:`resolve`).

What is measured, on ``sample_frames`` good frames spread evenly through the session
(at most ``max_window_px`` square from the centre of each, which holds stars enough and
keeps the cost bounded on large sensors):

- sky ``background_adu`` and per-pixel ``noise_adu``: sep's background map and its RMS;
- the stars: sep detections at ``star_sigma`` of a matched filter. Of those that are
  clean (not merged, not at an edge), unsaturated, bright (peak S/N >= ``star_min_snr``)
  and isolated (no other detection within four FWHM), the brightest ``max_stars`` per
  frame are fitted with an elliptical Moffat profile ``A (1 + Q)^-beta + B`` (all of
  ``beta``, the ellipse ``Q``, centre, amplitude and sky free; a batched
  Levenberg-Marquardt fit). ``fwhm_px`` is the median over those stars of the profile's
  FWHM (geometric mean of its two axes, the definition the synthetic truth uses), and
  ``elongation`` the median ratio of the long to the short axis;
- ``jitter_px``: stars are matched between the sample frames; each frame's mean offset
  from the first gives its alignment error, and the jitter is the RMS per axis of those
  offsets about their mean. When the check measured offsets on more frames than the
  sample (``dx``, ``dy`` of ``check/frames.ecsv``), their RMS about the median over all
  good frames is used instead, as it rests on many more frames. ``centroid_scatter_px``
  is what remains once each frame's offset is removed: the RMS per axis of bright stars'
  positions about their mean, the noise of a good centroid;
- the stars' ``sharpness`` (:mod:`spacepixels.extract`) and elongation distribution,
  which set the cosmic-ray and streak limits of the linker.

What is chosen, per profile (``conservative`` fewer false alarms, ``balanced`` the
default, ``aggressive`` fainter objects), is in :data:`EXTRACT_KEYS` and
:data:`LINK_KEYS`, each with the measurement it follows. The profiles' constants were
measured on seeded synthetic sessions (the tests and ``benchmarks/detection_quality.py``):
at the balanced 4-sigma matched filter, away from stars, extraction finds point sources
of per-frame peak S/N 5 within half a pixel in 95-100 % of their frames and of peak S/N
3 within a pixel in about 90 %, with 1-5 noise detections per megapixel per frame;
lowering the threshold to 3.5 finds hardly more and makes several times as many noise
detections, which is why the aggressive profile stops there.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray

from spacepixels.extract import (
    FLAG_SATURATED,
    SIGMA_TO_FWHM,
    ExtractSettings,
    _extract_frame,
    single_pixel_sharpness,
)
from spacepixels.frames import read_frame
from spacepixels.pool import STAR_MODULES, frame_pool
from spacepixels.settings import section_values

__all__ = [
    "EXTRACT_KEYS",
    "LINK_KEYS",
    "PROFILES",
    "TuneSettings",
    "read_tuned",
    "resolve",
    "tune_session",
    "write_tuned",
]

logger = logging.getLogger(__name__)

PROFILES: tuple[str, ...] = ("conservative", "balanced", "aggressive")
"""Names of the tuning profiles, from the fewest false alarms to the faintest objects."""

EXTRACT_KEYS: dict[str, str] = {
    "detect_sigma": "detection threshold, in sigmas of the matched filter's noise "
    "(conservative 5, balanced 4, aggressive 3.5)",
    "min_area": "fewest connected pixels above the threshold in the filtered frame",
    "kernel_fwhm_px": "FWHM (px) of the Gaussian matched filter: the measured seeing",
    "background_mesh_px": "size (px) of sep's background meshes: several FWHM and larger "
    "than the biggest stars",
    "deblend_nthresh": "sep's deblending levels",
    "deblend_cont": "sep's minimum deblending contrast",
    "aperture_radius_px": "radius (px) of the flux aperture: 0.8 FWHM",
    "clean": "whether sep drops detections a brighter neighbour's wings could explain "
    "(conservative only)",
    "subtract_reference": "whether each frame is searched minus the sky model's median stack "
    "(from 8 good frames)",
    "reference_jitter_px": "stars' wander (px) left after fitting the reference to a frame, "
    "in the difference image's noise",
}
"""The keys tuned for the ``extract:`` section (see :class:`~spacepixels.extract.ExtractSettings`).
"""

LINK_KEYS: dict[str, str] = {
    "match_radius_px": "largest distance (px) between a track's predicted position and a "
    "detection that joins it: from the jitter and the FWHM",
    "stationary_radius_px": "sources whose detections all lie within this distance (px) of "
    "their mean position do not move (stars, defects)",
    "max_rate_px_per_frame": "fastest point mover searched (px per frame at the session's "
    "cadence); faster ones trail into streaks",
    "min_points": "fewest detections of a point track, adapted to the number of good frames",
    "max_gap_frames": "most consecutive frames a track may miss and still continue",
    "cosmic_ray_sharpness": "detections sharper than this are cosmic-ray hits or hot "
    "pixels, not objects (stars are about 1)",
    "streak_min_elongation": "detections at least this elongated are streaks (a / b)",
    "streak_line_tolerance_px": "largest distance (px) of a streak piece from the line of "
    "the streak it joins",
    "streak_join_gap_px": "largest gap (px) between pieces of one trail that extraction split",
    "flash_min_snr": "a one-frame point source needs at least this aperture S/N to be a flash",
    "slow_min_motion_px": "least motion (px) over the session for a slow mover found by "
    "comparing the early and late stacks",
}
"""The keys tuned for the ``link:`` section, with their meaning (the linker reads these)."""

_MAD_TO_SIGMA = 1.482602218505602


@dataclass(frozen=True)
class _Profile:
    """The choices of one profile (multipliers of the measurements)."""

    detect_sigma: float
    min_area_fraction: float
    deblend_nthresh: int
    deblend_cont: float
    match_jitter: float
    match_fwhm: float
    min_points_fraction: float
    min_points_range: tuple[int, int]
    max_gap_frames: int
    cosmic_ray_position: float
    flash_snr_factor: float
    slow_motion_fwhm: float
    clean: bool


_PROFILES: dict[str, _Profile] = {
    "conservative": _Profile(
        5.0, 0.7, 8, 0.005, 2.5, 0.4, 0.35, (4, 8), 2, 0.2, 3.0, 0.75, clean=True
    ),
    "balanced": _Profile(
        4.0, 0.6, 16, 0.005, 3.0, 0.5, 0.25, (3, 6), 3, 0.3, 2.5, 0.5, clean=False
    ),
    "aggressive": _Profile(
        3.5, 0.5, 16, 0.002, 3.5, 0.6, 0.2, (3, 5), 4, 0.45, 2.0, 0.4, clean=False
    ),
}
"""Per profile: matched-filter threshold; min area as a fraction of the FWHM disc; deblending;
match radius as jitter and FWHM multiples; min points as a fraction of the good frames
(within a range); frames a track may miss; where the cosmic-ray limit sits between the
stars' sharpness and a single pixel's (0 at the stars, 1 at the pixel, in log);
flash S/N as a multiple of the threshold; slow-mover motion in FWHM; sep's cleaning."""


@dataclass(frozen=True)
class TuneSettings:
    """The ``tune:`` section of the configuration.

    Attributes
    ----------
    profile : {"conservative", "balanced", "aggressive"}
        Trade of completeness against false alarms (default ``"balanced"``).
    sample_frames : int
        Good frames, spread evenly through the session, that are measured (default 5).
    max_window_px : int
        Each sample frame is measured on at most this many pixels square around its centre
        (default 2048).
    max_stars : int
        Stars fitted per sample frame, the brightest isolated unsaturated ones (default 40).
    star_sigma : float
        Detection threshold (matched-filter sigmas) for the stars that are measured
        (default 5).
    star_min_snr : float
        Least peak S/N of a star whose profile is fitted (default 20).
    """

    profile: str = "balanced"
    sample_frames: int = 5
    max_window_px: int = 2048
    max_stars: int = 40
    star_sigma: float = 5.0
    star_min_snr: float = 20.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.profile not in PROFILES:
            problems.append(f"profile must be one of {', '.join(PROFILES)}, not {self.profile!r}")
        for name, low in (("sample_frames", 1), ("max_window_px", 64), ("max_stars", 3)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                problems.append(f"{name} must be a whole number >= {low}, not {value!r}")
        for name in ("star_sigma", "star_min_snr"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                problems.append(f"{name} must be a positive number, not {value!r}")
        if problems:
            raise ValueError("tune settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> TuneSettings:
        """Settings from the merged ``tune:`` section of the configuration.

        Parameters
        ----------
        values : mapping or None
            Keys as the attribute names; missing or null keys take their defaults.

        Returns
        -------
        TuneSettings

        Raises
        ------
        ValueError
            For a key that is not a setting (named in the message), or a value out of range.
        """
        return cls(**section_values(cls, values, "tune"))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping."""
        return asdict(self)


# --------------------------------------------------------------------------- Moffat fits


def _moffat_fit(
    stamps: NDArray[np.float64], fwhm_guess: float, iterations: int = 40
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Fit ``A (1 + Q)^-beta + B`` to each stamp by a batched Levenberg-Marquardt.

    ``Q = cxx dx^2 + cyy dy^2 + cxy dx dy`` with ``dx``, ``dy`` from the centre
    ``(x0, y0)``, the profile sampled at pixel centres.

    Parameters
    ----------
    stamps : ndarray, shape (n, s, s)
        Background-subtracted cut-outs centred (to a pixel) on each star.
    fwhm_guess : float
        Starting FWHM (px).
    iterations : int
        Steps of the fit.

    Returns
    -------
    params : ndarray, shape (n, 8)
        ``A, x0, y0, cxx, cyy, cxy, beta, B`` (centre relative to the stamp's centre).
    ok : ndarray of bool, shape (n,)
        Whether the fit converged to a sensible profile.
    """
    n, s, _ = stamps.shape
    half = s // 2
    grid = np.arange(s, dtype=np.float64) - half
    gx = np.broadcast_to(grid[None, :], (s, s)).ravel()
    gy = np.broadcast_to(grid[:, None], (s, s)).ravel()
    data = stamps.reshape(n, -1)
    beta0 = 3.0
    alpha0 = fwhm_guess / (2.0 * math.sqrt(2.0 ** (1.0 / beta0) - 1.0))
    params = np.zeros((n, 8))
    params[:, 0] = np.maximum(data.max(axis=1), 1e-6)
    params[:, 3] = params[:, 4] = 1.0 / alpha0**2
    params[:, 6] = beta0

    def model(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        amp, x0, y0, cxx, cyy, cxy, beta, sky = (p[:, i : i + 1] for i in range(8))
        dx = gx[None, :] - x0
        dy = gy[None, :] - y0
        q = cxx * dx * dx + cyy * dy * dy + cxy * dx * dy
        one_q = 1.0 + np.maximum(q, -0.999)
        m = one_q**-beta
        value = amp * m + sky
        dq = -beta * amp * m / one_q
        jac = np.stack(
            [
                m,
                -dq * (2.0 * cxx * dx + cxy * dy),
                -dq * (2.0 * cyy * dy + cxy * dx),
                dq * dx * dx,
                dq * dy * dy,
                dq * dx * dy,
                -amp * m * np.log(one_q),
                np.ones_like(m),
            ],
            axis=2,
        )
        return value, jac

    def valid(p: NDArray[np.float64]) -> NDArray[np.bool_]:
        cxx, cyy, cxy, beta = p[:, 3], p[:, 4], p[:, 5], p[:, 6]
        return (
            np.isfinite(p).all(axis=1)
            & (p[:, 0] > 0)
            & (cxx > 0)
            & (cyy > 0)
            & (4.0 * cxx * cyy > cxy * cxy)
            & (beta > 1.05)
            & (beta < 25.0)
            & (np.abs(p[:, 1]) < half / 2)
            & (np.abs(p[:, 2]) < half / 2)
        )

    value, jac = model(params)
    resid = data - value
    cost = (resid**2).sum(axis=1)
    damping = np.full(n, 1e-2)
    eye = np.eye(8)
    for _ in range(iterations):
        jtj = np.einsum("npi,npj->nij", jac, jac)
        jtr = np.einsum("npi,np->ni", jac, resid)
        scale = np.maximum(np.einsum("nii->ni", jtj), 1e-30)
        lhs = jtj + damping[:, None, None] * scale[:, :, None] * eye[None]
        try:
            step = np.linalg.solve(lhs, jtr[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(jtr)
            for i in range(n):
                try:
                    step[i] = np.linalg.solve(lhs[i], jtr[i])
                except np.linalg.LinAlgError:
                    pass
        trial = params + step
        ok = valid(trial)
        trial_value, trial_jac = model(np.where(ok[:, None], trial, params))
        trial_resid = data - trial_value
        trial_cost = (trial_resid**2).sum(axis=1)
        better = ok & (trial_cost < cost)
        params = np.where(better[:, None], trial, params)
        resid = np.where(better[:, None], trial_resid, resid)
        jac = np.where(better[:, None, None], trial_jac, jac)
        cost = np.where(better, trial_cost, cost)
        damping = np.where(better, np.maximum(damping / 3.0, 1e-7), np.minimum(damping * 4.0, 1e7))
    return params, valid(params)


def _moffat_shape(params: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FWHM (geometric mean of the axes) and elongation (long over short) of fitted profiles."""
    cxx, cyy, cxy, beta = params[:, 3], params[:, 4], params[:, 5], params[:, 6]
    mean = 0.5 * (cxx + cyy)
    diff = np.sqrt(0.25 * (cxx - cyy) ** 2 + 0.25 * cxy * cxy)
    big = mean + diff  # 1 / alpha_minor^2
    small = np.maximum(mean - diff, 1e-12)  # 1 / alpha_major^2
    scale = 2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0)
    fwhm = scale / (big * small) ** 0.25
    return fwhm, np.sqrt(big / small)


# --------------------------------------------------------------------------- one frame


@dataclass
class _Sample:
    """What is measured on one sample frame."""

    file: str
    background: float
    noise: float
    fwhm: NDArray[np.float64]
    elongation: NDArray[np.float64]
    star_xy: NDArray[np.float64]
    sizes: NDArray[np.float64]
    image: NDArray[np.float32]
    stars: dict[str, NDArray[Any]]


def _window(data: NDArray[np.float32], size: int) -> tuple[NDArray[np.float32], int, int]:
    """The central ``size`` x ``size`` (at most) of a frame, and its offset (x0, y0)."""
    h, w = data.shape
    y0 = max(0, (h - size) // 2)
    x0 = max(0, (w - size) // 2)
    return np.ascontiguousarray(data[y0 : y0 + size, x0 : x0 + size]), x0, y0


def _probe(fwhm: float, sigma: float) -> ExtractSettings:
    """Extraction settings for measuring stars at a given FWHM."""
    return ExtractSettings(
        detect_sigma=sigma,
        min_area=5,
        kernel_fwhm_px=round(fwhm, 3),
        background_mesh_px=64,
        deblend_nthresh=16,
        deblend_cont=0.005,
        aperture_radius_px=round(max(1.5, 0.8 * fwhm), 3),
    )


def _measure_frame(path: Path, settings: TuneSettings, fwhm_guess: float) -> _Sample:
    """Sky, noise, detections and fitted star profiles of one sample frame.

    One extraction (as :mod:`spacepixels.extract` does it, at ``star_sigma`` with the
    guessed FWHM) finds the sources; the brightest isolated unsaturated ones are fitted.
    """
    from scipy.spatial import cKDTree

    frame = read_frame(path)
    image, x_off, y_off = _window(frame.data, settings.max_window_px)
    saturation = float(frame.saturation_adu)
    del frame
    columns, info, image, back, _ = _extract_frame(
        image, _probe(fwhm_guess, settings.star_sigma), saturation, in_place=True
    )
    del back
    empty = np.empty(0)
    sample = _Sample(
        path.name,
        float(info["sky_adu"]),
        float(info["noise_adu"]),
        empty,
        empty,
        np.empty((0, 2)),
        empty,
        image,
        {},
    )
    h, w = image.shape
    x, y = columns["x"], columns["y"]
    if len(x) < 3:
        return sample
    sample.sizes = 2.0 * np.sqrt(columns["npix"] / math.pi)
    half = max(5, int(math.ceil(2.5 * fwhm_guess)))
    xy = np.stack([x, y], axis=1)
    dist, _ = cKDTree(xy).query(xy, k=2)
    isolated = dist[:, 1] > max(4.0 * fwhm_guess, half + 2)
    clean = (columns["flags"] & (0xFF | FLAG_SATURATED)) == 0
    inside = (x > half + 1) & (x < w - half - 2) & (y > half + 1) & (y < h - half - 2)
    bright = columns["peak_snr"] >= settings.star_min_snr
    star = clean & bright & (columns["npix"] >= 15)
    sample.stars = {
        key: columns[key][star] for key in ("x", "y", "peak", "elongation", "sharpness")
    }
    use = np.flatnonzero(isolated & clean & inside & bright)
    use = use[np.argsort(-columns["peak"][use])][: settings.max_stars]
    if len(use) == 0:
        return sample
    ix = np.rint(x[use]).astype(np.intp)
    iy = np.rint(y[use]).astype(np.intp)
    offs = np.arange(-half, half + 1)
    stamps = image[iy[:, None, None] + offs[None, :, None], ix[:, None, None] + offs[None, None, :]]
    params, ok = _moffat_fit(stamps.astype(np.float64), fwhm_guess)
    fwhm, elongation = _moffat_shape(params)
    ok &= np.isfinite(fwhm) & (fwhm > 0.5) & (fwhm < 4.0 * half)
    sample.fwhm = fwhm[ok]
    sample.elongation = elongation[ok]
    sample.star_xy = np.stack(
        [ix[ok] + params[ok, 1] + x_off, iy[ok] + params[ok, 2] + y_off], axis=1
    )
    return sample


def _star_sharpness(sample: _Sample, fwhm: float) -> NDArray[np.float64]:
    """The sharpness of a sample's bright stars as extraction at ``fwhm`` measures it."""
    import sep

    stars = sample.stars
    if not stars or len(stars["x"]) == 0:
        return np.empty(0)
    radius = round(max(1.5, 0.8 * fwhm), 3)
    flux, _, _ = sep.sum_circle(sample.image, stars["x"], stars["y"], radius, subpix=5)
    peak = stars["peak"]
    return peak / np.maximum(flux, peak) * single_pixel_sharpness(fwhm, radius)


# --------------------------------------------------------------------------- session


def _sample_indices(count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` indices spread evenly over ``range(count)``, ends included."""
    if wanted >= count:
        return list(range(count))
    if wanted == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _good_rows(frames_table: Table | None) -> Table | None:
    if frames_table is None or len(frames_table) == 0:
        return None
    if "status" in frames_table.colnames:
        return frames_table[np.asarray(frames_table["status"]) == "ok"]
    return frames_table


def _column(table: Table | None, name: str) -> NDArray[np.float64]:
    if table is None or name not in table.colnames:
        return np.empty(0)
    values = np.asarray(table[name], dtype=np.float64)
    return values[np.isfinite(values)]


def _jitter_from_stars(
    samples: list[_Sample], radius: float
) -> tuple[float, float, int, list[tuple[float, float]]]:
    """Jitter and centroid scatter from stars matched between the sample frames.

    Returns ``(jitter, scatter, matched stars, offsets)``: the RMS per axis of the frames'
    offsets from their mean, the RMS per axis of matched stars about their mean position
    once each frame's offset is removed, the number of stars matched in every frame, and
    each frame's offset.
    """
    from scipy.spatial import cKDTree

    frames = [s for s in samples if len(s.star_xy) >= 3]
    if len(frames) < 2:
        return math.nan, math.nan, 0, []
    reference = frames[0].star_xy
    positions = np.full((len(frames), len(reference), 2), np.nan)
    positions[0] = reference
    for k, sample in enumerate(frames[1:], start=1):
        tree = cKDTree(sample.star_xy)
        dist, idx = tree.query(reference, k=1, distance_upper_bound=radius)
        found = np.isfinite(dist)
        positions[k, found] = sample.star_xy[idx[found]]
    everywhere = np.isfinite(positions).all(axis=(0, 2))
    if everywhere.sum() < 3:
        return math.nan, math.nan, int(everywhere.sum()), []
    pos = positions[:, everywhere]  # (frames, stars, 2)
    delta = pos - pos[0:1]
    offsets = np.median(delta, axis=1)  # (frames, 2)
    jitter = float(np.sqrt(np.mean((offsets - offsets.mean(axis=0)) ** 2)))
    aligned = pos - offsets[:, None, :]
    resid = aligned - aligned.mean(axis=0, keepdims=True)
    # Robust: the median absolute residual, scaled to a standard deviation.
    k = len(frames)
    correction = math.sqrt(k / (k - 1))
    scatter = float(np.median(np.abs(resid)) * _MAD_TO_SIGMA * correction)
    return jitter, scatter, int(everywhere.sum()), [tuple(map(float, o)) for o in offsets]


def _cadence(good: Table | None) -> tuple[float, float]:
    """Median exposure (s) and median interval between frames (s), NaN when unknown."""
    exposure = (
        float(np.median(_column(good, "exposure_s")))
        if len(_column(good, "exposure_s"))
        else math.nan
    )
    mjd = np.sort(_column(good, "mjd_mid"))
    steps = np.diff(mjd) * 86400.0
    steps = steps[steps > 0]
    return exposure, float(np.median(steps)) if len(steps) else math.nan


def _robust_top(values: NDArray[np.float64], median: float, top: float) -> tuple[float, float]:
    """Median and robust upper bound (median + 5 robust sigmas) of a star measurement.

    ``median`` and ``top`` are returned as they are when fewer than 5 values are given.
    """
    if len(values) < 5:
        return median, top
    middle = float(np.median(values))
    spread = float(np.median(np.abs(values - middle))) * _MAD_TO_SIGMA
    return middle, middle + 5.0 * spread


def _fmt(value: float, digits: int = 2) -> str:
    """A measurement for a "why" text."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _entry(value: Any, why: str) -> dict[str, Any]:
    if isinstance(value, float):
        value = round(value, 3)
    return {"value": value, "why": why}


def tune_session(
    frame_paths: Sequence[Path],
    frames_table: Table | None,
    settings: TuneSettings,
    *,
    workers: int = 1,
) -> dict[str, Any]:
    """Measure a sample of the session's good frames and choose the detection settings.

    Parameters
    ----------
    frame_paths : sequence of Path
        The session's good frames, in time order.
    frames_table : astropy.table.Table or None
        ``check/frames.ecsv``: its ``fwhm`` gives the first guess of the seeing, its
        ``dx``/``dy`` the offsets of all good frames, its times the cadence, and its count
        of good frames the track length.
    settings : TuneSettings
        The profile and sampling.
    workers : int
        Processes that measure the sample frames side by side (default 1).

    Returns
    -------
    dict
        What ``tune/settings.yaml`` holds::

            profile: balanced
            measured: {fwhm_px, fwhm_source, elongation, jitter_px, jitter_source,
                       star_jitter_px, centroid_scatter_px, noise_adu, background_adu,
                       frames_sampled: [names], stars_used, stars_matched,
                       star_sharpness_median, star_sharpness_top, single_pixel_sharpness,
                       star_elongation_median, star_elongation_top,
                       largest_star_px, good_frames, exposure_s, cadence_s}

        Without stars to fit, the FWHM is the check's median (else 3 px) and the jitter
        0.3 px, and ``fwhm_source`` and ``jitter_source`` say so.
            extract: {key: {value, why}}   # keys of EXTRACT_KEYS
            link: {key: {value, why}}      # keys of LINK_KEYS

    Raises
    ------
    ValueError
        When no frame is given.
    spacepixels.frames.FrameReadError
        When a sample frame cannot be read.
    """
    paths = [Path(p) for p in frame_paths]
    if not paths:
        raise ValueError("tune: no good frames to measure")
    profile = _PROFILES[settings.profile]
    good = _good_rows(frames_table)
    check_fwhm = _column(good, "fwhm")
    guess = float(np.median(check_fwhm)) if len(check_fwhm) else 3.0
    picked = _sample_indices(len(paths), settings.sample_frames)
    with frame_pool(workers, len(picked), least=2, preload=STAR_MODULES) as pool:
        samples = list(
            pool.map(
                _measure_frame,
                [paths[i] for i in picked],
                [settings] * len(picked),
                [guess] * len(picked),
            )
        )

    fwhms = np.concatenate([s.fwhm for s in samples])
    elongations = np.concatenate([s.elongation for s in samples])
    stars_used = len(fwhms)
    if stars_used >= 3:
        fwhm = float(np.median(fwhms))
        elongation = float(np.median(elongations))
        fwhm_why = f"median of {stars_used} Moffat fits"
    else:
        fwhm, elongation = guess, math.nan
        fwhm_why = "no isolated stars to fit: " + (
            "the check's median FWHM" if len(check_fwhm) else "assumed"
        )
        logger.warning("tune: %s (FWHM %.2f px)", fwhm_why, fwhm)
    noise = float(np.median([s.noise for s in samples]))
    background = float(np.median([s.background for s in samples]))
    star_jitter, scatter, matched, _ = _jitter_from_stars(samples, max(1.5, fwhm))
    dx, dy = _column(good, "dx"), _column(good, "dy")
    if len(dx) > len(samples) and len(dx) == len(dy) and len(dx) >= 3:
        jitter = float(
            np.sqrt(0.5 * (np.mean((dx - np.median(dx)) ** 2) + np.mean((dy - np.median(dy)) ** 2)))
        )
        jitter_source = f"RMS of the check's offsets of {len(dx)} good frames"
    elif math.isfinite(star_jitter):
        jitter = star_jitter
        jitter_source = f"RMS of the offsets of {len(samples)} sample frames ({matched} stars)"
    else:
        jitter = 0.3
        jitter_source = "assumed (too few stars matched between frames)"
    if not math.isfinite(scatter):
        scatter = 0.05
    # The values written are rounded; the choices and their reasons use those values.
    fwhm, jitter, scatter = round(fwhm, 3), round(jitter, 3), round(scatter, 3)

    # Star sharpness and elongation, measured as the extraction will measure them.
    radius = round(max(1.5, 0.8 * fwhm), 3)
    sharp_all = np.concatenate([_star_sharpness(s, fwhm) for s in samples])
    elong_all = np.concatenate([s.stars.get("elongation", np.empty(0)) for s in samples])
    for sample in samples:
        sample.image = np.empty((0, 0), np.float32)
    sharp_all = sharp_all[np.isfinite(sharp_all)]
    elong_all = elong_all[np.isfinite(elong_all)]
    single = single_pixel_sharpness(fwhm, radius)
    # Robust upper bounds: hot pixels and cosmic rays bright enough to pass as stars are
    # a few per cent of the sample, so percentiles would follow them.
    sharp_median, sharp_top = _robust_top(sharp_all, 1.0, 1.3)
    elong_median, elong_top = _robust_top(elong_all, 1.1, 1.5)
    sizes = np.concatenate([s.sizes for s in samples])
    largest = float(np.percentile(sizes, 99.5)) if len(sizes) else 4.0 * fwhm
    n_good = len(good) if good is not None else len(paths)
    exposure, cadence = _cadence(good)

    measured: dict[str, Any] = {
        "fwhm_px": round(fwhm, 3),
        "fwhm_source": fwhm_why,
        "elongation": round(elongation, 3) if math.isfinite(elongation) else None,
        "jitter_px": round(jitter, 3),
        "jitter_source": jitter_source,
        "star_jitter_px": round(star_jitter, 3) if math.isfinite(star_jitter) else None,
        "centroid_scatter_px": round(scatter, 3),
        "noise_adu": round(noise, 3),
        "background_adu": round(background, 2),
        "frames_sampled": [s.file for s in samples],
        "stars_used": stars_used,
        "stars_matched": matched,
        "star_sharpness_median": round(sharp_median, 3),
        "star_sharpness_top": round(sharp_top, 3),
        "single_pixel_sharpness": round(single, 3),
        "star_elongation_median": round(elong_median, 3),
        "star_elongation_top": round(elong_top, 3),
        "largest_star_px": round(largest, 1),
        "good_frames": n_good,
        "exposure_s": round(exposure, 3) if math.isfinite(exposure) else None,
        "cadence_s": round(cadence, 3) if math.isfinite(cadence) else None,
    }
    extract = _choose_extract(profile, settings.profile, fwhm, largest, radius)
    extract.update(_choose_reference(n_good, scatter))
    link = _choose_link(
        profile,
        settings.profile,
        fwhm=fwhm,
        jitter=jitter,
        scatter=scatter,
        n_good=n_good,
        sharp_top=sharp_top,
        single=single,
        elong_top=elong_top,
        exposure=exposure,
        cadence=cadence,
        detect_sigma=float(extract["detect_sigma"]["value"]),
    )
    logger.info(
        "tune: FWHM %.2f px, elongation %s, jitter %.2f px, noise %.1f ADU (%d stars in %d frames)",
        fwhm,
        _fmt(elongation),
        jitter,
        noise,
        stars_used,
        len(samples),
    )
    return {"profile": settings.profile, "measured": measured, "extract": extract, "link": link}


def _choose_extract(
    profile: _Profile, name: str, fwhm: float, largest: float, radius: float
) -> dict[str, dict[str, Any]]:
    disc = math.pi * (fwhm / 2.0) ** 2
    min_area = int(np.clip(round(profile.min_area_fraction * disc), 3, 25))
    mesh_wanted = max(64.0, 16.0 * fwhm, 2.0 * largest)
    mesh = int(min(512, 16 * math.ceil(mesh_wanted / 16.0)))
    gain = math.sqrt(math.pi) * fwhm / SIGMA_TO_FWHM
    return {
        "detect_sigma": _entry(
            profile.detect_sigma,
            f"{name} profile: {profile.detect_sigma:g} sigma of the matched filter, which reaches "
            f"point sources of peak S/N {profile.detect_sigma / gain:.1f} at FWHM {fwhm:.2f} px",
        ),
        "min_area": _entry(
            min_area,
            f"{profile.min_area_fraction:g} x the FWHM disc ({disc:.1f} px^2), within 3-25",
        ),
        "kernel_fwhm_px": _entry(round(fwhm, 3), f"measured FWHM {fwhm:.2f} px"),
        "background_mesh_px": _entry(
            mesh,
            f"max(64, 16 x FWHM {fwhm:.2f} px, 2 x largest star {largest:.0f} px), "
            "rounded up to 16",
        ),
        "deblend_nthresh": _entry(
            profile.deblend_nthresh,
            f"{name} profile: {profile.deblend_nthresh} levels (16 parts a mover from a bright "
            "star 5-7 px away that 8 merges with it, at 15-40 % more extraction time)",
        ),
        "deblend_cont": _entry(
            profile.deblend_cont,
            f"{name} profile: a component of {profile.deblend_cont:g} of the blend's flux is "
            "a source of its own",
        ),
        "aperture_radius_px": _entry(
            radius, f"0.8 x FWHM {fwhm:.2f} px (at least 1.5): near the S/N-optimal aperture"
        ),
        "clean": _entry(
            profile.clean,
            f"{name} profile: "
            + (
                "cleaning saves about one noise detection per megapixel per frame"
                if profile.clean
                else "cleaning would cost 15-20 % of the time and a few per cent of the "
                "faint movers near stars"
            ),
        ),
    }


_REFERENCE_MIN_FRAMES = 8
"""Fewest good frames whose median stack is subtracted before extraction."""


def _choose_reference(n_good: int, scatter: float) -> dict[str, dict[str, Any]]:
    # The reference is the median stack: about 1.25 / sqrt(n) of a frame's noise, added in
    # quadrature to every difference.
    added = math.sqrt(1.0 + 1.25**2 / max(n_good, 1)) - 1.0
    if n_good >= _REFERENCE_MIN_FRAMES:
        subtract = _entry(
            True,
            f"{n_good} good frames: their median stack adds {100 * added:.0f} % to a "
            "frame's noise, and takes the stars out of what is searched",
        )
    else:
        subtract = _entry(
            False,
            f"only {n_good} good frames (fewer than {_REFERENCE_MIN_FRAMES}): their median "
            f"stack would add {100 * added:.0f} % to a frame's noise",
        )
    wander = round(max(0.15, scatter), 3)
    return {
        "subtract_reference": subtract,
        "reference_jitter_px": _entry(
            wander,
            f"stars' own wander after each frame's shift is fitted: the centroid scatter "
            f"{scatter:.3f} px, at least 0.15 px (seeing moves stars apart)",
        ),
    }


def _choose_link(
    profile: _Profile,
    name: str,
    *,
    fwhm: float,
    jitter: float,
    scatter: float,
    n_good: int,
    sharp_top: float,
    single: float,
    elong_top: float,
    exposure: float,
    cadence: float,
    detect_sigma: float,
) -> dict[str, dict[str, Any]]:
    match = profile.match_jitter * jitter + profile.match_fwhm * fwhm
    wander = math.hypot(jitter, scatter)
    stationary = max(1.0, 3.0 * wander)
    low, high = profile.min_points_range
    min_points = int(np.clip(math.ceil(profile.min_points_fraction * n_good), low, high))
    if n_good < min_points:
        min_points = max(2, n_good)
    reference = min(sharp_top, 0.5 * single)
    cosmic = math.exp(
        math.log(reference) + profile.cosmic_ray_position * (math.log(single) - math.log(reference))
    )
    streak = max(2.0, 1.5 * elong_top)
    sigma = fwhm / SIGMA_TO_FWHM
    duty = exposure / cadence if math.isfinite(exposure) and cadence > 0 else 1.0
    duty = float(np.clip(duty, 0.05, 1.0))
    # Trail length at which a point source reaches the streak elongation.
    trail = math.sqrt(12.0 * (streak**2 - 1.0)) * sigma
    max_rate = max(10.0, trail / duty)
    flash = profile.flash_snr_factor * detect_sigma
    slow = profile.slow_motion_fwhm * fwhm
    return {
        "match_radius_px": _entry(
            round(match, 3),
            f"{profile.match_jitter:g} x measured jitter {jitter:.2f} px + "
            f"{profile.match_fwhm:g} x FWHM {fwhm:.2f} px",
        ),
        "stationary_radius_px": _entry(
            round(stationary, 3),
            f"3 x (jitter {jitter:.2f} px and centroid scatter {scatter:.2f} px in quadrature), "
            "at least 1 px",
        ),
        "max_rate_px_per_frame": _entry(
            round(max_rate, 2),
            f"a trail of {trail:.1f} px (elongation {streak:.2f} at FWHM {fwhm:.2f} px) in an "
            f"exposure of {duty:.2f} of the cadence, at least 10 px per frame",
        ),
        "min_points": _entry(
            min_points,
            f"{profile.min_points_fraction:g} x {n_good} good frames, within {low}-{high}",
        ),
        "max_gap_frames": _entry(
            profile.max_gap_frames,
            f"{name} profile: a track may miss {profile.max_gap_frames} frames in a row "
            "(faint movers drop below the threshold in some frames)",
        ),
        "cosmic_ray_sharpness": _entry(
            round(cosmic, 3),
            f"{profile.cosmic_ray_position:g} of the way (in log) from the stars' sharpness "
            f"{reference:.2f} (median + 5 robust sigmas) to a single pixel's {single:.2f}",
        ),
        "streak_min_elongation": _entry(
            round(streak, 3),
            f"1.5 x the stars' elongation {elong_top:.2f} (median + 5 robust sigmas), at least 2",
        ),
        "streak_line_tolerance_px": _entry(
            round(fwhm + 2.0 * jitter, 3),
            f"FWHM {fwhm:.2f} px + 2 x jitter {jitter:.2f} px",
        ),
        "streak_join_gap_px": _entry(
            round(5.0 * fwhm, 3), f"5 x FWHM {fwhm:.2f} px: gaps a faint trail breaks into"
        ),
        "flash_min_snr": _entry(
            round(flash, 3),
            f"{profile.flash_snr_factor:g} x the detection threshold {detect_sigma:g}: noise "
            "detections stay below about 1.5 x the threshold in aperture S/N",
        ),
        "slow_min_motion_px": _entry(
            round(slow, 3),
            f"{profile.slow_motion_fwhm:g} x FWHM {fwhm:.2f} px: stars are kept out by the "
            "early/late contrast, not by this, so a slow mover needs only to part from itself",
        ),
    }


# --------------------------------------------------------------------------- output


def write_tuned(tuned: Mapping[str, Any], path: Path) -> None:
    """Write the tuned settings as YAML, whole or not at all.

    Parameters
    ----------
    tuned : Mapping
        What :func:`tune_session` returned.
    path : Path
        Destination (``tune/settings.yaml``); its folder is created.
    """
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# Measured by spacepixels tune; every value has the measurement it came from.\n"
        "# Set a key in the config's extract: or link: section to override it.\n"
        + yaml.safe_dump(_plain(tuned), sort_keys=False, allow_unicode=True, width=100)
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_tuned(path: Path) -> dict[str, Any]:
    """Read ``tune/settings.yaml`` back (the mapping :func:`tune_session` returned).

    Parameters
    ----------
    path : Path
        The file :func:`write_tuned` wrote.

    Returns
    -------
    dict
        With ``profile``, ``measured``, ``extract`` and ``link``.

    Raises
    ------
    ValueError
        When the file does not hold tuned settings (the message names it).
    """
    import yaml

    path = Path(path)
    try:
        tuned = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot be read as tuned settings ({exc})") from exc
    if not isinstance(tuned, dict) or not all(k in tuned for k in ("extract", "link")):
        raise ValueError(f"{path}: not tuned settings (no extract: and link: sections)")
    return tuned


def _plain(value: Any) -> Any:
    """Plain Python values YAML can write (NaN becomes null)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def resolve(
    section: Mapping[str, Any] | None, tuned_section: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge a configuration section with its tuned values: explicit configuration wins.

    Parameters
    ----------
    section : Mapping or None
        The merged ``extract:`` or ``link:`` section of the configuration; a key set to
        None (null) asks for the tuned value.
    tuned_section : Mapping or None
        The matching section of ``tune/settings.yaml``: ``{key: {value, why}}`` (a plain
        value is taken as it is).

    Returns
    -------
    values : dict
        Every key of either: the configured value where it is not None, else the tuned
        value, else None.
    provenance : dict
        Per key: ``"configured"``, ``"tuned: <why>"``, or ``"default"`` (null and not
        tuned: the stage's own default applies).
    """
    section = dict(section or {})
    tuned_section = dict(tuned_section or {})
    values: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for key in list(section) + [k for k in tuned_section if k not in section]:
        configured = section.get(key)
        if configured is not None:
            values[key] = configured
            provenance[key] = "configured"
            continue
        entry = tuned_section.get(key)
        if isinstance(entry, Mapping) and "value" in entry:
            values[key] = entry["value"]
            provenance[key] = f"tuned: {entry.get('why', '')}".rstrip(": ")
        elif entry is not None:
            values[key] = entry
            provenance[key] = "tuned"
        else:
            values[key] = None
            provenance[key] = "default"
    return values, provenance
