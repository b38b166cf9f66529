"""Synthetic nights of aligned sub-exposures, with the ground truth of what moved.

The generator writes what an astrophotographer's camera writes on a clear night, and a
truth file saying exactly where every injected object is in every frame, so the detector
can be tested and benchmarked against known answers. Everything is drawn from one seed:
the same seed gives the same bytes.

The model, in plain words
-------------------------
A *camera* has a gain (electrons per ADU, written to ``GAIN``/``EGAIN``), a read noise,
a bias pedestal of a few hundred to over a thousand ADU, a 16-bit range that clips at
65535, about a hundred hot pixels per megapixel whose dark current is fixed for the
camera (the same positions in every frame, brighter in longer exposures) and one bad
column that reads a constant offset above its neighbours. A tree of nights uses one camera,
so its defects are the same in every session of the tree.

A *session* is one target on one night: ``n_frames`` exposures of 60, 90 or 120 s,
separated by a few seconds of readout, starting in the evening (UTC) of the night's date,
with one pause of several exposures' length somewhere in the middle (a cadence gap). The
frames are *aligned*: a fixed field of stars, with a residual jitter of 0.1-0.5 px per
frame. The sky is a level of 900-2400 ADU above the pedestal, a linear gradient of a few
per cent and vignetting that takes 10-20 % off the corners (stars are vignetted too). The
sky drifts slowly through the session. One frame (by default) is cloudy: its transparency
falls to 15-35 % and its sky rises by a factor of 1.6-2.5.

Stars have a power-law distribution of brightness (800-1500 per 1024x768 frame down to a
peak of twice the sky noise, of which about 250-500 are found by a 5-sigma extraction, and
a handful so bright that they saturate) and colours (for the colour variants). Each star is drawn
with an elliptical Moffat profile (beta = 3.5) whose FWHM (2-4 px, the geometric mean of
the two axes), elongation (major over minor axis, 1.02-1.3) and angle change from frame to
frame. Saturated pixels read 65535 and the excess charge bleeds up and down the column.
Cosmic rays are sharp hits of one to three pixels, a few per frame at random places.

Noise: the light (sky, stars, objects, dark current) in electrons is drawn from a Poisson
distribution, read noise is added as a normal deviate, the pedestal and the bad column's
offset are added, and the result is rounded and clipped to the 16-bit range.

Every star and object is drawn in a small stamp around it (not over the whole image) and
all stamps of a frame are summed in one ``numpy.bincount``, which keeps a 1024x768 frame at
a few tens of milliseconds.

Injected objects (see :class:`ObjectSpec` and :func:`default_objects`):

``mover``
    A point source moving at a constant rate (px per frame) in a straight line through
    the whole session. A mover that moves more than about one FWHM during the exposure is
    trailed: it is drawn as the sum of sub-steps, 0.5 px apart, along its path during the
    exposure.
``slow_mover``
    The same at 0.15-0.5 px per frame.
``streak``
    A satellite crossing one frame: a long line across the whole frame or most of it.
``streak_track``
    A fast object that leaves a streak in each of 3-5 consecutive frames, all on one line.
``flash``
    A point source with the stellar profile, in one frame only.

An object's brightness is set by its requested peak S/N under the session's nominal
conditions (median seeing, clear sky, no jitter) at its first position; the frame-to-frame
S/N then varies with seeing, transparency and sky, as it does on a real night, and the
truth gives the value in every frame.

Peak S/N: the value of the object's brightest pixel above the background (the object's own
light only, without noise, as it falls on the pixels) divided by the per-pixel noise of the
background at that pixel, ``sqrt(sky / gain + read_noise**2)`` in ADU, where ``sky`` is the
sky level there in that frame (gradient, vignetting and clouds included). For trailed
movers and streaks it is the peak of the trail. It is computed on the mono model (the
``uint16`` variant); in the colour variants, each plane carries the mono signal times a
colour weight and the weights of the three planes average to one, so the mean of the planes
has the mono signal (with less noise, since the planes are noisy independently).

Variants (one per session, or for the whole tree)
-------------------------------------------------
``uint16`` (default)
    BITPIX 16 with BZERO 32768: unsigned 16-bit the FITS way.
``rgb``
    A colour cube of uint16, shape ``(3, H, W)`` or, with ``rgb_axis="last"``,
    ``(H, W, 3)`` (then without WCS cards, which would name the wrong axes).
``bayer``
    An RGGB mosaic of uint16 with ``BAYERPAT = 'RGGB'``; the planes have colour-dependent
    star and sky fluxes, so the mosaic shows the colour grid.
``uint8``
    BITPIX 8: ``(ADU - pedestal) / scale + 16``, with ``scale`` (ADU per count) set to half
    the session's nominal sky noise, rounded and clipped to 0-255 (``GAIN`` scaled to match).
``int32``
    BITPIX 32, values in ADU.
``float32``, ``float64``
    BITPIX -32 and -64, values in ADU (with ``normalised_floats=True``: ADU / 65535, in
    0-1, as Siril and PixInsight write, with ``GAIN`` in electrons per that unit).
``fz``
    Tile-compressed (Rice) uint16 in a ``CompImageHDU``, files named ``*.fits.fz``.
``nodate``
    As ``uint16`` but without ``DATE-OBS`` or ``MJD-OBS`` (the truth keeps the real times).

Real stars at a real pointing (``catalog=True``)
------------------------------------------------
By default the star field is random, which is all the detector needs. A plate solver needs
the real sky: with ``catalog=True`` (:func:`make_session`, :func:`make_night_tree`,
:func:`make_demo_tree`; ``spacepixels synth --catalog``) every star of the Tycho-2
catalogue that the astrometry.net index files list (the small list shipped in
:mod:`spacepixels.starlist`) is drawn at its true place, through a TAN WCS at the target's
true pointing, with a flux from its VT magnitude (a VT 11 star has a peak S/N of
:data:`CATALOG_PEAK_SNR_V11`; stars brighter than about VT 7 saturate). As many random
stars as the random field would hold are added, all fainter than the faintest catalogue
star, for realism. The pixel scale defaults to :data:`CATALOG_PIXEL_SCALE_ARCSEC` (the
camera's focal length is set to match, and ``TELESCOP`` names a lens), so that a 1024x768
frame spans 2.0 x 1.5 degrees and holds about a hundred catalogue stars (60-120 depending
on the field), enough for ``solve-field`` with the Debian Tycho-2 index packages. The
headers say where the mount points: ``RA``/``DEC`` (degrees) and ``OBJCTRA``/``OBJCTDEC``
(sexagesimal) 1-8 arcminutes off the true centre, as a real mount's are, with
``FOCALLEN``, ``XPIXSZ`` and ``XBINNING``; the exact WCS is written only with ``wcs=True``.
Everything else (objects, defects, noise) is drawn exactly as without ``catalog``: the same
seed puts the same objects at the same pixels. The truth gains an ``astrometry`` section
and every object's sky motion (below). A pointing outside the shipped list's fields raises
``ValueError``.

Layout
------
:func:`make_night_tree` writes ``OUT/nights/<YYYY-MM-DD>/<target>/<target>_<NNNN>.fits``
(the session id is ``<YYYY-MM-DD>/<target>``, ``NNNN`` counts from 0001) and the truth to
``OUT/truth.json``, beside the tree, never inside it. Every file is written to a temporary
name and renamed into place. Headers hold ``DATE-OBS`` (ISO, UTC, start of exposure, to the
millisecond) and a matching ``MJD-OBS``, ``EXPTIME``, ``OBJECT``, ``RA``/``DEC``,
``FOCALLEN``, ``XPIXSZ``, ``GAIN``, ``INSTRUME``, ``TELESCOP`` and, unless turned off, a
TAN WCS (``CTYPE``, ``CRVAL``, ``CRPIX``, ``CD``) at the target's pointing. Headers carry
no timestamps of their own, so the bytes depend only on the seed and the arguments.

Truth schema (``truth.json``)
-----------------------------
Pixel coordinates are 0-based with ``x`` the column, as in numpy, sep and astropy, and
include the frame's jitter (they are where the light falls in that frame). Times are UTC.
Angles are degrees from +x towards +y. ::

    {
      "schema": "spacepixels.synth/1",
      "seed": int,                      # the tree's seed
      "layout": "nights/<YYYY-MM-DD>/<target>/<target>_<NNNN>.fits",
      "frames_root": "nights",          # relative to the truth file's folder
      "shape": [height, width],
      "n_frames": int,
      "variants": [str, ...],           # as given, cycled over the sessions
      "camera": {...},                  # as in each session
      "sessions": {"<session id>": <session>, ...}
    }

    <session> = {
      "session_id": str, "target": str, "seed": int, "variant": str,
      "pointing": {"ra_deg": float, "dec_deg": float},
      "shape": [height, width], "n_frames": int,
      "exptime": float,                 # s
      "cadence_s": float,               # nominal: exposure + readout
      "gap": {"after_frame": file, "after_index": int, "pause_s": float} | null,
      "camera": {"gain_e_per_adu", "read_noise_e", "read_noise_adu", "pedestal_adu",
                 "saturation_adu", "pixel_size_um", "focal_length_mm",
                 "pixel_scale_arcsec", "instrument", "telescope"},
      "sky": {"level_adu", "gradient_x", "gradient_y", "vignetting",
              "vignetting_centre": [x, y]},
      "uint8": {"scale_adu_per_count", "offset_counts"} | null,
      "n_stars": int,                   # all stars drawn, most too faint to detect
      "saturated_stars": [[x, y], ...],  # stars whose nominal peak is above saturation
      "frames": [{
          "file": str, "index": int (0-based), "date_obs": str (ISO, exposure start),
          "mjd_start": float, "mjd_mid": float, "exptime": float,
          "jitter_dx": float, "jitter_dy": float,
          "fwhm": float (px), "elongation": float, "psf_angle_deg": float,
          "sky_adu": float (at the image centre), "transparency": float,
          "degraded": bool, "variant": str}, ...],
      "objects": [{
          "id": str (e.g. "mover_1"),
          "kind": "mover" | "slow_mover" | "streak" | "streak_track" | "flash",
          "snr": float,                 # requested peak S/N, nominal conditions
          "brightness_adu": float,      # ADU per exposure; for a streak, ADU per px
          "rate_px_per_frame": float,   # at the nominal cadence (0 for a flash)
          "rate_px_per_min": float,
          "direction_deg": float | null,
          "frames": [file, ...],
          "positions": [{
              "frame": file, "index": int, "mjd": float (mid-exposure),
              "x": float, "y": float,   # mid-exposure; a streak's centre
              "peak_adu": float, "peak_snr": float,
              "x0", "y0", "x1", "y1": float  # trail from exposure start to end
                                             # (streaks: the visible ends; not for flashes)
          }, ...]}, ...],
      "hot_pixels": [[x, y], ...],
      "bad_columns": [x, ...],
      "bad_column_offsets_adu": [float, ...],
      "cosmic_rays": [{"frame": file, "x": int, "y": int, "adu": float}, ...],
      "cloudy_frames": [file, ...],
      "wcs": {"CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1",
              "CD1_2", "CD2_1", "CD2_2", ...} | null   # nominal; each frame's header
                                                      # shifts CRPIX by its jitter
    }

With ``catalog=True`` only, the session also holds ::

      "astrometry": {
        "wcs": {...},                   # the nominal TAN WCS, as above, even when the
                                        # headers carry none; a frame's own WCS is it with
                                        # CRPIX shifted by the frame's jitter
        "centre": {"ra_deg", "dec_deg"},  # at the image centre, before jitter
        "pixel_scale_arcsec": float,
        "rotation_deg": float,          # position angle of the +y axis, east of north
        "field_deg": [width, height],
        "mount_pointing": {"ra_deg", "dec_deg", "error_arcmin"},  # the header's RA/DEC
        "catalog": {"source", "field", "n_stars", "n_random_stars", "faintest_mag",
                    "peak_snr_at_mag_11",
                    "stars": [[ra, dec, mag, x, y], ...]}  # on the image, before jitter
      }

and every object gains ``"rate_arcsec_per_min"`` (great-circle distance between its
places at the middle of its first and last exposure, over the time between; for a single
frame, over its exposure; over at most 200 px of its path, around the middle) and
``"pa_deg"`` (position angle of the motion, east of north; null for a flash), and each of
its positions ``"ra"``, ``"dec"`` (degrees, the true place at mid-exposure).

A position is listed only for frames in which the object's centre lies on the image.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = [
    "CATALOG_PEAK_SNR_V11",
    "CATALOG_PIXEL_SCALE_ARCSEC",
    "DEFAULT_FIRST_NIGHT",
    "DEMO_SEED",
    "OBJECT_KINDS",
    "TARGETS",
    "TRUTH_SCHEMA",
    "VARIANTS",
    "Camera",
    "ObjectSpec",
    "default_objects",
    "make_demo_tree",
    "make_night_tree",
    "make_session",
    "read_truth",
]

logger = logging.getLogger(__name__)

VARIANTS: tuple[str, ...] = (
    "uint16",
    "rgb",
    "bayer",
    "uint8",
    "int32",
    "float32",
    "float64",
    "fz",
    "nodate",
)
"""Names of the frame formats the generator writes (see the module docstring)."""

OBJECT_KINDS: tuple[str, ...] = ("mover", "slow_mover", "streak", "streak_track", "flash")
"""Kinds of injected object, as written in the truth's ``kind`` field."""

TRUTH_SCHEMA = "spacepixels.synth/1"
"""Value of the truth file's ``schema`` field; bumped when a field changes meaning."""

DEFAULT_FIRST_NIGHT = date(2026, 3, 14)
"""Date of the first night of a tree unless one is given."""

DEMO_SEED = 2026
"""Seed of the project's demo tree."""

TARGETS: dict[str, tuple[float, float]] = {
    "M31": (10.6847, 41.2690),
    "M42": (83.8221, -5.3911),
    "M45": (56.7500, 24.1167),
    "M81": (148.8882, 69.0653),
    "M101": (210.8025, 54.3489),
    "M13": (250.4235, 36.4613),
    "M27": (299.9017, 22.7211),
    "M51": (202.4696, 47.1952),
    "M33": (23.4621, 30.6599),
    "M1": (83.6331, 22.0145),
    "NGC7000": (314.7500, 44.3333),
    "NGC7331": (339.2671, 34.4156),
}
"""Targets a tree's sessions are named after, with their pointing (RA, Dec in degrees).
Names not listed here get a random pointing."""

CATALOG_PIXEL_SCALE_ARCSEC = 7.0
"""Pixel scale of frames drawn with real stars unless one is given: 7 arcsec per pixel
makes a 1024x768 frame 2.0 x 1.5 degrees, which holds about a hundred Tycho-2 stars of
the index files, plenty for ``solve-field`` with the Debian Tycho-2 index packages."""

CATALOG_PEAK_SNR_V11 = 50.0
"""Peak S/N of a star of Tycho VT magnitude 11 under a session's nominal conditions; the
other catalogue stars scale by 10**(-0.4 (mag - 11)), so stars brighter than about VT 7
saturate."""

MOFFAT_BETA = 3.5
"""Moffat exponent of the stellar profile (3.5: a seeing-limited core with modest wings)."""

_STAR_COUNT_SLOPE = 0.8
"""Slope of the cumulative star counts: N(brighter than flux F) is proportional to F**-0.8."""

_SUBSTEP_PX = 0.5
"""Largest spacing of the sub-steps that draw a trail or a streak, in px."""

_RGGB = ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2))
"""The RGGB mosaic as (row offset, column offset, plane) for each pixel of a 2x2 cell."""

_QE = np.array([0.85, 1.15, 1.0])
"""Relative sensitivity of the red, green and blue planes of the colour camera."""

_MJD_EPOCH = datetime(1858, 11, 17)


@dataclass(frozen=True)
class Camera:
    """The camera and telescope that take every frame of a tree.

    Parameters
    ----------
    gain_e_per_adu : float
        Electrons per ADU.
    read_noise_e : float
        Read noise in electrons.
    pedestal_adu : float
        Bias level added to every pixel, in ADU.
    saturation_adu : float
        Largest value the converter writes (pixels at or above it are saturated).
    pixel_size_um : float
        Pixel size in micrometres (``XPIXSZ``, ``YPIXSZ``).
    focal_length_mm : float
        Focal length in millimetres (``FOCALLEN``).
    hot_pixels_per_mpix : float
        Number of hot pixels per megapixel.
    defect_seed : int
        Seed of the hot pixels' and bad column's positions: one camera, one set of defects
        (for a given frame shape).
    instrument, telescope : str
        ``INSTRUME`` and ``TELESCOP`` cards.
    """

    gain_e_per_adu: float = 1.2
    read_noise_e: float = 2.5
    pedestal_adu: float = 800.0
    saturation_adu: float = 65535.0
    pixel_size_um: float = 3.76
    focal_length_mm: float = 400.0
    hot_pixels_per_mpix: float = 120.0
    defect_seed: int = 0
    instrument: str = "SpacePixels SynthCam 16-bit"
    telescope: str = "Synthetic 80 mm f/5 refractor"

    @property
    def read_noise_adu(self) -> float:
        """Read noise in ADU."""
        return self.read_noise_e / self.gain_e_per_adu

    @property
    def pixel_scale_arcsec(self) -> float:
        """Pixel scale in arcseconds per pixel."""
        return 206.264806 * self.pixel_size_um / self.focal_length_mm

    @classmethod
    def random(cls, rng: np.random.Generator, *, defect_seed: int = 0) -> Camera:
        """A camera with realistic parameters drawn from ``rng``.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of the draws.
        defect_seed : int
            Seed of the camera's defects.

        Returns
        -------
        Camera
        """
        return cls(
            gain_e_per_adu=round(float(rng.uniform(0.8, 1.6)), 3),
            read_noise_e=round(float(rng.uniform(1.5, 3.5)), 2),
            pedestal_adu=float(rng.integers(300, 1300)),
            focal_length_mm=float(rng.choice([300.0, 400.0, 530.0])),
            defect_seed=defect_seed,
        )

    def defects(
        self, shape: tuple[int, int]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], list[int], list[float]]:
        """The camera's fixed defects for frames of ``shape``.

        Parameters
        ----------
        shape : tuple of int
            ``(height, width)`` of the frames.

        Returns
        -------
        hot_xy : ndarray of int64, shape (n, 2)
            Hot pixels as ``(x, y)``.
        hot_rate : ndarray of float64, shape (n,)
            Their dark current in ADU per second.
        bad_columns : list of int
            Columns that read an offset.
        bad_offsets : list of float
            The offsets in ADU.
        """
        height, width = shape
        rng = np.random.default_rng([self.defect_seed, height, width, 17])
        n_hot = max(1, round(self.hot_pixels_per_mpix * height * width / 1e6))
        flat = np.sort(rng.choice(height * width, size=n_hot, replace=False))
        hot_xy = np.stack([flat % width, flat // width], axis=1).astype(np.int64)
        hot_rate = np.clip(np.exp(rng.normal(math.log(12.0), 0.9, n_hot)), 5.0, 800.0)
        margin = max(1, width // 10)
        bad_columns = [int(rng.integers(margin, width - margin))] if width > 2 * margin else []
        bad_offsets = [float(round(rng.uniform(80.0, 300.0), 1)) for _ in bad_columns]
        return hot_xy, hot_rate, bad_columns, bad_offsets

    def to_truth(self) -> dict[str, Any]:
        """The camera's parameters as written in the truth."""
        return {
            "gain_e_per_adu": self.gain_e_per_adu,
            "read_noise_e": self.read_noise_e,
            "read_noise_adu": _r(self.read_noise_adu, 4),
            "pedestal_adu": self.pedestal_adu,
            "saturation_adu": self.saturation_adu,
            "pixel_size_um": self.pixel_size_um,
            "focal_length_mm": self.focal_length_mm,
            "pixel_scale_arcsec": _r(self.pixel_scale_arcsec, 4),
            "instrument": self.instrument,
            "telescope": self.telescope,
        }


Range = float | tuple[float, float]
"""A fixed value, or ``(low, high)`` to draw one uniformly."""


@dataclass(frozen=True)
class ObjectSpec:
    """What to inject; every field left as None is drawn from the kind's default range.

    Parameters
    ----------
    kind : str
        One of :data:`OBJECT_KINDS`.
    snr : float or (float, float), optional
        Requested peak S/N under nominal conditions. Defaults: mover 6-20, slow_mover
        10-20, streak 8-25, streak_track 8-20, flash 15-40.
    rate_px_per_frame : float or (float, float), optional
        Rate at the nominal cadence. Defaults: mover 0.5-6, slow_mover 0.15-0.5; for a
        streak_track it follows from ``length_px``; for a streak (a satellite) 3000-30000
        px per minute.
    direction_deg : float, optional
        Direction of motion, degrees from +x towards +y. Default: random.
    start_xy : (float, float), optional
        Position (before jitter) at mid-exposure of the first frame it is in (a streak's
        centre). Default: random, so that the whole path stays on the image.
    first_frame : int, optional
        0-based index of the first frame it is in. Default: 0 for movers; a random clear
        frame for the others.
    n_frames : int or (int, int), optional
        Number of frames it is in. Defaults: movers all (from ``first_frame``),
        streak_track 3-5, streak and flash 1.
    length_px : float or (float, float), optional
        For a streak_track, the length of its streak in each frame (default 60-200 px);
        for a streak, the visible length (default: edge to edge, or most of it).
    id : str, optional
        Identifier in the truth; default ``<kind>_<n>``.
    """

    kind: Literal["mover", "slow_mover", "streak", "streak_track", "flash"]
    snr: Range | None = None
    rate_px_per_frame: Range | None = None
    direction_deg: float | None = None
    start_xy: tuple[float, float] | None = None
    first_frame: int | None = None
    n_frames: int | tuple[int, int] | None = None
    length_px: Range | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in OBJECT_KINDS:
            raise ValueError(f"unknown object kind {self.kind!r}; expected one of {OBJECT_KINDS}")


_DEFAULT_SNR: dict[str, tuple[float, float]] = {
    "mover": (6.0, 20.0),
    "slow_mover": (10.0, 20.0),
    "streak": (8.0, 25.0),
    "streak_track": (8.0, 20.0),
    "flash": (15.0, 40.0),
}


def default_objects() -> list[ObjectSpec]:
    """The objects injected when none are given.

    Three point movers (S/N 6-10 at 0.5-1.5 px/frame, 8-14 at 1.5-3.5 px/frame and 12-20 at
    3.5-6 px/frame, the last one trailed), one slow mover (0.15-0.5 px/frame), one
    satellite streak, one streak track over 3-5 frames and one flash.

    Returns
    -------
    list of ObjectSpec
    """
    return [
        ObjectSpec("mover", snr=(6.0, 10.0), rate_px_per_frame=(0.5, 1.5)),
        ObjectSpec("mover", snr=(8.0, 14.0), rate_px_per_frame=(1.5, 3.5)),
        ObjectSpec("mover", snr=(12.0, 20.0), rate_px_per_frame=(3.5, 6.0)),
        ObjectSpec("slow_mover"),
        ObjectSpec("streak"),
        ObjectSpec("streak_track"),
        ObjectSpec("flash"),
    ]


# --------------------------------------------------------------------------------------
# Small helpers


def _r(value: float, digits: int) -> float:
    """Round for the truth file (stable text, no float noise)."""
    return float(round(float(value), digits))


def _draw(rng: np.random.Generator, value: Range | None, default: tuple[float, float]) -> float:
    if value is None:
        value = default
    if isinstance(value, tuple):
        return float(rng.uniform(value[0], value[1]))
    return float(value)


def _draw_int(rng: np.random.Generator, value: int | tuple[int, int] | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, tuple):
        return int(rng.integers(value[0], value[1] + 1))
    return int(value)


def _mjd(moment: datetime) -> float:
    return (moment - _MJD_EPOCH) / timedelta(days=1)


def _target_key(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).upper()


def _write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write(file object)`` to a temporary name, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# Point spread function and stamps


@dataclass(frozen=True)
class _Psf:
    """Elliptical Moffat profile of one frame."""

    fwhm: float
    elongation: float
    angle_deg: float

    @property
    def axes(self) -> tuple[float, float]:
        alpha = self.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / MOFFAT_BETA) - 1.0))
        root = math.sqrt(self.elongation)
        return alpha * root, alpha / root

    @property
    def peak_fraction(self) -> float:
        """Fraction of the flux in the profile's centre, per pixel area."""
        a, b = self.axes
        return (MOFFAT_BETA - 1.0) / (math.pi * a * b)

    def half(self, reach: float) -> int:
        """Half-size of a stamp reaching ``reach`` FWHM along the major axis."""
        return max(2, math.ceil(reach * self.fwhm * math.sqrt(self.elongation)))


_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F = np.empty(0, dtype=np.float64)


def _render_points(
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
    fluxes: NDArray[np.float64],
    psf: _Psf,
    half: int,
    shape: tuple[int, int],
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Stamps of point sources: flat pixel indices, values and the source of each value.

    Pixel ``i`` covers ``[i - 0.5, i + 0.5)``; the profile is sampled at pixel centres and
    normalised analytically, so a source's values sum to its flux (less the far wings).
    """
    height, width = shape
    n = xs.size
    if n == 0:
        return _EMPTY_I, _EMPTY_F, _EMPTY_I
    a, b = psf.axes
    norm = psf.peak_fraction
    cos_t = math.cos(math.radians(psf.angle_deg))
    sin_t = math.sin(math.radians(psf.angle_deg))
    offsets = np.arange(-half, half + 1)
    size = offsets.size
    chunk = max(1, 2_000_000 // (size * size))
    out_idx: list[NDArray[np.int64]] = []
    out_val: list[NDArray[np.float64]] = []
    out_own: list[NDArray[np.int64]] = []
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        x = xs[sl]
        y = ys[sl]
        gx = np.rint(x).astype(np.int64)[:, None] + offsets
        gy = np.rint(y).astype(np.int64)[:, None] + offsets
        dx = (gx - x[:, None])[:, None, :]
        dy = (gy - y[:, None])[:, :, None]
        u = (dx * cos_t + dy * sin_t) / a
        v = (dy * cos_t - dx * sin_t) / b
        values = np.power(1.0 + u * u + v * v, -MOFFAT_BETA)
        values *= (norm * fluxes[sl])[:, None, None]
        inside = ((gy >= 0) & (gy < height))[:, :, None] & ((gx >= 0) & (gx < width))[:, None, :]
        flat = gy[:, :, None] * width + gx[:, None, :]
        owner = np.broadcast_to(np.arange(sl.start, sl.stop)[:, None, None], flat.shape)
        out_idx.append(flat[inside])
        out_val.append(values[inside])
        out_own.append(owner[inside])
    return np.concatenate(out_idx), np.concatenate(out_val), np.concatenate(out_own)


def _peak(idx: NDArray[np.int64], vals: NDArray[np.float64], width: int) -> tuple[float, int, int]:
    """Brightest pixel of one object's own light: (value, x, y)."""
    if idx.size == 0:
        return 0.0, -1, -1
    rows = idx // width
    cols = idx % width
    r0, c0 = int(rows.min()), int(cols.min())
    cw = int(cols.max()) - c0 + 1
    local = (rows - r0) * cw + (cols - c0)
    summed = np.bincount(local, weights=vals)
    best = int(np.argmax(summed))
    return float(summed[best]), c0 + best % cw, r0 + best // cw


class _Canvas:
    """Collects stamps of one frame and sums them per colour plane in one bincount each."""

    def __init__(self, shape: tuple[int, int], planes: int) -> None:
        self.shape = shape
        self.planes = planes
        self.idx: list[NDArray[np.int64]] = []
        self.vals: list[list[NDArray[np.float64]]] = [[] for _ in range(planes)]

    def add(
        self,
        idx: NDArray[np.int64],
        vals: NDArray[np.float64],
        colour: NDArray[np.float64] | None = None,
    ) -> None:
        """Add values; ``colour`` is per plane, shape (3,) or (len(vals), 3), or None (grey)."""
        self.idx.append(idx)
        for plane in range(self.planes):
            if colour is None or self.planes == 1:
                self.vals[plane].append(vals)
            elif colour.ndim == 1:
                self.vals[plane].append(vals * colour[plane])
            else:
                self.vals[plane].append(vals * colour[:, plane])

    def images(self) -> list[NDArray[np.float64]]:
        height, width = self.shape
        idx = np.concatenate(self.idx) if self.idx else _EMPTY_I
        return [
            np.bincount(idx, weights=np.concatenate(v) if v else _EMPTY_F, minlength=height * width)
            .reshape(height, width)
            .astype(np.float64, copy=False)
            for v in self.vals
        ]


def _bleed(image: NDArray[np.float64], full_well: float) -> NDArray[np.bool_]:
    """Clip ``image`` at ``full_well`` and spill the excess up and down its column.

    Works in place; returns the mask of saturated pixels.
    """
    over = image > full_well
    if not over.any():
        return over
    height = image.shape[0]
    for col in np.nonzero(over.any(axis=0))[0]:
        column = image[:, col]
        rows = np.nonzero(column > full_well)[0]
        breaks = np.nonzero(np.diff(rows) > 1)[0]
        starts = np.r_[rows[0], rows[breaks + 1]]
        ends = np.r_[rows[breaks], rows[-1]]
        for r0, r1 in zip(starts, ends, strict=True):
            excess = float((column[r0 : r1 + 1] - full_well).sum())
            column[r0 : r1 + 1] = full_well
            for step, row in ((-1, r0 - 1), (1, r1 + 1)):
                left = excess / 2.0
                while left > 0.0 and 0 <= row < height:
                    room = full_well - column[row]
                    if room > 0.0:
                        take = min(room, left)
                        column[row] += take
                        left -= take
                    row += step
    return image >= full_well * (1.0 - 1e-9)


def _clip_line(
    px: float, py: float, ux: float, uy: float, width: int, height: int
) -> tuple[float, float]:
    """Parameters ``t`` where the line ``p + t u`` enters and leaves the image."""
    t_lo, t_hi = -math.inf, math.inf
    for p, u, hi in ((px, ux, width - 1.0), (py, uy, height - 1.0)):
        if abs(u) < 1e-12:
            continue
        a, b = (0.0 - p) / u, (hi - p) / u
        t_lo, t_hi = max(t_lo, min(a, b)), min(t_hi, max(a, b))
    return t_lo, t_hi


# --------------------------------------------------------------------------------------
# The session's plan


@dataclass
class _Body:
    """An injected object, resolved: where it is at any time in the session."""

    id: str
    kind: str
    snr: float
    frames: list[int]
    ref_xy: NDArray[np.float64]
    velocity: NDArray[np.float64]  # px per second
    t_ref: float  # s since the session's start
    rate_px_per_frame: float
    direction_deg: float | None
    line: tuple[float, float, float, float] | None = None  # streak ends
    brightness: float = 0.0
    positions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Plan:
    """Everything drawn for one session before any pixel is made."""

    shape: tuple[int, int]
    n: int
    exptime: float
    cadence: float
    t_start: NDArray[np.float64]
    gap_after: int | None
    gap_pause: float
    jitter: NDArray[np.float64]  # (n, 2)
    fwhm: NDArray[np.float64]
    elongation: NDArray[np.float64]
    angle: NDArray[np.float64]
    sky: NDArray[np.float64]
    transparency: NDArray[np.float64]
    cloudy: list[int]
    pattern: NDArray[np.float64]  # sky gradient x vignetting, 1 at the image centre
    vignetting: float
    vignetting_centre: tuple[float, float]
    gradient: tuple[float, float]
    sky_base: float
    star_x: NDArray[np.float64]
    star_y: NDArray[np.float64]
    star_flux: NDArray[np.float64]  # vignetting included
    star_colour: NDArray[np.float64]  # (n_stars, 3), mean 1 per star
    sky_colour: NDArray[np.float64]
    object_colour: NDArray[np.float64]

    def vignette(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fraction of the light that reaches ``(x, y)``: 1 on axis, 1 - vignetting in the
        farthest corner."""
        height, width = self.shape
        cx, cy = self.vignetting_centre
        corner = max(
            math.hypot(px - cx, py - cy) for px in (0.0, width - 1.0) for py in (0.0, height - 1.0)
        )
        return 1.0 - self.vignetting * ((x - cx) ** 2 + (y - cy) ** 2) / corner**2

    def nominal_psf(self) -> _Psf:
        """The session's median seeing: the conditions a requested S/N refers to."""
        return _Psf(
            float(np.median(self.fwhm)), float(np.median(self.elongation)), float(self.angle[0])
        )

    def psf(self, k: int) -> _Psf:
        return _Psf(float(self.fwhm[k]), float(self.elongation[k]), float(self.angle[k]))

    def sky_at(self, level: float, x: int, y: int) -> float:
        """Sky at pixel ``(x, y)`` for a frame whose sky at the image centre is ``level``."""
        height, width = self.shape
        return level * float(self.pattern[min(max(y, 0), height - 1), min(max(x, 0), width - 1)])


def _plan_session(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    camera: Camera,
    exptime: float | None,
    cloudy: int | Sequence[int],
    gap: bool | int,
) -> _Plan:
    """Draw a session's times, seeing, jitter, sky, clouds and star field."""
    height, width = shape
    exptime = float(rng.choice([60.0, 90.0, 120.0])) if exptime is None else float(exptime)
    readout = float(rng.uniform(1.5, 4.0))
    cadence = exptime + readout

    # The cadence gap.
    gap_after: int | None = None
    if isinstance(gap, bool):
        if gap and n >= 4:
            lo, hi = n // 3, max(n // 3 + 1, (2 * n) // 3)
            gap_after = int(rng.integers(lo, hi))
    elif 0 <= int(gap) < n - 1:
        gap_after = int(gap)
    gap_pause = round(float(rng.uniform(3.0, 6.0)) * cadence, 3)

    steps = exptime + readout + np.abs(rng.normal(0.0, 0.2, n))
    if gap_after is not None:
        steps[gap_after] += gap_pause
    t_start = np.round(np.concatenate([[0.0], np.cumsum(steps[:-1])]), 3)

    # Seeing, jitter, sky.
    base_fwhm = rng.uniform(2.3, 3.3)
    trend = rng.uniform(-1.0, 1.0)
    phase = np.linspace(-0.5, 0.5, n) if n > 1 else np.zeros(1)
    fwhm = np.clip(base_fwhm * np.exp(0.06 * rng.normal(size=n) + 0.1 * trend * phase), 1.8, 4.5)
    elongation = np.clip(1.0 + rng.uniform(0.02, 0.10) + np.abs(rng.normal(0.0, 0.04, n)), 1, 1.3)
    angle = (rng.uniform(0.0, 180.0) + rng.normal(0.0, 10.0, n)) % 180.0
    jitter = np.clip(rng.normal(0.0, 0.22, (n, 2)), -0.5, 0.5)
    sky_base = float(rng.uniform(900.0, 2400.0))
    drift = rng.uniform(-0.12, 0.12)
    sky = sky_base * (1.0 + drift * phase) * (1.0 + 0.01 * rng.normal(size=n))
    transparency = np.clip(1.0 - np.abs(rng.normal(0.0, 0.03, n)), 0.9, 1.0)

    # The cloudy frames.
    if isinstance(cloudy, int):
        pool = list(range(1, n - 1)) if n >= 3 else list(range(n))
        count = min(max(cloudy, 0), len(pool))
        cloudy_frames = sorted(int(k) for k in rng.choice(pool, size=count, replace=False))
    else:
        cloudy_frames = sorted({int(k) for k in cloudy if 0 <= int(k) < n})
    for k in cloudy_frames:
        transparency[k] = rng.uniform(0.15, 0.35)
        sky[k] *= rng.uniform(1.6, 2.5)
        fwhm[k] = min(4.5, fwhm[k] * 1.1)

    # Sky gradient and vignetting.
    gradient = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.08, 0.08)))
    vignetting = float(rng.uniform(0.10, 0.20))
    centre = (
        float((width - 1) / 2 + rng.normal(0.0, 0.03 * width)),
        float((height - 1) / 2 + rng.normal(0.0, 0.03 * height)),
    )
    plan = _Plan(
        shape=shape,
        n=n,
        exptime=exptime,
        cadence=cadence,
        t_start=t_start,
        gap_after=gap_after,
        gap_pause=gap_pause,
        jitter=jitter,
        fwhm=fwhm,
        elongation=elongation,
        angle=angle,
        sky=sky,
        transparency=transparency,
        cloudy=cloudy_frames,
        pattern=np.empty(0),
        vignetting=vignetting,
        vignetting_centre=centre,
        gradient=gradient,
        sky_base=sky_base,
        star_x=_EMPTY_F,
        star_y=_EMPTY_F,
        star_flux=_EMPTY_F,
        star_colour=np.empty((0, 3)),
        sky_colour=np.ones(3),
        object_colour=np.ones(3),
    )
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    plane = 1.0 + gradient[0] * (xs - (width - 1) / 2) / width
    plane += gradient[1] * (ys - (height - 1) / 2) / height
    mid = plan.vignette(np.array([(width - 1) / 2]), np.array([(height - 1) / 2]))[0]
    plan.pattern = plane * plan.vignette(xs, ys) / mid

    # Stars: a power law in flux down to a peak of twice the sky noise.
    margin = 8.0
    area = (width + 2 * margin) * (height + 2 * margin)
    n_stars = int(round(rng.uniform(800.0, 1500.0) * area / (1024 * 768)))
    star_x = rng.uniform(-margin, width + margin, n_stars)
    star_y = rng.uniform(-margin, height + margin, n_stars)
    noise = math.sqrt(sky_base / camera.gain_e_per_adu + camera.read_noise_adu**2)
    peak_fraction = plan.nominal_psf().peak_fraction
    full_well = camera.saturation_adu - camera.pedestal_adu
    f_min = 2.0 * noise / peak_fraction
    f_sat = full_well / peak_fraction
    flux = f_min * rng.uniform(0.0, 1.0, n_stars) ** (-1.0 / _STAR_COUNT_SLOPE)
    flux = np.minimum(flux, 300.0 * f_sat)
    vign = plan.vignette(star_x, star_y)
    # At least two stars saturate well, away from the edges.
    inner = np.nonzero(
        (star_x > 0.1 * width)
        & (star_x < 0.9 * width)
        & (star_y > 0.1 * height)
        & (star_y < 0.9 * height)
    )[0]
    for i in inner[np.argsort(-flux[inner], kind="stable")[:2]]:
        flux[i] = max(flux[i], rng.uniform(3.0, 10.0) * f_sat / vign[i])
    plan.star_x, plan.star_y = star_x, star_y
    plan.star_flux = flux * vign
    plan.star_colour = _star_colours(rng, n_stars)
    sky_colour = np.array([1.2, 1.0, 0.8]) * _QE
    plan.sky_colour = sky_colour / sky_colour.mean()
    object_colour = np.array([1.08, 1.0, 0.92]) * _QE
    plan.object_colour = object_colour / object_colour.mean()
    return plan


def _star_colours(rng: np.random.Generator, n_stars: int) -> NDArray[np.float64]:
    """Per-star weights of the red, green and blue planes (mean 1 per star), from a drawn
    B-V colour and the camera's relative sensitivity."""
    bv = np.clip(rng.normal(0.7, 0.35, n_stars), -0.3, 2.0) - 0.65
    colour = np.stack([1.0 + 0.4 * bv, np.ones(n_stars), np.clip(1.0 - 0.4 * bv, 0.2, None)], 1)
    colour *= _QE
    return colour / colour.mean(axis=1, keepdims=True)


def _place_linear(
    rng: np.random.Generator,
    velocity: NDArray[np.float64],
    t_lo: float,
    t_hi: float,
    t_ref: float,
    shape: tuple[int, int],
    margin: float,
    label: str,
    explicit: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A reference position that keeps the path on the image, slowing it if it cannot fit.

    Slowing an object whose rate (or streak length) was given as a number is logged as a
    warning; one drawn from a range, at debug level.
    """
    height, width = shape
    avail = np.array([width - 1 - 2 * margin, height - 1 - 2 * margin], dtype=np.float64)
    span = np.abs(velocity) * (t_hi - t_lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(span > 0, avail / np.where(span > 0, span, 1.0), np.inf)
    scale = float(min(1.0, ratio.min()))
    if scale < 1.0:
        scale *= 0.98
        logger.log(
            logging.WARNING if explicit else logging.DEBUG,
            "%s: its path does not fit on the image; rate reduced by a factor %.2f",
            label,
            scale,
        )
        velocity = velocity * scale
    d_lo = velocity * (t_lo - t_ref)
    d_hi = velocity * (t_hi - t_ref)
    dmin = np.minimum(d_lo, d_hi)
    dmax = np.maximum(d_lo, d_hi)
    low = margin - dmin
    high = np.array([width - 1 - margin, height - 1 - margin]) - dmax
    ref = np.array([rng.uniform(lo, max(lo, hi)) for lo, hi in zip(low, high, strict=True)])
    return ref, velocity


def _pick_frames(rng: np.random.Generator, plan: _Plan, n_frames: int, used: set[int]) -> int:
    """First frame of a run of ``n_frames`` consecutive clear frames, avoiding the gap."""
    n = plan.n
    n_frames = min(n_frames, n)
    cloudy = set(plan.cloudy)

    def ok(k0: int, strict: bool) -> bool:
        run = set(range(k0, k0 + n_frames))
        if run & cloudy:
            return False
        if plan.gap_after is not None and k0 <= plan.gap_after < k0 + n_frames - 1:
            return False
        if strict and (run & used or (n_frames == 1 and n >= 3 and k0 in (0, n - 1))):
            return False
        return True

    starts = list(range(0, n - n_frames + 1))
    for strict in (True, False):
        good = [k0 for k0 in starts if ok(k0, strict)]
        if good:
            return int(rng.choice(good))
    return int(rng.choice(starts))


def _resolve_objects(
    rng: np.random.Generator, specs: Sequence[ObjectSpec], plan: _Plan
) -> list[_Body]:
    """Draw every unset field of the specs: frames, positions, rates, directions."""
    counts: dict[str, int] = {}
    used: set[int] = set()  # frames taken by single-frame objects and streak tracks
    bodies: list[_Body] = []
    margin = float(min(3.0 * plan.fwhm.max() + 8.0, 0.2 * min(plan.shape)))
    for spec in specs:
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
        ident = spec.id or f"{spec.kind}_{counts[spec.kind]}"
        snr = _draw(rng, spec.snr, _DEFAULT_SNR[spec.kind])
        direction = (
            float(spec.direction_deg) % 360.0
            if spec.direction_deg is not None
            else float(rng.uniform(0.0, 360.0))
        )
        if spec.kind == "streak":
            body = _streak_body(rng, spec, plan, used, ident, snr, direction)
        elif spec.kind == "flash":
            body = _flash_body(rng, spec, plan, used, ident, snr, margin)
        else:
            body = _linear_body(rng, spec, plan, used, ident, snr, direction, margin)
        bodies.append(body)
    return bodies


def _unit(direction_deg: float) -> NDArray[np.float64]:
    return np.array([math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))])


def _linear_body(
    rng: np.random.Generator,
    spec: ObjectSpec,
    plan: _Plan,
    used: set[int],
    ident: str,
    snr: float,
    direction: float,
    margin: float,
) -> _Body:
    """A mover, slow mover or streak track: a straight line at a constant rate."""
    n = plan.n
    if spec.kind == "streak_track":
        count = min(n, _draw_int(rng, spec.n_frames, int(rng.integers(3, 6))))
        first = (
            spec.first_frame
            if spec.first_frame is not None
            else _pick_frames(rng, plan, count, used)
        )
        if spec.rate_px_per_frame is not None:
            rate = _draw(rng, spec.rate_px_per_frame, (0.0, 0.0))
        else:
            rate = _draw(rng, spec.length_px, (60.0, 200.0)) / plan.exptime * plan.cadence
    else:
        first = spec.first_frame if spec.first_frame is not None else 0
        count = _draw_int(rng, spec.n_frames, n - first)
        default = (0.5, 6.0) if spec.kind == "mover" else (0.15, 0.5)
        rate = _draw(rng, spec.rate_px_per_frame, default)
    first = min(max(int(first), 0), n - 1)
    frames = list(range(first, min(n, first + max(1, count))))
    if spec.kind == "streak_track":
        used.update(frames)
    velocity = _unit(direction) * rate / plan.cadence
    t_ref = float(plan.t_start[first] + plan.exptime / 2)
    if spec.start_xy is not None:
        ref = np.array(spec.start_xy, dtype=np.float64)
    else:
        t_lo = float(plan.t_start[frames[0]])
        t_hi = float(plan.t_start[frames[-1]] + plan.exptime)
        explicit = isinstance(spec.rate_px_per_frame, int | float) or isinstance(
            spec.length_px, int | float
        )
        ref, velocity = _place_linear(
            rng, velocity, t_lo, t_hi, t_ref, plan.shape, margin, ident, explicit
        )
    rate = float(np.hypot(*velocity)) * plan.cadence
    return _Body(ident, spec.kind, snr, frames, ref, velocity, t_ref, rate, direction)


def _flash_body(
    rng: np.random.Generator,
    spec: ObjectSpec,
    plan: _Plan,
    used: set[int],
    ident: str,
    snr: float,
    margin: float,
) -> _Body:
    """A point source in one clear frame."""
    height, width = plan.shape
    first = spec.first_frame if spec.first_frame is not None else _pick_frames(rng, plan, 1, used)
    used.add(first)
    if spec.start_xy is not None:
        ref = np.array(spec.start_xy, dtype=np.float64)
    else:
        ref = np.array(
            [rng.uniform(margin, width - 1 - margin), rng.uniform(margin, height - 1 - margin)]
        )
    t_ref = float(plan.t_start[first] + plan.exptime / 2)
    return _Body(ident, "flash", snr, [first], ref, np.zeros(2), t_ref, 0.0, None)


def _streak_body(
    rng: np.random.Generator,
    spec: ObjectSpec,
    plan: _Plan,
    used: set[int],
    ident: str,
    snr: float,
    direction: float,
) -> _Body:
    """A satellite crossing one clear frame: edge to edge, or most of the way."""
    height, width = plan.shape
    first = spec.first_frame if spec.first_frame is not None else _pick_frames(rng, plan, 1, used)
    used.add(first)
    unit = _unit(direction)
    if spec.start_xy is not None:
        centre = np.array(spec.start_xy, dtype=np.float64)
    else:
        centre = np.array(
            [rng.uniform(0.25, 0.75) * (width - 1), rng.uniform(0.25, 0.75) * (height - 1)]
        )
    t_lo, t_hi = _clip_line(centre[0], centre[1], unit[0], unit[1], width, height)
    if not t_lo < t_hi:
        raise ValueError(f"{ident}: a streak's start_xy must lie on the image, not {spec.start_xy}")
    if spec.length_px is not None:
        half = _draw(rng, spec.length_px, (0.0, 0.0)) / 2.0
        t_lo, t_hi = max(t_lo, -half), min(t_hi, half)
    elif rng.uniform() < 0.5:  # it fades into the Earth's shadow on the way
        cut = rng.uniform(0.1, 0.35) * (t_hi - t_lo)
        if rng.uniform() < 0.5:
            t_lo += cut
        else:
            t_hi -= cut
    x0, y0 = centre + unit * t_lo
    x1, y1 = centre + unit * t_hi
    if spec.rate_px_per_frame is not None:
        speed_min = _draw(rng, spec.rate_px_per_frame, (0.0, 0.0)) / plan.cadence * 60.0
    else:
        speed_min = float(rng.uniform(3000.0, 30000.0))
    return _Body(
        ident,
        "streak",
        snr,
        [first],
        centre + unit * (t_lo + t_hi) / 2,
        unit * speed_min / 60.0,
        float(plan.t_start[first] + plan.exptime / 2),
        speed_min / 60.0 * plan.cadence,
        direction,
        line=(float(x0), float(y0), float(x1), float(y1)),
    )


def _geometry(
    body: _Body, plan: _Plan, k: int, psf: _Psf, jitter: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], dict[str, float]]:
    """Sub-points of ``body`` in frame ``k``: x, y, weights, and its truth geometry."""
    spacing = min(_SUBSTEP_PX, psf.fwhm / 6.0)
    if body.line is not None:
        x0, y0, x1, y1 = body.line
        length = math.hypot(x1 - x0, y1 - y0)
        steps = max(1, math.ceil(length / spacing))
        s = (np.arange(steps) + 0.5) / steps
        xs = x0 + (x1 - x0) * s + jitter[0]
        ys = y0 + (y1 - y0) * s + jitter[1]
        weights = np.full(steps, length / steps)
        where = {
            "x": (x0 + x1) / 2 + jitter[0],
            "y": (y0 + y1) / 2 + jitter[1],
            "x0": x0 + jitter[0],
            "y0": y0 + jitter[1],
            "x1": x1 + jitter[0],
            "y1": y1 + jitter[1],
        }
        return xs, ys, weights, where
    t0 = float(plan.t_start[k])
    t1 = t0 + plan.exptime
    start = body.ref_xy + body.velocity * (t0 - body.t_ref) + jitter
    end = body.ref_xy + body.velocity * (t1 - body.t_ref) + jitter
    length = float(np.hypot(*(end - start)))
    steps = max(1, math.ceil(length / spacing)) if length > 0.05 else 1
    s = (np.arange(steps) + 0.5) / steps
    xs = start[0] + (end[0] - start[0]) * s
    ys = start[1] + (end[1] - start[1]) * s
    weights = np.full(steps, 1.0 / steps)
    where = {"x": (start[0] + end[0]) / 2, "y": (start[1] + end[1]) / 2}
    if body.kind != "flash":
        where.update({"x0": start[0], "y0": start[1], "x1": end[0], "y1": end[1]})
    return xs, ys, weights, where


def _object_stamps(
    body: _Body,
    plan: _Plan,
    k: int,
    psf: _Psf,
    jitter: NDArray[np.float64],
    scale: float,
) -> tuple[NDArray[np.int64], NDArray[np.float64], dict[str, float]]:
    xs, ys, weights, where = _geometry(body, plan, k, psf, jitter)
    fluxes = scale * weights * plan.vignette(xs, ys)
    idx, vals, _ = _render_points(xs, ys, fluxes, psf, psf.half(3.0) + 1, plan.shape)
    return idx, vals, where


def _add_stars(canvas: _Canvas, plan: _Plan, k: int, psf: _Psf, noise: float) -> None:
    """Draw the star field of frame ``k``, in stamps sized to each star's brightness.

    Faint stars need small stamps; bright ones need their wings (stamps up to 10 FWHM).
    """
    fluxes = plan.star_flux * plan.transparency[k]
    peaks = fluxes * psf.peak_fraction
    jitter = plan.jitter[k]
    for lo, hi, reach in ((0.0, 20.0, 2.5), (20.0, 500.0, 5.0), (500.0, np.inf, 10.0)):
        sel = np.nonzero((peaks >= lo * noise) & (peaks < hi * noise))[0]
        idx, vals, owner = _render_points(
            plan.star_x[sel] + jitter[0],
            plan.star_y[sel] + jitter[1],
            fluxes[sel],
            psf,
            psf.half(reach),
            plan.shape,
        )
        canvas.add(idx, vals, plan.star_colour[sel][owner] if canvas.planes > 1 else None)


def _add_object(
    canvas: _Canvas, body: _Body, plan: _Plan, k: int, psf: _Psf, camera: Camera
) -> dict[str, float] | None:
    """Draw ``body`` in frame ``k``; return its truth there (None when its centre is off)."""
    height, width = plan.shape
    scale = body.brightness * plan.transparency[k]
    idx, vals, where = _object_stamps(body, plan, k, psf, plan.jitter[k], scale)
    canvas.add(idx, vals, plan.object_colour)
    if not (0.0 <= where["x"] <= width - 1 and 0.0 <= where["y"] <= height - 1):
        return None
    peak, px, py = _peak(idx, vals, width)
    sky = plan.sky_at(float(plan.sky[k]), px, py)
    noise = math.sqrt(sky / camera.gain_e_per_adu + camera.read_noise_adu**2)
    entry = {"x": _r(where["x"], 3), "y": _r(where["y"], 3)}
    entry.update({"peak_adu": _r(peak, 2), "peak_snr": _r(peak / noise, 2)})
    for key in ("x0", "y0", "x1", "y1"):
        if key in where:
            entry[key] = _r(where[key], 3)
    return entry


def _add_cosmic_rays(
    canvas: _Canvas, rng: np.random.Generator, plan: _Plan
) -> list[tuple[int, int, float]]:
    """Sharp hits of one to three pixels, about four per minute on 1024x768.

    Returns each hit's first pixel and its charge in ADU.
    """
    height, width = plan.shape
    hits: list[tuple[int, int, float]] = []
    n_hits = int(rng.poisson(4.0 * plan.exptime / 60.0 * height * width / (1024 * 768)))
    for _ in range(n_hits):
        x = int(rng.integers(0, width))
        y = int(rng.integers(0, height))
        energy = float(np.clip(rng.lognormal(math.log(1500.0), 0.8), 300.0, 30000.0))
        xs, ys, charges = [x], [y], [energy]
        if rng.uniform() < 0.45:  # a grazing hit leaves a short track
            dx, dy = (int(v) for v in rng.integers(-1, 2, 2))
            dx = 1 if dx == 0 and dy == 0 else dx
            for step in (1, 2) if rng.uniform() < 0.35 else (1,):
                xs.append(x + step * dx)
                ys.append(y + step * dy)
                charges.append(energy * float(rng.uniform(0.2, 0.8)))
        xa, ya = np.array(xs), np.array(ys)
        keep = (xa >= 0) & (xa < width) & (ya >= 0) & (ya < height)
        canvas.add((ya * width + xa)[keep], np.array(charges)[keep])
        hits.append((x, y, energy))
    return hits


def _calibrate(bodies: list[_Body], plan: _Plan, camera: Camera) -> None:
    """Set each object's brightness from its requested S/N under nominal conditions."""
    psf = plan.nominal_psf()
    width = plan.shape[1]
    for body in bodies:
        idx, vals, _ = _object_stamps(body, plan, body.frames[0], psf, np.zeros(2), 1.0)
        peak, x, y = _peak(idx, vals, width)
        if peak <= 0.0:  # off the image: use the profile's own peak
            peak = psf.peak_fraction
            x, y = int(body.ref_xy[0]), int(body.ref_xy[1])
        sky = plan.sky_at(plan.sky_base, x, y)
        noise = math.sqrt(sky / camera.gain_e_per_adu + camera.read_noise_adu**2)
        body.brightness = body.snr * noise / peak


# --------------------------------------------------------------------------------------
# Pixels and files


def _noisy(
    rng: np.random.Generator,
    light: NDArray[np.float64],
    camera: Camera,
    saturated: NDArray[np.bool_],
    bad_columns: list[int],
    bad_offsets: list[float],
) -> NDArray[np.float64]:
    """Camera output in ADU from the light in ADU: shot and read noise, pedestal, clipping."""
    gain = camera.gain_e_per_adu
    adu = rng.poisson(light * gain).astype(np.float64)
    adu /= gain
    adu += rng.standard_normal(light.shape) * camera.read_noise_adu
    adu += camera.pedestal_adu
    for col, offset in zip(bad_columns, bad_offsets, strict=True):
        adu[:, col] += offset
    adu[saturated] = camera.saturation_adu
    np.rint(adu, out=adu)
    np.clip(adu, 0.0, 65535.0, out=adu)
    return adu


def _frame_data(
    planes: list[NDArray[np.float64]],
    variant: str,
    rgb_axis: str,
    camera: Camera,
    uint8_scale: float,
    normalised_floats: bool,
) -> tuple[NDArray[Any], float]:
    """The array to write for ``variant`` and the gain (electrons per stored unit)."""
    gain = camera.gain_e_per_adu
    if variant == "rgb":
        cube = np.stack(planes, axis=0 if rgb_axis == "first" else -1)
        return cube.astype(np.uint16), gain
    adu = planes[0]
    if variant == "uint8":
        counts = np.rint((adu - camera.pedestal_adu) / uint8_scale + 16.0)
        return np.clip(counts, 0, 255).astype(np.uint8), gain * uint8_scale
    if variant == "int32":
        return adu.astype(np.int32), gain
    if variant in ("float32", "float64"):
        dtype = np.float32 if variant == "float32" else np.float64
        if normalised_floats:
            return (adu / 65535.0).astype(dtype), gain * 65535.0
        return adu.astype(dtype), gain
    return adu.astype(np.uint16), gain


def _header(
    *,
    target: str,
    pointing: tuple[float, float],
    date_obs: str | None,
    exptime: float,
    camera: Camera,
    gain: float,
    variant: str,
    wcs: dict[str, Any] | None,
    jitter: NDArray[np.float64],
    index: int,
    mount: tuple[float, float] | None = None,
) -> fits.Header:
    from astropy.io import fits

    header = fits.Header()
    header["OBJECT"] = (target, "target of the session")
    header["IMAGETYP"] = ("Light Frame", "type of exposure")
    if date_obs is not None:
        header["DATE-OBS"] = (date_obs, "[UTC] start of exposure")
        # Consistent with DATE-OBS, so that astropy.wcs has nothing to "fix" (and warn about).
        header["MJD-OBS"] = (_r(_mjd(datetime.fromisoformat(date_obs)), 9), "[d] start of exposure")
    header["EXPTIME"] = (exptime, "[s] exposure time")
    header["INSTRUME"] = (camera.instrument, "camera")
    header["TELESCOP"] = (camera.telescope, "telescope")
    header["FOCALLEN"] = (camera.focal_length_mm, "[mm] focal length")
    header["XPIXSZ"] = (camera.pixel_size_um, "[um] pixel width")
    header["YPIXSZ"] = (camera.pixel_size_um, "[um] pixel height")
    header["XBINNING"] = (1, "binning along x")
    header["YBINNING"] = (1, "binning along y")
    header["GAIN"] = (_r(gain, 4), "[e-/ADU] electrons per data unit")
    header["EGAIN"] = (_r(gain, 4), "[e-/ADU] electrons per data unit")
    if mount is None:
        header["RA"] = (pointing[0], "[deg] pointing right ascension (J2000)")
        header["DEC"] = (pointing[1], "[deg] pointing declination (J2000)")
    else:  # where the mount says it points: a few arcminutes off, as real mounts are
        header["RA"] = (mount[0], "[deg] mount right ascension (J2000)")
        header["DEC"] = (mount[1], "[deg] mount declination (J2000)")
        header["OBJCTRA"] = (_sexagesimal(mount[0] / 15.0, 2, False), "[h m s] mount RA")
        header["OBJCTDEC"] = (_sexagesimal(mount[1], 1, True), "[d m s] mount Dec")
    if variant == "bayer":
        header["BAYERPAT"] = ("RGGB", "colour filter array pattern")
        header["XBAYROFF"] = (0, "x offset of the Bayer pattern")
        header["YBAYROFF"] = (0, "y offset of the Bayer pattern")
    if wcs is not None:
        if variant == "rgb":
            header["WCSAXES"] = (2, "the WCS describes the first two axes")
        for key, value in wcs.items():
            if key == "CRPIX1":
                value = _r(value + jitter[0], 4)
            elif key == "CRPIX2":
                value = _r(value + jitter[1], 4)
            header[key] = value
    header["FRAMENO"] = (index + 1, "number of the exposure in the session")
    header["SWCREATE"] = ("spacepixels.synth", "synthetic frame with ground truth")
    return header


def _write_frame(
    path: Path, data: NDArray[Any], header: fits.Header, compressed: bool, seed: int
) -> None:
    from astropy.io import fits

    if compressed:
        hdul = fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.CompImageHDU(
                    data, header=header, compression_type="RICE_1", dither_seed=1 + seed % 10000
                ),
            ]
        )
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=header)])
    _write_atomic(path, hdul.writeto)


def _wcs_cards(
    camera: Camera, shape: tuple[int, int], pointing: tuple[float, float], rotation: float
) -> dict[str, Any]:
    height, width = shape
    scale = camera.pixel_scale_arcsec / 3600.0
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return {
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CUNIT1": "deg",
        "CUNIT2": "deg",
        "CRVAL1": pointing[0],
        "CRVAL2": pointing[1],
        "CRPIX1": _r((width + 1) / 2, 4),
        "CRPIX2": _r((height + 1) / 2, 4),
        "CD1_1": float(f"{-scale * c:.10e}"),
        "CD1_2": float(f"{scale * s:.10e}"),
        "CD2_1": float(f"{scale * s:.10e}"),
        "CD2_2": float(f"{scale * c:.10e}"),
        "RADESYS": "ICRS",
        "EQUINOX": 2000.0,
    }


# --------------------------------------------------------------------------------------
# Real stars at a real pointing


def _camera_at_scale(camera: Camera, pixel_scale_arcsec: float) -> Camera:
    """The camera behind a lens whose focal length gives ``pixel_scale_arcsec``."""
    if not pixel_scale_arcsec > 0.0:
        raise ValueError(f"pixel_scale_arcsec must be positive, not {pixel_scale_arcsec}")
    focal = round(206.264806 * camera.pixel_size_um / float(pixel_scale_arcsec), 3)
    return dataclasses.replace(
        camera, focal_length_mm=focal, telescope=f"Synthetic {focal:.0f} mm lens"
    )


def _catalog_field_pointing(target: str) -> tuple[float, float]:
    """Centre of the star list's field named like ``target`` (e.g. ``ECL015``)."""
    from spacepixels import starlist

    for entry in starlist.star_list_fields():
        if _target_key(str(entry["name"])) == _target_key(target):
            return float(entry["ra_deg"]), float(entry["dec_deg"])
    names = ", ".join(str(entry["name"]) for entry in starlist.star_list_fields())
    raise ValueError(
        f"catalogue stars need a pointing: {target!r} is not a field of the star list "
        f"({names}); pass pointing=(ra, dec) inside one of them"
    )


def _sexagesimal(value: float, decimals: int, signed: bool) -> str:
    """``value`` (hours or degrees) as ``"DD MM SS.s"``, the way capture programs write
    ``OBJCTRA`` and ``OBJCTDEC``."""
    sign = "-" if value < 0 else "+"
    total = round(abs(value) * 3600.0, decimals)
    whole, rest = divmod(total, 3600.0)
    minutes, seconds = divmod(rest, 60.0)
    text = f"{int(whole):02d} {int(minutes):02d} {seconds:0{3 + decimals}.{decimals}f}"
    return sign + text if signed else text


def _position_angle_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Position angle (degrees east of north, 0-360) of point 2 seen from point 1."""
    a1, d1, a2, d2 = (math.radians(v) for v in (ra1, dec1, ra2, dec2))
    east = math.sin(a2 - a1) * math.cos(d2)
    north = math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(a2 - a1)
    return math.degrees(math.atan2(east, north)) % 360.0


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    a1, d1, a2, d2 = (math.radians(v) for v in (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((a2 - a1) / 2) ** 2
    return math.degrees(2.0 * math.asin(math.sqrt(min(1.0, h))))


@dataclass
class _Sky:
    """Where a session's pixels are on the sky: its nominal TAN WCS (without jitter)."""

    cards: dict[str, Any]
    wcs: Any  # astropy.wcs.WCS
    truth: dict[str, Any]
    mount: tuple[float, float] | None = None

    @classmethod
    def at(
        cls,
        camera: Camera,
        shape: tuple[int, int],
        pointing: tuple[float, float],
        rotation: float,
    ) -> _Sky:
        from astropy.io import fits
        from astropy.wcs import WCS

        cards = _wcs_cards(camera, shape, pointing, rotation)
        wcs = WCS(fits.Header(cards))
        height, width = shape
        sky = cls(cards, wcs, {})
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        ra0, dec0 = sky.world(cx, cy)
        ra1, dec1 = sky.world(cx, cy + 1.0)
        scale = camera.pixel_scale_arcsec
        sky.truth = {
            "wcs": cards,
            "centre": {"ra_deg": _r(ra0, 7), "dec_deg": _r(dec0, 7)},
            "pixel_scale_arcsec": _r(scale, 5),
            "rotation_deg": _r(_position_angle_deg(ra0, dec0, ra1, dec1), 4),
            "field_deg": [_r(width * scale / 3600.0, 4), _r(height * scale / 3600.0, 4)],
        }
        return sky

    def world(self, x: float, y: float) -> tuple[float, float]:
        """RA, Dec (degrees) of the 0-based pixel ``(x, y)`` before jitter."""
        ra, dec = self.wcs.pixel_to_world_values(x, y)
        return float(ra) % 360.0, float(dec)

    def pixels(
        self, ra: NDArray[np.float64], dec: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """0-based pixel positions (before jitter) of sky positions."""
        x, y = self.wcs.world_to_pixel_values(ra, dec)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def mount_pointing(self, rng: np.random.Generator) -> None:
        """Where the mount says it points (``RA``/``DEC``, ``OBJCTRA``/``OBJCTDEC``): the
        true centre plus a pointing error of 1-8 arcminutes in a random direction."""
        ra0 = self.truth["centre"]["ra_deg"]
        dec0 = self.truth["centre"]["dec_deg"]
        error = float(rng.uniform(1.0, 8.0)) / 60.0
        angle = math.radians(float(rng.uniform(0.0, 360.0)))
        dec = dec0 + error * math.cos(angle)
        ra = (ra0 + error * math.sin(angle) / math.cos(math.radians(dec0))) % 360.0
        self.mount = (_r(ra, 5), _r(dec, 5))
        self.truth["mount_pointing"] = {
            "ra_deg": self.mount[0],
            "dec_deg": self.mount[1],
            "error_arcmin": _r(_separation_deg(ra0, dec0, *self.mount) * 60.0, 3),
        }

    def add_object_truth(
        self, objects_truth: list[dict[str, Any]], bodies: list[_Body], plan: _Plan
    ) -> None:
        """Add RA/Dec to every position, and each object's sky rate and position angle.

        The rate is the great-circle distance between the object's places at the middle
        of its first and last exposure (or over one exposure, for a single frame) over
        the time between them, or over 200 px of its path around the middle for faster
        objects (satellites); the position angle is that of the motion at the start.
        """
        for entry, body in zip(objects_truth, bodies, strict=True):
            for position in entry["positions"]:
                jitter = plan.jitter[position["index"]]
                ra, dec = self.world(position["x"] - jitter[0], position["y"] - jitter[1])
                position["ra"] = _r(ra, 7)
                position["dec"] = _r(dec, 7)
            t1 = float(plan.t_start[body.frames[0]] + plan.exptime / 2.0)
            t2 = float(plan.t_start[body.frames[-1]] + plan.exptime / 2.0)
            if t2 - t1 < plan.exptime:  # one frame: over its exposure
                middle = (t1 + t2) / 2.0
                t1, t2 = middle - plan.exptime / 2.0, middle + plan.exptime / 2.0
            speed = float(np.hypot(*body.velocity))
            if speed * (t2 - t1) > 200.0:  # a satellite: its rate where it is, not 1000s of px
                middle = (t1 + t2) / 2.0
                t1, t2 = middle - 100.0 / speed, middle + 100.0 / speed
            p1 = body.ref_xy + body.velocity * (t1 - body.t_ref)
            p2 = body.ref_xy + body.velocity * (t2 - body.t_ref)
            if speed == 0.0:
                entry["rate_arcsec_per_min"] = 0.0
                entry["pa_deg"] = None
                continue
            ra1, dec1 = self.world(float(p1[0]), float(p1[1]))
            ra2, dec2 = self.world(float(p2[0]), float(p2[1]))
            distance = _separation_deg(ra1, dec1, ra2, dec2) * 3600.0
            entry["rate_arcsec_per_min"] = _r(distance / (t2 - t1) * 60.0, 5)
            entry["pa_deg"] = _r(_position_angle_deg(ra1, dec1, ra2, dec2), 4)


def _use_catalog_stars(
    plan: _Plan, camera: Camera, sky: _Sky, rng: np.random.Generator
) -> dict[str, Any]:
    """Replace the plan's random star field with the catalogue's stars, plus fainter ones.

    Every star of the shipped Tycho-2 list that falls on the frame (or just off it) is
    drawn at its true place, with a flux from its VT magnitude (:data:`CATALOG_PEAK_SNR_V11`
    sets the zero point); then as many random stars as the random field would hold, all
    fainter than the faintest catalogue star, with the same power law of brightness.
    """
    from spacepixels import starlist

    height, width = plan.shape
    scale_deg = camera.pixel_scale_arcsec / 3600.0
    margin = 8.0
    ra0 = sky.truth["centre"]["ra_deg"]
    dec0 = sky.truth["centre"]["dec_deg"]
    radius = (math.hypot(width, height) / 2.0 + margin + 2.0) * scale_deg
    stars = starlist.stars_near(ra0, dec0, radius, require_coverage=True)
    field = starlist.covering_field(ra0, dec0, radius)
    x, y = sky.pixels(np.asarray(stars["ra"]), np.asarray(stars["dec"]))
    near = (x >= -margin) & (x <= width - 1 + margin) & (y >= -margin) & (y <= height - 1 + margin)
    mags = np.asarray(stars["mag"], dtype=np.float64)
    mags = np.where(np.isfinite(mags), mags, 12.0)

    noise = math.sqrt(plan.sky_base / camera.gain_e_per_adu + camera.read_noise_adu**2)
    peak_fraction = plan.nominal_psf().peak_fraction
    flux_v11 = CATALOG_PEAK_SNR_V11 * noise / peak_fraction
    faintest = float(mags[near].max()) if near.any() else 12.0
    cat_flux = flux_v11 * 10.0 ** (-0.4 * (mags[near] - 11.0))

    area = (width + 2 * margin) * (height + 2 * margin)
    n_random = int(round(rng.uniform(800.0, 1500.0) * area / (1024 * 768)))
    f_min = 2.0 * noise / peak_fraction
    f_cap = max(f_min * 1.01, flux_v11 * 10.0 ** (-0.4 * (faintest - 11.0)))
    low = (f_cap / f_min) ** (-_STAR_COUNT_SLOPE)
    random_flux = f_min * (1.0 - rng.uniform(0.0, 1.0, n_random) * (1.0 - low)) ** (
        -1.0 / _STAR_COUNT_SLOPE
    )
    random_x = rng.uniform(-margin, width + margin, n_random)
    random_y = rng.uniform(-margin, height + margin, n_random)

    star_x = np.concatenate([x[near], random_x])
    star_y = np.concatenate([y[near], random_y])
    flux = np.concatenate([cat_flux, random_flux])
    plan.star_x, plan.star_y = star_x, star_y
    plan.star_flux = flux * plan.vignette(star_x, star_y)
    plan.star_colour = _star_colours(rng, star_x.size)

    on_image = near & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    listed = [
        [_r(ra, 7), _r(dec, 7), _r(mag, 3), _r(px, 3), _r(py, 3)]
        for ra, dec, mag, px, py in zip(
            np.asarray(stars["ra"])[on_image],
            np.asarray(stars["dec"])[on_image],
            mags[on_image],
            x[on_image],
            y[on_image],
            strict=True,
        )
    ]
    logger.debug("catalogue field %s: %d stars on the image", field, len(listed))
    return {
        "source": "Tycho-2 (Hog et al. 2000) through the astrometry.net index files; "
        "spacepixels.starlist",
        "field": field,
        "n_stars": len(listed),
        "n_random_stars": n_random,
        "faintest_mag": _r(faintest, 3),
        "peak_snr_at_mag_11": CATALOG_PEAK_SNR_V11,
        "stars": listed,  # [ra, dec, mag, x, y] of those on the image, before jitter
    }


def _catalog_field_names() -> list[str]:
    from spacepixels import starlist

    return [str(entry["name"]) for entry in starlist.star_list_fields()]


def _session_start(session_id: str, rng: np.random.Generator) -> datetime:
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})", Path(session_id).parts[0])
    night = DEFAULT_FIRST_NIGHT
    if match:
        try:
            night = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    minutes = int(rng.integers(0, 150))
    return datetime(night.year, night.month, night.day, 19, 30) + timedelta(minutes=minutes)


def make_session(
    out_dir: Path,
    session_id: str,
    *,
    seed: int,
    n_frames: int = 20,
    shape: tuple[int, int] = (768, 1024),
    variant: str = "uint16",
    objects: list[ObjectSpec] | None = None,
    camera: Camera | None = None,
    exptime: float | None = None,
    start: datetime | None = None,
    cloudy: int | Sequence[int] = 1,
    gap: bool | int = True,
    wcs: bool = True,
    rgb_axis: Literal["first", "last"] = "first",
    normalised_floats: bool = False,
    on_frame: Callable[[Path], None] | None = None,
    catalog: bool = False,
    pointing: tuple[float, float] | None = None,
    pixel_scale_arcsec: float | None = None,
    rotation_deg: float | None = None,
) -> dict[str, Any]:
    """Write the frames of one session and return its truth.

    Parameters
    ----------
    out_dir : Path
        Root of the tree of nights; frames go to ``out_dir / session_id``.
    session_id : str
        The session's id, e.g. ``"2026-03-14/M31"``. Its last part names the target (the
        ``OBJECT`` card and the file names); a first part ``YYYY-MM-DD`` sets the night.
    seed : int
        Seed of everything in the session (non-negative).
    n_frames : int
        Number of frames.
    shape : tuple of int
        ``(height, width)`` of the frames.
    variant : str
        One of :data:`VARIANTS`.
    objects : list of ObjectSpec, optional
        What to inject; default :func:`default_objects`. Pass ``[]`` for none.
    camera : Camera, optional
        The camera; default one drawn from ``seed``.
    exptime : float, optional
        Exposure in seconds; default 60, 90 or 120.
    start : datetime, optional
        Start of the first exposure (UTC, naive); default the night's evening.
    cloudy : int or sequence of int
        Number of cloudy frames drawn at random, or their 0-based indices.
    gap : bool or int
        Whether to pause (several exposures' length) once in the middle, or the 0-based
        index of the frame after which to pause.
    wcs : bool
        Write a TAN WCS at the target's pointing.
    rgb_axis : {"first", "last"}
        Axis order of the ``rgb`` variant: ``(3, H, W)`` or ``(H, W, 3)``.
    normalised_floats : bool
        Float variants hold ADU / 65535 (0-1) instead of ADU.
    on_frame : callable, optional
        Called with each frame's path once it is written (progress bars).
    catalog : bool
        Draw the real stars of the Tycho-2 catalogue at their true places (see "Real stars
        at a real pointing" in the module docstring), so that a plate solver recognises
        the field; the truth then holds a ``sky`` section.
    pointing : (float, float), optional
        RA and Dec (degrees, J2000) of the image centre; default the target's (from
        :data:`TARGETS`, or with ``catalog`` the star list's field of that name).
    pixel_scale_arcsec : float, optional
        Pixel scale; the camera's focal length is set to match. Default the camera's own,
        or :data:`CATALOG_PIXEL_SCALE_ARCSEC` with ``catalog``.
    rotation_deg : float, optional
        Rotation of the WCS (degrees); default drawn in -10..10.

    Returns
    -------
    dict
        The session's truth (schema in the module docstring).

    Raises
    ------
    ValueError
        For an unknown variant, a non-positive frame count or a frame too small; with
        ``catalog``, for a field the shipped star list does not cover.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if rgb_axis not in ("first", "last"):
        raise ValueError(f"rgb_axis must be 'first' or 'last', not {rgb_axis!r}")
    height, width = int(shape[0]), int(shape[1])
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, not {n_frames}")
    if height < 32 or width < 32:
        raise ValueError(f"frames must be at least 32x32 pixels, not {width}x{height}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, not {seed}")
    parts = Path(session_id).parts
    if not parts or Path(session_id).is_absolute() or ".." in parts:
        raise ValueError(f"session id must be a relative path inside the tree, not {session_id!r}")
    shape = (height, width)
    rng = np.random.default_rng([seed, 0])
    if camera is None:
        camera = Camera.random(np.random.default_rng([seed, 3]), defect_seed=seed)
    if pixel_scale_arcsec is None and catalog:
        pixel_scale_arcsec = CATALOG_PIXEL_SCALE_ARCSEC
    if pixel_scale_arcsec is not None:
        camera = _camera_at_scale(camera, pixel_scale_arcsec)
    target = Path(session_id).name or "target"
    named = TARGETS.get(_target_key(target))
    drawn = named
    if drawn is None:
        drawn = (
            _r(rng.uniform(0.0, 360.0), 4),
            _r(np.degrees(np.arcsin(rng.uniform(-0.5, 1.0))), 4),
        )
    rotation = float(rng.uniform(-10.0, 10.0))
    if rotation_deg is not None:
        rotation = float(rotation_deg)
    if pointing is not None:
        drawn = (float(pointing[0]), float(pointing[1]))
    elif catalog and named is None:
        drawn = _catalog_field_pointing(target)
    pointing = drawn
    begin = start if start is not None else _session_start(session_id, rng)

    plan = _plan_session(rng, shape, n_frames, camera, exptime, cloudy, gap)
    bodies = _resolve_objects(rng, default_objects() if objects is None else objects, plan)
    sky: _Sky | None = None
    if catalog:
        sky = _Sky.at(camera, shape, pointing, rotation)
        sky.truth["catalog"] = _use_catalog_stars(
            plan, camera, sky, np.random.default_rng([seed, 5])
        )
        sky.mount_pointing(np.random.default_rng([seed, 6]))
    _calibrate(bodies, plan, camera)
    hot_xy, hot_rate, bad_columns, bad_offsets = camera.defects(shape)
    hot_flat = hot_xy[:, 1] * width + hot_xy[:, 0]
    full_well = camera.saturation_adu - camera.pedestal_adu
    base_noise = math.sqrt(plan.sky_base / camera.gain_e_per_adu + camera.read_noise_adu**2)
    uint8_scale = _r(max(1.0, base_noise / 2.0), 3)
    wcs_cards = (
        _wcs_cards(camera, shape, pointing, rotation)
        if wcs and not (variant == "rgb" and rgb_axis == "last")
        else None
    )
    nominal_peak = plan.star_flux * plan.nominal_psf().peak_fraction
    saturated_stars = [
        [_r(x, 2), _r(y, 2)]
        for x, y, peak in zip(plan.star_x, plan.star_y, nominal_peak, strict=True)
        if peak > full_well and 0 <= x < width and 0 <= y < height
    ]

    suffix = ".fits.fz" if variant == "fz" else ".fits"
    names = [f"{target}_{k + 1:04d}{suffix}" for k in range(n_frames)]
    folder = Path(out_dir) / session_id
    folder.mkdir(parents=True, exist_ok=True)
    planes = 3 if variant in ("rgb", "bayer") else 1
    frames_truth: list[dict[str, Any]] = []
    cosmic_truth: list[dict[str, Any]] = []

    for k in range(n_frames):
        psf = plan.psf(k)
        jitter = plan.jitter[k]
        moment = begin + timedelta(seconds=float(plan.t_start[k]))
        date_obs = moment.isoformat(timespec="milliseconds")
        mjd_start = _mjd(moment)
        mjd_mid = mjd_start + plan.exptime / 2.0 / 86400.0

        canvas = _Canvas(shape, planes)
        _add_stars(canvas, plan, k, psf, base_noise)
        for body in bodies:
            if k in body.frames:
                entry = _add_object(canvas, body, plan, k, psf, camera)
                if entry is not None:
                    body.positions.append({"frame": names[k], "index": k, "mjd": _r(mjd_mid, 9)})
                    body.positions[-1].update(entry)
        for x, y, adu in _add_cosmic_rays(canvas, np.random.default_rng([seed, 2, k]), plan):
            cosmic_truth.append({"frame": names[k], "x": x, "y": y, "adu": _r(adu, 1)})
        canvas.add(hot_flat, hot_rate * plan.exptime)  # dark current, with its shot noise

        light = canvas.images()
        for p, image in enumerate(light):
            image += plan.pattern * (plan.sky[k] * (plan.sky_colour[p] if planes > 1 else 1.0))
        if variant == "bayer":
            mosaic = np.empty(shape)
            for dy, dx, p in _RGGB:
                mosaic[dy::2, dx::2] = light[p][dy::2, dx::2]
            light = [mosaic]
        noise_rng = np.random.default_rng([seed, 1, k])
        adu_planes = []
        for image in light:
            saturated = _bleed(image, full_well)
            adu_planes.append(_noisy(noise_rng, image, camera, saturated, bad_columns, bad_offsets))
        data, gain = _frame_data(
            adu_planes, variant, rgb_axis, camera, uint8_scale, normalised_floats
        )

        header = _header(
            target=target,
            pointing=pointing,
            date_obs=None if variant == "nodate" else date_obs,
            exptime=plan.exptime,
            camera=camera,
            gain=gain,
            variant=variant,
            wcs=wcs_cards,
            jitter=jitter,
            index=k,
            mount=None if sky is None else sky.mount,
        )
        path = folder / names[k]
        _write_frame(path, data, header, variant == "fz", seed)
        frames_truth.append(
            {
                "file": names[k],
                "index": k,
                "date_obs": date_obs,
                "mjd_start": _r(mjd_start, 9),
                "mjd_mid": _r(mjd_mid, 9),
                "exptime": plan.exptime,
                "jitter_dx": _r(jitter[0], 4),
                "jitter_dy": _r(jitter[1], 4),
                "fwhm": _r(psf.fwhm, 3),
                "elongation": _r(psf.elongation, 3),
                "psf_angle_deg": _r(psf.angle_deg, 2),
                "sky_adu": _r(plan.sky[k], 2),
                "transparency": _r(plan.transparency[k], 3),
                "degraded": k in plan.cloudy,
                "variant": variant,
            }
        )
        logger.debug("wrote %s", path)
        if on_frame is not None:
            on_frame(path)

    objects_truth = []
    for body in bodies:
        rate_min = body.rate_px_per_frame / plan.cadence * 60.0
        objects_truth.append(
            {
                "id": body.id,
                "kind": body.kind,
                "snr": _r(body.snr, 2),
                "brightness_adu": _r(body.brightness, 2),
                "rate_px_per_frame": _r(body.rate_px_per_frame, 4),
                "rate_px_per_min": _r(rate_min, 4),
                "direction_deg": None if body.direction_deg is None else _r(body.direction_deg, 3),
                "frames": [names[k] for k in body.frames],
                "positions": body.positions,
            }
        )
    if sky is not None:
        sky.add_object_truth(objects_truth, bodies, plan)
    logger.info("session %s: %d frames (%s) in %s", session_id, n_frames, variant, folder)
    truth = {
        "session_id": session_id,
        "target": target,
        "pointing": {"ra_deg": pointing[0], "dec_deg": pointing[1]},
        "seed": seed,
        "variant": variant,
        "shape": [height, width],
        "n_frames": n_frames,
        "exptime": plan.exptime,
        "cadence_s": _r(plan.cadence, 3),
        "gap": None
        if plan.gap_after is None
        else {
            "after_frame": names[plan.gap_after],
            "after_index": plan.gap_after,
            "pause_s": plan.gap_pause,
        },
        "camera": camera.to_truth(),
        "sky": {
            "level_adu": _r(plan.sky_base, 2),
            "gradient_x": _r(plan.gradient[0], 4),
            "gradient_y": _r(plan.gradient[1], 4),
            "vignetting": _r(plan.vignetting, 4),
            "vignetting_centre": [
                _r(plan.vignetting_centre[0], 2),
                _r(plan.vignetting_centre[1], 2),
            ],
        },
        "uint8": {"scale_adu_per_count": uint8_scale, "offset_counts": 16.0}
        if variant == "uint8"
        else None,
        "n_stars": int(plan.star_x.size),
        "saturated_stars": saturated_stars,
        "frames": frames_truth,
        "objects": objects_truth,
        "hot_pixels": [[int(x), int(y)] for x, y in hot_xy],
        "bad_columns": bad_columns,
        "bad_column_offsets_adu": bad_offsets,
        "cosmic_rays": cosmic_truth,
        "cloudy_frames": [names[k] for k in plan.cloudy],
        "wcs": wcs_cards,
    }
    if sky is not None:
        truth["astrometry"] = sky.truth
    return truth


def _session_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_night_tree(
    out: Path,
    *,
    seed: int,
    nights: int = 2,
    sessions_per_night: int | Sequence[int] = 1,
    n_frames: int = 20,
    shape: tuple[int, int] = (768, 1024),
    variant: str | Sequence[str] = "uint16",
    progress: bool = False,
    objects: list[ObjectSpec] | None = None,
    first_night: date = DEFAULT_FIRST_NIGHT,
    exptime: float | None = None,
    wcs: bool = True,
    rgb_axis: Literal["first", "last"] = "first",
    normalised_floats: bool = False,
    overwrite: bool = False,
    catalog: bool = False,
    pixel_scale_arcsec: float | None = None,
) -> Path:
    """Write a tree of nights under ``out/nights`` and its truth to ``out/truth.json``.

    Parameters
    ----------
    out : Path
        Output folder; it may exist, but ``out/nights`` must not hold anything unless
        ``overwrite`` is set.
    seed : int
        Seed of the whole tree (non-negative).
    nights : int
        Number of consecutive nights, from ``first_night``.
    sessions_per_night : int or sequence of int
        Sessions (targets) per night, or one count per night (cycled).
    n_frames : int
        Frames per session.
    shape : tuple of int
        ``(height, width)`` of the frames.
    variant : str or sequence of str
        One variant for every session, or one per session in order (cycled).
    progress : bool
        Show a progress bar on stderr.
    objects : list of ObjectSpec, optional
        What to inject in every session; default :func:`default_objects`.
    first_night : datetime.date
        Date of the first night.
    exptime : float, optional
        Exposure in seconds; default drawn per session (60, 90 or 120).
    wcs : bool
        Write TAN WCS cards.
    rgb_axis : {"first", "last"}
        Axis order of ``rgb`` frames.
    normalised_floats : bool
        Float variants hold ADU / 65535.
    overwrite : bool
        Replace an earlier tree in ``out`` (only one with a ``truth.json`` beside it).
    catalog : bool
        Draw the real Tycho-2 stars at each target's true pointing (see
        :func:`make_session`); sessions beyond the named targets of a night go to the
        star list's ecliptic fields.
    pixel_scale_arcsec : float, optional
        Pixel scale of every session; default the camera's, or
        :data:`CATALOG_PIXEL_SCALE_ARCSEC` with ``catalog``.

    Returns
    -------
    Path
        The truth file, ``out/truth.json``.

    Raises
    ------
    FileExistsError
        When ``out/nights`` is not empty and ``overwrite`` is not set, or does not look
        like a synthetic tree.
    ValueError
        For an unknown variant or bad counts.
    """
    from tqdm import tqdm

    out = Path(out)
    variants = [variant] if isinstance(variant, str) else list(variant)
    if not variants:
        raise ValueError("variant must name at least one variant")
    for name in variants:
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    per_night = (
        [sessions_per_night] if isinstance(sessions_per_night, int) else list(sessions_per_night)
    )
    if nights < 1 or not per_night or min(per_night) < 1:
        raise ValueError("nights and sessions_per_night must be at least 1")
    nights_dir = out / "nights"
    truth_path = out / "truth.json"
    if nights_dir.exists() and any(nights_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{nights_dir} is not empty; choose another folder, "
                "or allow overwriting (--overwrite)"
            )
        if not truth_path.exists():
            raise FileExistsError(
                f"{nights_dir} has no truth.json beside it, so it is not a synthetic tree; "
                "refusing to delete it"
            )
        shutil.rmtree(nights_dir)

    rng = np.random.default_rng([seed, 1000])
    camera = Camera.random(np.random.default_rng([seed, 1001]), defect_seed=seed)
    names = list(TARGETS)
    plan: list[tuple[str, int]] = []
    for night in range(nights):
        count = per_night[night % len(per_night)]
        day = (first_night + timedelta(days=night)).isoformat()
        picks = rng.choice(len(names), size=min(count, len(names)), replace=False)
        targets = [names[int(i)] for i in picks]
        spare = [f"FIELD{i + 1}" for i in range(count - len(targets))]
        if catalog:
            extra = [name for name in _catalog_field_names() if _target_key(name) not in TARGETS]
            spare = [extra[i % len(extra)] for i in range(count - len(targets))] if extra else []
        targets += spare
        plan.extend((f"{day}/{target}", night) for target in targets)

    sessions: dict[str, Any] = {}
    total = len(plan) * n_frames
    with tqdm(total=total, disable=not progress, unit="frame", desc="synth") as bar:
        previous_end: datetime | None = None
        previous_night = -1
        for index, (session_id, night) in enumerate(plan):
            sub_seed = _session_seed(seed, index)
            if night != previous_night or previous_end is None:
                day = first_night + timedelta(days=night)
                start = datetime(day.year, day.month, day.day, 19, 30) + timedelta(
                    minutes=int(rng.integers(0, 120))
                )
            else:
                start = previous_end + timedelta(minutes=int(rng.integers(5, 30)))
            truth = make_session(
                nights_dir,
                session_id,
                seed=sub_seed,
                n_frames=n_frames,
                shape=shape,
                variant=variants[index % len(variants)],
                objects=objects,
                camera=camera,
                exptime=exptime,
                start=start,
                wcs=wcs,
                rgb_axis=rgb_axis,
                normalised_floats=normalised_floats,
                on_frame=lambda _path: bar.update(1),
                catalog=catalog,
                pixel_scale_arcsec=pixel_scale_arcsec,
            )
            last = truth["frames"][-1]
            previous_end = datetime.fromisoformat(last["date_obs"]) + timedelta(
                seconds=last["exptime"]
            )
            previous_night = night
            sessions[session_id] = truth

    document = {
        "schema": TRUTH_SCHEMA,
        "seed": seed,
        "layout": "nights/<YYYY-MM-DD>/<target>/<target>_<NNNN>.fits",
        "frames_root": "nights",
        "shape": [int(shape[0]), int(shape[1])],
        "n_frames": n_frames,
        "variants": variants,
        "camera": camera.to_truth(),
        "sessions": sessions,
    }
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    _write_atomic(truth_path, lambda handle: handle.write(text.encode("utf-8")))
    logger.info("wrote %d sessions to %s and the truth to %s", len(plan), nights_dir, truth_path)
    return truth_path


def make_demo_tree(
    out: Path,
    *,
    seed: int = DEMO_SEED,
    progress: bool = False,
    overwrite: bool = False,
    catalog: bool = False,
    wcs: bool = True,
) -> Path:
    """Make the project's demo: two nights of 16 frames of 1024x768, all object kinds.

    The first night has two sessions, the second one; every session holds three movers, a
    slow mover, a satellite streak, a streak track, a flash, a cloudy frame and a gap.
    With ``catalog=True`` the stars are the real ones at each target's pointing, at
    :data:`CATALOG_PIXEL_SCALE_ARCSEC` (2.0 x 1.5 degrees), so that ``solve-field`` solves
    the frames offline; with ``wcs=False`` the frames carry no WCS, only the mount's
    pointing and the optics (``RA``/``DEC``, ``OBJCTRA``/``OBJCTDEC``, ``FOCALLEN``,
    ``XPIXSZ``, ``XBINNING``), so a solver has to find it.

    Parameters
    ----------
    out : Path
        Output folder (``out/nights`` and ``out/truth.json``).
    seed : int
        Seed; the default gives the project's demo.
    progress : bool
        Show a progress bar on stderr.
    overwrite : bool
        Replace an earlier demo in ``out``.
    catalog : bool
        Real stars at real pointings.
    wcs : bool
        Write TAN WCS cards to the headers.

    Returns
    -------
    Path
        The truth file.
    """
    return make_night_tree(
        out,
        seed=seed,
        nights=2,
        sessions_per_night=(2, 1),
        n_frames=16,
        shape=(768, 1024),
        progress=progress,
        overwrite=overwrite,
        catalog=catalog,
        wcs=wcs,
    )


def read_truth(path: Path) -> dict[str, Any]:
    """Read a truth file written by :func:`make_night_tree`.

    Parameters
    ----------
    path : Path
        The ``truth.json`` file.

    Returns
    -------
    dict
        The truth (schema in the module docstring).
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))
