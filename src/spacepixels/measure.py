"""The session's public catalogues: ``candidates.ecsv`` and ``detections.ecsv``.

These two files are what users, other tools, the tests and the benchmarks read (see the
output contract in DESIGN.md). The linker's tables are in pixel coordinates and MJD; this
stage adds what a person reads directly, and keeps every column of the contract in a fixed
order (:data:`CANDIDATE_COLUMNS`, :data:`DETECTION_COLUMNS`), whatever the linker adds.

What it adds, and how:

**Times.** ``utc_start``, ``utc_end``: the first and last detection's mid-exposure as ISO
UTC strings.

**Sky positions.** The plate solution (``solve/wcs.fits``: a header holding the reference
frame's celestial WCS, TAN with or without SIP or TPV distortion) is read with astropy and
every pixel position is sent through the *full* transformation (``WCS.all_pix2world``,
distortions included, origin 0 because our pixel coordinates are 0-based with ``x`` the
column). The frames are aligned to the reference, so one WCS serves them all. Detections
get ``ra``, ``dec`` (and ``ra0, dec0, ra1, dec1`` for a streak's ends); candidates get
``ra_start, dec_start`` and ``ra_end, dec_end`` from the start and end of their fitted
track (for streaks: the start of the first streak and the end of the last).

**Sky rate and direction.** ``rate_arcsec_per_min`` is the great-circle separation of the
start and end positions over the time between them, and ``pa_deg`` the position angle of
the motion (astropy's ``SkyCoord.position_angle``: east of north, 0-360) from start to
end. Measured on the sky, not through a pixel scale, so field distortion and rotation
cannot bias them. For point tracks the time is ``mjd_end - mjd_start`` (both
mid-exposure). A streak starts at the beginning of its first exposure and ends at the end
of its last, so its time is that plus one exposure (``EXPTIME``/``EXPOSURE`` of the
reference header; without one, the exposure the linker's own pixel rate implies). A single
``streak`` has no arrow of time: its ``pa_deg`` may be 180 degrees off. A flash
(``anomaly``) has no measured motion: NaN. In a session linked by frame order (no usable
times) the rate is NaN, the direction still measured, and there are no look-up links.

**Sidereal rate.** A geostationary satellite stands still in the sky of the observer
(fixed azimuth and altitude), so in frames tracked on the stars it drifts eastwards at the
Earth's rotation rate: its hour angle is fixed, so its right ascension grows with the
sidereal time. On the sky that is 15.041 arcsec/s x cos(dec) at position angle 90 degrees
(east). ``sidereal_rate`` is True for a track, streak track or streak whose sky rate is
within ``sidereal_tolerance`` (a fraction) of that rate and whose direction is within
``sidereal_pa_tolerance_deg`` of east (either way along a single streak).

**Observatory and look-up links.** The site comes from the configuration or the reference
header (:mod:`spacepixels.site`); the links from :mod:`spacepixels.lookup`, as a JSON
object ``{service: url}`` in the ``links`` column: Stellarium Web for every candidate with a
time; JPL SB Identification, SkyBoT and the MPC checker for tracks and slow movers;
SatChecker for streaks, streak tracks, flashes (satellite glints), tracks faster than
``satellite_min_rate_arcsec_per_min`` and tracks at the sidereal rate. Each is asked about
the candidate's middle position at its middle time, in a radius of
``lookup_radius_arcmin`` (or more, to cover the candidate's own motion).

**Unsolved sessions.** Without a usable solution (no ``wcs.fits``, ``solve.json`` status
other than ``solved``, a WCS without celestial axes) every sky column is still written,
as NaN (``sidereal_rate`` False, links only to Stellarium Web at the time and place), and
the table metadata ``sky`` says why.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from numpy.typing import NDArray

from spacepixels.link import CONTRACT_CANDIDATE_COLUMNS, CONTRACT_DETECTION_COLUMNS
from spacepixels.lookup import SERVICES, candidate_links
from spacepixels.settings import section_values
from spacepixels.site import Site, observatory_location, parse_mpc_code
from spacepixels.times import exposure_seconds, mjd_to_iso

__all__ = [
    "CANDIDATE_COLUMNS",
    "DETECTION_COLUMNS",
    "SIDEREAL_RATE_ARCSEC_PER_S",
    "SIDEREAL_PA_DEG",
    "SKY_CANDIDATE_COLUMNS",
    "SKY_DETECTION_COLUMNS",
    "MeasureSettings",
    "SkySolution",
    "load_solution",
    "pixel_to_sky",
    "publish",
]

logger = logging.getLogger(__name__)

_LINK_CANDIDATE_COLUMNS = CONTRACT_CANDIDATE_COLUMNS
"""The contract's candidate columns the linker writes."""

SKY_CANDIDATE_COLUMNS: tuple[str, ...] = (
    "ra_start",
    "dec_start",
    "ra_end",
    "dec_end",
    "rate_arcsec_per_min",
    "pa_deg",
    "sidereal_rate",
    "links",
)
"""Candidate columns this stage adds from the plate solution (NaN/False/"{}" unsolved)."""

CANDIDATE_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "n_frames",
    "mjd_start",
    "mjd_end",
    "utc_start",
    "utc_end",
    "x_start",
    "y_start",
    "x_end",
    "y_end",
    "rate_px_per_min",
    "direction_deg",
    "snr_median",
    "score",
    *SKY_CANDIDATE_COLUMNS,
)
"""The contract's candidate columns, in order; the linker's other columns follow them.

``ra_start, dec_start, ra_end, dec_end`` (deg, ICRS), ``rate_arcsec_per_min`` (sky rate),
``pa_deg`` (position angle of the motion, east of north, 0-360), ``sidereal_rate``
(bool), ``links`` (JSON object ``{service: url}``, services in
:data:`spacepixels.lookup.SERVICES`)."""

_LINK_DETECTION_COLUMNS = CONTRACT_DETECTION_COLUMNS
"""The contract's detection columns the linker writes."""

SKY_DETECTION_COLUMNS: tuple[str, ...] = ("ra", "dec", "ra0", "dec0", "ra1", "dec1")
"""Detection columns this stage adds: the position and a streak's ends on the sky (deg)."""

DETECTION_COLUMNS: tuple[str, ...] = (*_LINK_DETECTION_COLUMNS, *SKY_DETECTION_COLUMNS)
"""The contract's detection columns, in order (``x0 .. y1``: a streak's end points;
``ra, dec``: the position on the sky; ``ra0 .. dec1``: a streak's ends on the sky, NaN for
point sources)."""

SIDEREAL_RATE_ARCSEC_PER_S = 15.041067
"""The Earth's rotation relative to the stars (360 degrees per sidereal day of 86164.09 s),
in arcsec per SI second: the drift, times cos(dec), of an object fixed in azimuth and
altitude through frames tracked on the stars."""

SIDEREAL_PA_DEG = 90.0
"""Direction of that drift: east (right ascension grows with the sidereal time)."""

_POINT_KINDS = ("track", "slow_mover")
_STREAK_KINDS = ("streak", "streak_track")
_SIDEREAL_KINDS = ("track", "streak_track", "streak")


@dataclass(frozen=True)
class MeasureSettings:
    """Settings of the measure stage.

    Attributes
    ----------
    sidereal_tolerance : float
        Largest relative difference between a candidate's sky rate and the sidereal rate
        at its declination for ``sidereal_rate`` (default 0.05, i.e. 5 %).
    sidereal_pa_tolerance_deg : float
        Largest difference (deg) between its direction and east (PA 90) for
        ``sidereal_rate`` (default 10; inclined geostationary orbits drift a few degrees
        off east).
    site_lat_deg, site_lon_deg : float or None
        The observatory's latitude and **east** longitude (deg); both or neither. When set
        they win over the headers. Default None: read the headers.
    site_height_m : float or None
        The observatory's height (m); default None (the header's, else unknown).
    mpc_code : str or None
        The observatory's MPC code (e.g. ``"J95"``), given to the small-body services
        instead of coordinates. Default None.
    header_longitude : str
        How a header longitude without hemisphere letter or telling comment counts:
        ``"east"`` (default; N.I.N.A., SGP, MaxIm DL, ASCOM) or ``"west"`` (IRAF-style
        software that counts degrees west of Greenwich).
    lookup_radius_arcmin : float
        Search radius of the look-up links (arcmin, default 5); a candidate that moved
        further than that gets 0.6 of its own motion.
    satellite_min_rate_arcsec_per_min : float
        Point tracks at least this fast (arcsec/min, default 60: faster than nearly every
        asteroid, slower than any satellite but the most distant) also get a SatChecker
        link.
    lookup_limit_mag : float
        Faintest V magnitude asked of JPL and the MPC checker (default 22).
    """

    sidereal_tolerance: float = 0.05
    sidereal_pa_tolerance_deg: float = 10.0
    site_lat_deg: float | None = None
    site_lon_deg: float | None = None
    site_height_m: float | None = None
    mpc_code: str | None = None
    header_longitude: str = "east"
    lookup_radius_arcmin: float = 5.0
    satellite_min_rate_arcsec_per_min: float = 60.0
    lookup_limit_mag: float = 22.0

    def __post_init__(self) -> None:
        def number(name: str, low: float, high: float, optional: bool = False) -> None:
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"measure setting {name} must be a number, not {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"measure setting {name} must be in [{low}, {high}], not {value}")
            object.__setattr__(self, name, float(value))

        number("sidereal_tolerance", 1e-6, 1.0)
        number("sidereal_pa_tolerance_deg", 1e-6, 180.0)
        number("site_lat_deg", -90.0, 90.0, optional=True)
        number("site_lon_deg", -360.0, 360.0, optional=True)
        number("site_height_m", -500.0, 10000.0, optional=True)
        number("lookup_radius_arcmin", 1e-3, 600.0)
        number("satellite_min_rate_arcsec_per_min", 0.0, math.inf)
        number("lookup_limit_mag", -30.0, 40.0)
        if (self.site_lat_deg is None) != (self.site_lon_deg is None):
            raise ValueError("measure settings: set both site_lat_deg and site_lon_deg, or neither")
        if self.header_longitude not in ("east", "west"):
            raise ValueError(
                f"measure setting header_longitude must be 'east' or 'west', "
                f"not {self.header_longitude!r}"
            )
        if self.mpc_code is not None:
            object.__setattr__(self, "mpc_code", parse_mpc_code(self.mpc_code))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> MeasureSettings:
        """Settings from a mapping (the config's ``measure:`` section).

        Parameters
        ----------
        values : mapping or None
            Keys are the attribute names; missing keys take the defaults.

        Returns
        -------
        MeasureSettings

        Raises
        ------
        ValueError
            Naming any unknown key, or a value out of range.
        """
        return cls(**section_values(cls, values, "measure"))

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass(frozen=True)
class SkySolution:
    """The plate solution as measure uses it.

    Attributes
    ----------
    wcs : astropy.wcs.WCS or None
        The celestial WCS (2 axes), None when unsolved.
    status : str
        ``"solved"``, or why not: ``"unsolved"`` / ``"failed"`` (from ``solve.json``),
        ``"missing"`` (no WCS file), ``"invalid"`` (a WCS that cannot be used).
    reason : str
        One sentence for the report and the table metadata.
    method : str or None
        The solve method ``solve.json`` names.
    header : astropy.io.fits.Header or None
        The WCS file's header (it may carry the site).
    """

    wcs: Any
    status: str
    reason: str
    method: str | None = None
    header: fits.Header | None = None

    @property
    def solved(self) -> bool:
        """Whether sky positions can be computed."""
        return self.wcs is not None


def _read_solve_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        logger.warning("cannot read %s (%s); judging the WCS by itself", path, error)
        return None
    if not isinstance(data, dict):
        logger.warning("%s is not a JSON object; judging the WCS by itself", path)
        return None
    return data


def load_solution(
    wcs_path: str | os.PathLike[str] | None, solve_json: str | os.PathLike[str] | None = None
) -> SkySolution:
    """Read the plate solution, or say why there is none.

    Parameters
    ----------
    wcs_path : path-like or None
        ``solve/wcs.fits``: a FITS file whose primary header holds the celestial WCS.
    solve_json : path-like or None
        ``solve/solve.json``; its ``status`` must be ``"solved"`` for the WCS to be used.
        Without it a WCS with celestial axes is used as it is.

    Returns
    -------
    SkySolution
    """
    from astropy.wcs import WCS, FITSFixedWarning

    report = _read_solve_json(Path(solve_json)) if solve_json is not None else None
    method = None if report is None else report.get("method")
    if report is not None and report.get("status") != "solved":
        status = str(report.get("status") or "unsolved")
        message = str(report.get("message") or "").strip()
        reason = f"plate solving {status}" + (f": {message}" if message else "")
        return SkySolution(None, status if status == "failed" else "unsolved", reason, method)
    if wcs_path is None or not Path(wcs_path).is_file():
        where = "no WCS given" if wcs_path is None else f"no WCS file {Path(wcs_path).name}"
        return SkySolution(None, "missing", f"not plate solved ({where})", method)
    try:
        header = fits.getheader(wcs_path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FITSFixedWarning)
            wcs = WCS(header)
        for item in caught:
            logger.debug("WCS of %s: %s", Path(wcs_path).name, item.message)
    except Exception as error:  # astropy raises many kinds for a broken WCS
        return SkySolution(
            None, "invalid", f"the WCS in {Path(wcs_path).name} cannot be read: {error}", method
        )
    if not wcs.has_celestial:
        return SkySolution(
            None, "invalid", f"{Path(wcs_path).name} holds no celestial WCS", method, header
        )
    celestial = wcs.celestial
    kind = "SIP" if celestial.sip is not None else ""
    if "TPV" in str(header.get("CTYPE1", "")):  # wcslib turns TPV into TAN + distortion
        kind = "TPV"
    reason = f"plate solved ({method or 'WCS given'}{', ' + kind if kind else ''})"
    return SkySolution(celestial, "solved", reason, method, header)


def pixel_to_sky(
    solution: SkySolution, x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """RA and Dec (deg) of 0-based pixel positions through the full WCS.

    Parameters
    ----------
    solution : SkySolution
        The plate solution; unsolved gives NaN everywhere.
    x, y : array
        Pixel positions, 0-based, ``x`` the column; NaN where unknown.

    Returns
    -------
    ra, dec : array
        RA in [0, 360) and Dec (deg), NaN where the input or the solution is missing.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ra = np.full(x.shape, np.nan)
    dec = np.full(x.shape, np.nan)
    if not solution.solved:
        return ra, dec
    good = np.isfinite(x) & np.isfinite(y)
    if good.any():
        world_ra, world_dec = solution.wcs.all_pix2world(x[good], y[good], 0)
        ra[good] = np.mod(world_ra, 360.0)
        dec[good] = world_dec
    return ra, dec


def _utc(mjd: float) -> str:
    return mjd_to_iso(float(mjd)) if np.isfinite(mjd) else ""


def _require(table: Table, required: tuple[str, ...], what: str) -> None:
    missing = [name for name in required if name not in table.colnames]
    if missing:
        raise ValueError(f"the linker's {what} lack the contract columns {missing}")


def _ordered(table: Table, first: tuple[str, ...]) -> Table:
    rest = [name for name in table.colnames if name not in first]
    return table[list(first) + rest]


def _write_atomic(table: Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        table.write(temporary, format="ascii.ecsv", overwrite=True)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _floats(table: Table, name: str) -> NDArray[np.float64]:
    if name not in table.colnames:
        return np.full(len(table), np.nan)
    column = table[name]
    values = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
    return np.asarray(values, dtype=np.float64)


def _separation_and_pa(
    ra1: NDArray[np.float64],
    dec1: NDArray[np.float64],
    ra2: NDArray[np.float64],
    dec2: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Great-circle separation (arcsec) and position angle (deg, 0-360) from 1 to 2."""
    from astropy.coordinates import SkyCoord

    sep = np.full(ra1.shape, np.nan)
    pa = np.full(ra1.shape, np.nan)
    good = np.isfinite(ra1) & np.isfinite(dec1) & np.isfinite(ra2) & np.isfinite(dec2)
    if good.any():
        start = SkyCoord(ra1[good], dec1[good], unit="deg", frame="icrs")
        end = SkyCoord(ra2[good], dec2[good], unit="deg", frame="icrs")
        sep[good] = start.separation(end).arcsec
        pa[good] = np.mod(start.position_angle(end).deg, 360.0)
    return sep, pa


def _midpoint(
    ra1: NDArray[np.float64],
    dec1: NDArray[np.float64],
    ra2: NDArray[np.float64],
    dec2: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The point halfway along the great circle from 1 to 2 (deg)."""

    def unit(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> NDArray[np.float64]:
        a, d = np.radians(ra), np.radians(dec)
        return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])

    total = unit(ra1, dec1) + unit(ra2, dec2)
    norm = np.sqrt(np.sum(total**2, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        total = total / norm
    ra = np.mod(np.degrees(np.arctan2(total[1], total[0])), 360.0)
    dec = np.degrees(np.arcsin(np.clip(total[2], -1.0, 1.0)))
    return ra, dec


def _angle_off(a: NDArray[np.float64], b: float) -> NDArray[np.float64]:
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


@dataclass
class _Motion:
    """Per-candidate sky motion."""

    ra_start: NDArray[np.float64]
    dec_start: NDArray[np.float64]
    ra_end: NDArray[np.float64]
    dec_end: NDArray[np.float64]
    rate: NDArray[np.float64]  # arcsec/min
    pa: NDArray[np.float64]
    sidereal: NDArray[np.bool_]
    separation: NDArray[np.float64]  # arcsec, start to end
    seen_s: NDArray[np.float64]  # time span the candidate covers, s


def _motion(
    candidates: Table,
    solution: SkySolution,
    exposure_s: float,
    settings: MeasureSettings,
) -> _Motion:
    kind = np.array([str(k) for k in candidates["kind"]], dtype=object)
    x_start, y_start = _floats(candidates, "x_start"), _floats(candidates, "y_start")
    x_end, y_end = _floats(candidates, "x_end"), _floats(candidates, "y_end")
    ra_s, dec_s = pixel_to_sky(solution, x_start, y_start)
    ra_e, dec_e = pixel_to_sky(solution, x_end, y_end)
    sep, pa = _separation_and_pa(ra_s, dec_s, ra_e, dec_e)

    span_min = (_floats(candidates, "mjd_end") - _floats(candidates, "mjd_start")) * 1440.0
    streak = np.isin(kind, _STREAK_KINDS)
    exposure_min = np.full(len(candidates), exposure_s / 60.0)
    if not math.isfinite(exposure_s) or exposure_s <= 0:
        # The exposure the linker's pixel rate implies: streak length over rate.
        length_px = np.hypot(x_end - x_start, y_end - y_start)
        rate_px = _floats(candidates, "rate_px_per_min")
        with np.errstate(invalid="ignore", divide="ignore"):
            implied = np.where(rate_px > 0, length_px / rate_px - span_min, np.nan)
        exposure_min = np.where(implied > 0, implied, np.nan)
    duration_min = np.where(streak, span_min + exposure_min, span_min)
    moving = np.isin(kind, (*_POINT_KINDS, *_STREAK_KINDS))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(moving & (duration_min > 0), sep / duration_min, np.nan)
        # The direction needs no clock: frames linked by order still have one.
        pa = np.where(moving & (sep > 0), pa, np.nan)

    _, dec_mid = _midpoint(ra_s, dec_s, ra_e, dec_e)
    expected = SIDEREAL_RATE_ARCSEC_PER_S * 60.0 * np.cos(np.radians(dec_mid))
    off = _angle_off(pa, SIDEREAL_PA_DEG)
    off = np.where(kind == "streak", np.minimum(off, _angle_off(pa, SIDEREAL_PA_DEG + 180.0)), off)
    with np.errstate(invalid="ignore"):
        sidereal = (
            np.isin(kind, _SIDEREAL_KINDS)
            & (np.abs(rate - expected) <= settings.sidereal_tolerance * expected)
            & (off <= settings.sidereal_pa_tolerance_deg)
        )
    exposure_known = np.where(np.isfinite(exposure_min), exposure_min, 0.0)
    seen_s = (np.where(np.isfinite(span_min), span_min, 0.0) + exposure_known) * 60.0
    return _Motion(ra_s, dec_s, ra_e, dec_e, rate, pa, sidereal, sep, seen_s)


def _links(
    candidates: Table, motion: _Motion, site: Site | None, settings: MeasureSettings
) -> NDArray[np.str_]:
    kind = [str(k) for k in candidates["kind"]]
    mjd_mid = 0.5 * (_floats(candidates, "mjd_start") + _floats(candidates, "mjd_end"))
    ra_mid, dec_mid = _midpoint(motion.ra_start, motion.dec_start, motion.ra_end, motion.dec_end)
    texts = []
    for i in range(len(candidates)):
        sep_arcmin = motion.separation[i] / 60.0 if np.isfinite(motion.separation[i]) else 0.0
        radius = max(settings.lookup_radius_arcmin, 0.6 * sep_arcmin)
        fast = bool(
            np.isfinite(motion.rate[i])
            and motion.rate[i] >= settings.satellite_min_rate_arcsec_per_min
        )
        satellite = kind[i] in (*_STREAK_KINDS, "anomaly") or bool(motion.sidereal[i]) or fast
        links = candidate_links(
            mjd=float(mjd_mid[i]),
            ra_deg=float(ra_mid[i]),
            dec_deg=float(dec_mid[i]),
            radius_arcmin=radius,
            duration_s=float(motion.seen_s[i]),
            site=site,
            small_body=kind[i] in _POINT_KINDS,
            satellite=satellite,
            limit_mag=settings.lookup_limit_mag,
        )
        texts.append(json.dumps(links, separators=(",", ":")))
    return np.array(texts, dtype=str) if texts else np.array([], dtype="U2")


def _set(table: Table, name: str, values: Any, unit: str | None, description: str) -> None:
    table[name] = values
    table[name].unit = unit
    table[name].description = description


def _offsets(
    detections: Table, frame_offsets: Mapping[str, tuple[float, float]] | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each detection's frame offset from the reference frame (0 where unknown)."""
    n = len(detections)
    dx, dy = np.zeros(n), np.zeros(n)
    if frame_offsets:
        for i, frame in enumerate(detections["frame"]):
            ox, oy = frame_offsets.get(str(frame), (0.0, 0.0))
            dx[i] = ox if np.isfinite(ox) else 0.0
            dy[i] = oy if np.isfinite(oy) else 0.0
    return dx, dy


def publish(
    link_candidates: str | os.PathLike[str],
    link_detections: str | os.PathLike[str],
    candidates_path: str | os.PathLike[str],
    detections_path: str | os.PathLike[str],
    *,
    wcs_path: str | os.PathLike[str] | None = None,
    solve_json: str | os.PathLike[str] | None = None,
    reference_header: fits.Header | None = None,
    settings: MeasureSettings | None = None,
    frame_offsets: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[Table, Table]:
    """Write the session's public catalogues from the linker's and the plate solution.

    Parameters
    ----------
    link_candidates, link_detections : path-like
        ``link/candidates.ecsv`` and ``link/detections.ecsv``.
    candidates_path, detections_path : path-like
        Where the session's ``candidates.ecsv`` and ``detections.ecsv`` go.
    wcs_path : path-like, optional
        ``solve/wcs.fits``; without it the sky columns are NaN.
    solve_json : path-like, optional
        ``solve/solve.json``; a status other than ``solved`` leaves the sky columns NaN.
    reference_header : astropy.io.fits.Header, optional
        The reference frame's header: the observatory's location and the exposure time
        (for streak rates) are read from it.
    settings : MeasureSettings, optional
        Default :class:`MeasureSettings()`.
    frame_offsets : mapping of str to (float, float), optional
        Each frame's offset ``(dx, dy)`` from the plate-solved reference frame, as the
        check measured it (a star at ``(x, y)`` in the reference is at ``(x + dx, y + dy)``
        in that frame). Detections are moved back by it before their RA/Dec is computed,
        so the frames' sub-pixel jitter does not reach the sky coordinates.

    Returns
    -------
    (Table, Table)
        The candidates and detections as written: :data:`CANDIDATE_COLUMNS` and
        :data:`DETECTION_COLUMNS` first, then the linker's other columns. Table metadata:
        ``sky`` (status, reason, method), ``site`` (the observatory used, or why none),
        ``sidereal_rate`` (the rule), ``links`` (what the column holds).

    Raises
    ------
    ValueError
        When the linker's tables lack a contract column, or the settings are inconsistent.
    """
    settings = settings or MeasureSettings()
    candidates = Table.read(link_candidates, format="ascii.ecsv")
    detections = Table.read(link_detections, format="ascii.ecsv")
    _require(candidates, _LINK_CANDIDATE_COLUMNS, "candidates")
    _require(detections, _LINK_DETECTION_COLUMNS, "detections")
    solution = load_solution(wcs_path, solve_json)
    if solution.solved:
        logger.info("%s", solution.reason)
    else:
        logger.warning("sky columns left empty: %s", solution.reason)

    header = reference_header if reference_header is not None else solution.header
    site = observatory_location(header, settings)
    if site is None and reference_header is not None and solution.header is not None:
        site = observatory_location(solution.header, settings)
    exposure_s = exposure_seconds(header)[0] if header is not None else math.nan

    candidates["utc_start"] = [_utc(m) for m in candidates["mjd_start"]]
    candidates["utc_end"] = [_utc(m) for m in candidates["mjd_end"]]
    motion = _motion(candidates, solution, exposure_s, settings)
    deg, description = "deg", "ICRS, through the full WCS"
    _set(candidates, "ra_start", motion.ra_start, deg, f"RA at the start, {description}")
    _set(candidates, "dec_start", motion.dec_start, deg, f"Dec at the start, {description}")
    _set(candidates, "ra_end", motion.ra_end, deg, f"RA at the end, {description}")
    _set(candidates, "dec_end", motion.dec_end, deg, f"Dec at the end, {description}")
    _set(
        candidates,
        "rate_arcsec_per_min",
        motion.rate,
        "arcsec / min",
        "sky rate: great-circle separation of start and end over the time between them",
    )
    _set(candidates, "pa_deg", motion.pa, deg, "position angle of the motion, east of north")
    _set(
        candidates,
        "sidereal_rate",
        motion.sidereal,
        None,
        "moves at the sidereal rate towards the east: fixed in azimuth and altitude",
    )
    _set(
        candidates,
        "links",
        _links(candidates, motion, site, settings),
        None,
        "look-up links, a JSON object {service: url}",
    )

    dx, dy = _offsets(detections, frame_offsets)
    ra, dec = pixel_to_sky(solution, _floats(detections, "x") - dx, _floats(detections, "y") - dy)
    ra0, dec0 = pixel_to_sky(
        solution, _floats(detections, "x0") - dx, _floats(detections, "y0") - dy
    )
    ra1, dec1 = pixel_to_sky(
        solution, _floats(detections, "x1") - dx, _floats(detections, "y1") - dy
    )
    for name, values, what in (
        ("ra", ra, "RA"),
        ("dec", dec, "Dec"),
        ("ra0", ra0, "RA of a streak's start"),
        ("dec0", dec0, "Dec of a streak's start"),
        ("ra1", ra1, "RA of a streak's end"),
        ("dec1", dec1, "Dec of a streak's end"),
    ):
        _set(detections, name, values, deg, f"{what}, {description}")

    candidates = _ordered(candidates, CANDIDATE_COLUMNS)
    detections = _ordered(detections, DETECTION_COLUMNS)
    sky = {
        "solved": solution.solved,
        "status": solution.status,
        "reason": solution.reason,
        "method": solution.method,
    }
    site_meta = (
        site.as_dict()
        if site is not None
        else {"source": None, "reason": "no location in the configuration or the headers"}
    )
    candidates.meta = {
        "description": "SpacePixels candidates: one row per moving object, streak or flash",
        "pixel_convention": "0-based, x = column",
        "time_convention": "mid-exposure, MJD (UTC)",
        "sky": sky,
        "site": site_meta,
        "sidereal_rate": {
            "arcsec_per_s_times_cos_dec": SIDEREAL_RATE_ARCSEC_PER_S,
            "pa_deg": SIDEREAL_PA_DEG,
            "tolerance": settings.sidereal_tolerance,
            "pa_tolerance_deg": settings.sidereal_pa_tolerance_deg,
        },
        "links": f"JSON object {{service: url}}; services: {', '.join(SERVICES)}",
        **{
            k: v
            for k, v in candidates.meta.items()
            if k not in ("description", "sky", "site", "sidereal_rate", "links")
        },
    }
    detections.meta = {**detections.meta, "sky": sky}
    _write_atomic(candidates, Path(candidates_path))
    _write_atomic(detections, Path(detections_path))
    logger.info(
        "published %d candidates (%d at the sidereal rate), %d detections; %s",
        len(candidates),
        int(np.count_nonzero(motion.sidereal)),
        len(detections),
        solution.reason,
    )
    return candidates, detections
