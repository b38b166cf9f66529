"""Look-up links: one click from a candidate to the services that may name it.

Nothing here touches the network. Each function builds the URL of a query that a person
(or a later, explicitly configured step) can open; every value is URL-encoded with
:func:`urllib.parse.urlencode`. All positions are ICRS/J2000 right ascension and
declination in degrees, all times UTC, given as MJD and converted to what each service
expects. The observer is the :class:`~spacepixels.site.Site` when one is known: its MPC
code where the service takes codes, else its coordinates where the service takes those,
else the geocentre (MPC code ``500``), which is right for distant bodies and wrong by up to
a degree for a satellite, so the satellite service is left out without coordinates.

The services, their parameters and their meaning:

``jpl`` - JPL Small-Body Identification API (``ssd-api.jpl.nasa.gov/sb_ident.api``), the
    known asteroids and comets in a box around a position, as JSON:
    ``mpc-code`` (observatory code) or ``lat``/``lon``/``alt`` (deg north, deg east, **km**);
    ``obs-time`` (JD, UTC); ``fov-ra-center`` (``HH-MM-SS.ss``), ``fov-dec-center``
    (``DD-MM-SS.s``, ``M`` in front for south); ``fov-ra-hwidth``, ``fov-dec-hwidth`` (box
    half-widths, deg; the RA one divided by cos(dec) so the box covers the search circle);
    ``two-pass=true`` and ``suppress-first-pass=true`` (numerically integrated positions
    only); ``vmag-lim`` (faintest V magnitude).
``skybot`` - IMCCE SkyBoT cone search
    (``ssp.imcce.fr/webservices/skybot/api/conesearch.php``), the known Solar System bodies
    in a circle: ``-ep`` (epoch, JD UTC), ``-ra``, ``-dec`` (deg), ``-rd`` (radius, deg),
    ``-loc`` (IAU observatory code; SkyBoT takes no coordinates), ``-mime=html`` (a page to
    read), ``-objFilter=111`` (asteroids, planets, comets), ``-refsys=EQJ2000``, ``-from``
    (the asking application, as IMCCE asks clients to say).
``mpc`` - the Minor Planet Center's MPChecker (``minorplanetcenter.net/cgi-bin/mpcheck.cgi``):
    ``year``, ``month``, ``day`` (UTC, day with decimals), ``which=pos`` (search around a
    position), ``ra`` (``HH MM SS.ss``), ``decl`` (``+DD MM SS.s``), ``radius`` (arcmin,
    whole), ``limit`` (faintest V), ``oc`` (observatory code), and the form's display
    choices ``sort=d`` (by distance), ``mot=h`` (motions per hour), ``tmot=s`` (total
    motion and PA), ``pdes=u`` (unpacked designations), ``needed=f``, ``ps=n``, ``type=p``.
``satchecker`` - IAU CPS SatChecker, satellites passing through a field of view
    (``satchecker.cps.iau.org/fov/satellite-passes/``): ``latitude``, ``longitude`` (deg,
    east positive), ``elevation`` (m), ``mid_obs_time_jd`` (JD of the middle of the
    window), ``duration`` (s), ``ra``, ``dec``, ``fov_radius`` (deg), ``group_by=satellite``.
``stellarium`` - Stellarium Web (``stellarium-web.org``) at the time and place: ``date``
    (ISO UTC), ``lat``, ``lng`` (deg, east positive), ``elev`` (m), ``fov`` (deg). Stellarium
    Web points its view by ``az`` and ``alt`` (deg, azimuth from north through east), not by
    RA/Dec, so the candidate's RA/Dec is turned into azimuth and altitude for that time and
    place (precession by ERFA's IAU 2006 model, Greenwich mean sidereal time with UT1 taken
    as UTC, no refraction: a few arcminutes at most, far inside the view).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from urllib.parse import urlencode

import numpy as np

from spacepixels.site import Site

__all__ = [
    "APPLICATION",
    "GEOCENTRE_CODE",
    "SERVICES",
    "candidate_links",
    "horizontal",
    "jpl_sb_ident_url",
    "mpc_checker_url",
    "satchecker_url",
    "skybot_url",
    "stellarium_url",
]

logger = logging.getLogger(__name__)

SERVICES: tuple[str, ...] = ("jpl", "skybot", "mpc", "satchecker", "stellarium")
"""Names of the look-up services, as the keys of a candidate's ``links``."""

GEOCENTRE_CODE = "500"
"""The MPC code of the geocentre, used by the small-body services when no site is known."""

APPLICATION = "SpacePixels"
"""How the links name the asking application where a service asks (SkyBoT's ``-from``)."""

JPL_SB_IDENT = "https://ssd-api.jpl.nasa.gov/sb_ident.api"
SKYBOT_CONESEARCH = "https://ssp.imcce.fr/webservices/skybot/api/conesearch.php"
MPC_CHECKER = "https://minorplanetcenter.net/cgi-bin/mpcheck.cgi"
SATCHECKER_FOV = "https://satchecker.cps.iau.org/fov/satellite-passes/"
STELLARIUM_WEB = "https://stellarium-web.org/"

STELLARIUM_FOV_DEG = 10.0
"""Field of view (deg) Stellarium Web opens with: wide enough to recognise the region."""

_MJD_TO_JD = 2400000.5
_TT_MINUS_UTC_S = 69.184
"""TT - UTC since 2017 (32.184 s + 37 leap seconds); used only to precess Stellarium's
view direction, where a second is nothing."""


def _jd(mjd: float) -> float:
    return float(mjd) + _MJD_TO_JD


def _utc(mjd: float) -> datetime:
    days = math.floor(mjd)
    micro = round((mjd - days) * 86400.0e6)
    return datetime(1858, 11, 17) + timedelta(days=days, microseconds=micro)


def _sexagesimal(
    degrees: float, *, hours: bool, decimals: int, sep: str, plus: str, minus: str
) -> str:
    """``[sign]AA<sep>BB<sep>CC.c`` with the rounding carried into minutes and degrees."""
    value = degrees / 15.0 if hours else degrees
    scale = 10**decimals
    total = round(abs(value) * 3600 * scale)
    if hours:
        total %= 24 * 3600 * scale
    whole, fraction = divmod(total, scale)
    first, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{first:02d}{sep}{minutes:02d}{sep}{seconds:02d}"
    if decimals:
        text += f".{fraction:0{decimals}d}"
    if hours:
        return text
    return (minus if value < 0 and total else plus) + text


def _check_position(ra_deg: float, dec_deg: float) -> None:
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg) and -90.0 <= dec_deg <= 90.0):
        raise ValueError(f"not a sky position: RA {ra_deg}, Dec {dec_deg}")


def _check_time(mjd: float) -> None:
    if not math.isfinite(mjd):
        raise ValueError("a look-up needs a time (the MJD is not finite)")


def _code(site: Site | None) -> str:
    return site.mpc_code if site is not None and site.mpc_code else GEOCENTRE_CODE


def jpl_sb_ident_url(
    mjd: float,
    ra_deg: float,
    dec_deg: float,
    radius_arcmin: float,
    site: Site | None = None,
    limit_mag: float | None = None,
) -> str:
    """JPL Small-Body Identification API query for a position at a time.

    Parameters
    ----------
    mjd : float
        Time (MJD, UTC), sent as a JD.
    ra_deg, dec_deg : float
        Centre of the search (deg).
    radius_arcmin : float
        Half-width of the search box (arcmin).
    site : Site, optional
        Observer: its MPC code, else its coordinates (``alt`` in km, 0 when the height is
        unknown), else the geocentre.
    limit_mag : float, optional
        Faintest V magnitude asked for.

    Returns
    -------
    str
    """
    _check_time(mjd)
    _check_position(ra_deg, dec_deg)
    params: dict[str, str] = {}
    if site is not None and site.mpc_code:
        params["mpc-code"] = site.mpc_code
    elif site is not None and site.has_coordinates:
        params["lat"] = f"{site.lat_deg:.6f}"
        params["lon"] = f"{site.lon_deg:.6f}"
        params["alt"] = f"{(site.height_m or 0.0) / 1000.0:.4f}"
    else:
        params["mpc-code"] = GEOCENTRE_CODE
    half_dec = radius_arcmin / 60.0
    half_ra = min(180.0, half_dec / max(math.cos(math.radians(dec_deg)), 1e-3))
    params.update(
        {
            "obs-time": f"{_jd(mjd):.6f}",
            "fov-ra-center": _sexagesimal(
                ra_deg % 360.0, hours=True, decimals=2, sep="-", plus="", minus=""
            ),
            "fov-dec-center": _sexagesimal(
                dec_deg, hours=False, decimals=1, sep="-", plus="", minus="M"
            ),
            "fov-ra-hwidth": f"{half_ra:.5f}",
            "fov-dec-hwidth": f"{half_dec:.5f}",
            "two-pass": "true",
            "suppress-first-pass": "true",
        }
    )
    if limit_mag is not None:
        params["vmag-lim"] = f"{limit_mag:g}"
    return f"{JPL_SB_IDENT}?{urlencode(params)}"


def skybot_url(
    mjd: float, ra_deg: float, dec_deg: float, radius_arcmin: float, site: Site | None = None
) -> str:
    """IMCCE SkyBoT cone search for a position at a time (an HTML page).

    Parameters
    ----------
    mjd : float
        Time (MJD, UTC), sent as a JD.
    ra_deg, dec_deg : float
        Centre of the cone (deg).
    radius_arcmin : float
        Radius of the cone (arcmin), sent in degrees.
    site : Site, optional
        Observer: its MPC code, else the geocentre (SkyBoT takes codes only).

    Returns
    -------
    str
    """
    _check_time(mjd)
    _check_position(ra_deg, dec_deg)
    params = {
        "-ep": f"{_jd(mjd):.6f}",
        "-ra": f"{ra_deg % 360.0:.6f}",
        "-dec": f"{dec_deg:.6f}",
        "-rd": f"{radius_arcmin / 60.0:.5f}",
        "-loc": _code(site),
        "-mime": "html",
        "-objFilter": "111",
        "-refsys": "EQJ2000",
        "-from": APPLICATION,
    }
    return f"{SKYBOT_CONESEARCH}?{urlencode(params)}"


def mpc_checker_url(
    mjd: float,
    ra_deg: float,
    dec_deg: float,
    radius_arcmin: float,
    site: Site | None = None,
    limit_mag: float = 22.0,
) -> str:
    """The Minor Planet Center's MPChecker around a position at a time.

    Parameters
    ----------
    mjd : float
        Time (MJD, UTC), sent as year, month and day with four decimals (9 s).
    ra_deg, dec_deg : float
        Centre of the search (deg), sent as ``HH MM SS.ss`` and ``+DD MM SS.s``.
    radius_arcmin : float
        Radius (arcmin), rounded up to whole arcminutes as the form takes them.
    site : Site, optional
        Observer: its MPC code, else the geocentre.
    limit_mag : float
        Faintest V magnitude listed.

    Returns
    -------
    str
    """
    _check_time(mjd)
    _check_position(ra_deg, dec_deg)
    moment = _utc(mjd)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    day = moment.day + (moment - midnight).total_seconds() / 86400.0
    params = {
        "year": f"{moment.year:04d}",
        "month": f"{moment.month:02d}",
        "day": f"{day:07.4f}",
        "which": "pos",
        "ra": _sexagesimal(ra_deg % 360.0, hours=True, decimals=2, sep=" ", plus="", minus=""),
        "decl": _sexagesimal(dec_deg, hours=False, decimals=1, sep=" ", plus="+", minus="-"),
        "TextArea": "",
        "radius": str(max(1, math.ceil(radius_arcmin - 1e-9))),
        "limit": f"{limit_mag:.1f}",
        "oc": _code(site),
        "sort": "d",
        "mot": "h",
        "tmot": "s",
        "pdes": "u",
        "needed": "f",
        "ps": "n",
        "type": "p",
    }
    return f"{MPC_CHECKER}?{urlencode(params)}"


def satchecker_url(
    mjd: float,
    ra_deg: float,
    dec_deg: float,
    radius_arcmin: float,
    duration_s: float,
    site: Site | None,
) -> str | None:
    """IAU CPS SatChecker: satellites passing through a field during a time window.

    Parameters
    ----------
    mjd : float
        Middle of the window (MJD, UTC), sent as a JD.
    ra_deg, dec_deg : float
        Centre of the field (deg).
    radius_arcmin : float
        Radius of the field (arcmin), sent in degrees.
    duration_s : float
        Length of the window (s), rounded up to whole seconds (at least 1).
    site : Site or None
        Observer; SatChecker needs coordinates (``elevation`` 0 m when unknown).

    Returns
    -------
    str or None
        None without site coordinates: a satellite's position depends on the observer by
        up to a degree, so a geocentric query would mislead.
    """
    _check_time(mjd)
    _check_position(ra_deg, dec_deg)
    if site is None or not site.has_coordinates:
        return None
    duration = max(1, math.ceil(duration_s)) if math.isfinite(duration_s) else 1
    params = {
        "latitude": f"{site.lat_deg:.6f}",
        "longitude": f"{site.lon_deg:.6f}",
        "elevation": f"{site.height_m or 0.0:.1f}",
        "mid_obs_time_jd": f"{_jd(mjd):.6f}",
        "duration": str(duration),
        "ra": f"{ra_deg % 360.0:.6f}",
        "dec": f"{dec_deg:.6f}",
        "fov_radius": f"{radius_arcmin / 60.0:.5f}",
        "group_by": "satellite",
    }
    return f"{SATCHECKER_FOV}?{urlencode(params)}"


def horizontal(
    mjd: float, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float
) -> tuple[float, float]:
    """Azimuth and altitude (deg) of an ICRS position at a time and place.

    Azimuth counts from north through east. The position is precessed to the mean equator
    of date (ERFA ``pmat06``), the hour angle taken from Greenwich mean sidereal time
    (``gmst06``, UT1 = UTC); no nutation, aberration or refraction: good to a few
    arcminutes, which is what pointing a planetarium needs.

    Parameters
    ----------
    mjd : float
        Time (MJD, UTC).
    ra_deg, dec_deg : float
        ICRS position (deg).
    lat_deg, lon_deg : float
        Observer's latitude and east longitude (deg).

    Returns
    -------
    (float, float)
        Azimuth in [0, 360) and altitude in [-90, 90], degrees.
    """
    import erfa

    tt = mjd + _TT_MINUS_UTC_S / 86400.0
    matrix = erfa.pmat06(_MJD_TO_JD, tt)
    vector = matrix @ erfa.s2c(math.radians(ra_deg), math.radians(dec_deg))
    ra_date, dec_date = erfa.c2s(vector)
    sidereal = erfa.gmst06(_MJD_TO_JD, mjd, _MJD_TO_JD, tt)
    hour_angle = sidereal + math.radians(lon_deg) - float(ra_date)
    az, alt = erfa.hd2ae(hour_angle, float(dec_date), math.radians(lat_deg))
    return math.degrees(float(az)) % 360.0, math.degrees(float(alt))


def stellarium_url(
    mjd: float,
    site: Site | None = None,
    ra_deg: float | None = None,
    dec_deg: float | None = None,
    fov_deg: float = STELLARIUM_FOV_DEG,
) -> str:
    """Stellarium Web at a time and place, looking towards a position.

    Parameters
    ----------
    mjd : float
        Time (MJD, UTC), sent as ``YYYY-MM-DDTHH:MM:SSZ``.
    site : Site, optional
        Observer; without coordinates Stellarium Web uses the browser's own location and
        the view direction is left out.
    ra_deg, dec_deg : float, optional
        Where to look; turned into ``az``/``alt`` for the time and place.
    fov_deg : float
        Field of view (deg).

    Returns
    -------
    str
    """
    _check_time(mjd)
    params = {"date": _utc(mjd).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if site is not None and site.has_coordinates:
        params["lat"] = f"{site.lat_deg:.5f}"
        params["lng"] = f"{site.lon_deg:.5f}"
        params["elev"] = f"{site.height_m or 0.0:.0f}"
        if ra_deg is not None and dec_deg is not None and math.isfinite(ra_deg + dec_deg):
            az, alt = horizontal(mjd, ra_deg, dec_deg, site.lat_deg, site.lon_deg)
            params["az"] = f"{az:.3f}"
            params["alt"] = f"{alt:.3f}"
    params["fov"] = f"{fov_deg:g}"
    return f"{STELLARIUM_WEB}?{urlencode(params)}"


def candidate_links(
    *,
    mjd: float,
    ra_deg: float,
    dec_deg: float,
    radius_arcmin: float,
    duration_s: float,
    site: Site | None,
    small_body: bool,
    satellite: bool,
    limit_mag: float = 22.0,
) -> dict[str, str]:
    """The look-up links of one candidate, by service name (see :data:`SERVICES`).

    Parameters
    ----------
    mjd : float
        The candidate's middle time (MJD, UTC); without a time there are no links.
    ra_deg, dec_deg : float
        The candidate's position at that time (deg); NaN when unsolved, which leaves only
        Stellarium Web at the time and place.
    radius_arcmin : float
        Search radius (arcmin).
    duration_s : float
        Time span the candidate was seen over (s), for the satellite window.
    site : Site or None
        Observer.
    small_body : bool
        Whether to ask the small-body services (JPL, SkyBoT, MPC).
    satellite : bool
        Whether to ask SatChecker (needs site coordinates).
    limit_mag : float
        Faintest V magnitude for the small-body services.

    Returns
    -------
    dict
        ``{service: url}`` in the order of :data:`SERVICES`.
    """
    if not math.isfinite(mjd):
        return {}
    links: dict[str, str] = {}
    located = bool(np.isfinite(ra_deg) and np.isfinite(dec_deg))
    if located and small_body:
        links["jpl"] = jpl_sb_ident_url(mjd, ra_deg, dec_deg, radius_arcmin, site, limit_mag)
        links["skybot"] = skybot_url(mjd, ra_deg, dec_deg, radius_arcmin, site)
        links["mpc"] = mpc_checker_url(mjd, ra_deg, dec_deg, radius_arcmin, site, limit_mag)
    if located and satellite:
        url = satchecker_url(mjd, ra_deg, dec_deg, radius_arcmin, duration_s, site)
        if url is not None:
            links["satchecker"] = url
    links["stellarium"] = stellarium_url(
        mjd, site, ra_deg if located else None, dec_deg if located else None
    )
    return links
