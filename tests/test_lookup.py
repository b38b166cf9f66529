"""Tests of spacepixels.lookup: every link parses back to what the service expects.

No service is contacted: the URLs are taken apart with urllib and each parameter is checked
against the position, time and place it was built from, in the service's own units.
"""

from __future__ import annotations

import math
import warnings
from urllib.parse import parse_qs, urlparse

import astropy.units as u
import pytest
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers

from spacepixels.lookup import (
    GEOCENTRE_CODE,
    SERVICES,
    candidate_links,
    horizontal,
    jpl_sb_ident_url,
    mpc_checker_url,
    satchecker_url,
    skybot_url,
    stellarium_url,
)
from spacepixels.site import Site

MJD = 61113.875  # 2026-03-14T21:00:00 UTC
RA, DEC = 153.123456, -12.5425  # 10h12m29.63s, -12d32m33.0s
SITE = Site(52.5, -4.25, 120.0, None, "test")
SITE_CODED = Site(52.5, -4.25, 120.0, "J95", "test")
CODE_ONLY = Site(None, None, None, "568", "test")


def query(url: str, host: str, path: str) -> dict[str, str]:
    """The URL's parameters, one value each, after checking where it points."""
    parts = urlparse(url)
    assert parts.scheme == "https"
    assert parts.netloc == host
    assert parts.path == path
    params = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in params.values()), params
    return {key: values[0] for key, values in params.items()}


def sexagesimal_to_degrees(text: str, sep: str, hours: bool) -> float:
    negative = text.startswith(("-", "M"))
    first, minutes, seconds = text.lstrip("+-M").split(sep)
    value = float(first) + float(minutes) / 60 + float(seconds) / 3600
    return (-value if negative else value) * (15.0 if hours else 1.0)


def test_jpl_sb_ident_with_an_mpc_code():
    params = query(
        jpl_sb_ident_url(MJD, RA, DEC, 5.0, SITE_CODED, limit_mag=21.5),
        "ssd-api.jpl.nasa.gov",
        "/sb_ident.api",
    )
    assert params["mpc-code"] == "J95"
    assert "lat" not in params
    assert float(params["obs-time"]) == pytest.approx(MJD + 2400000.5, abs=1e-6)
    assert params["fov-ra-center"] == "10-12-29.63"
    assert params["fov-dec-center"] == "M12-32-33.0"
    assert sexagesimal_to_degrees(params["fov-ra-center"], "-", True) == pytest.approx(
        RA, abs=0.01 / 240
    )
    assert sexagesimal_to_degrees(params["fov-dec-center"], "-", False) == pytest.approx(
        DEC, abs=0.1 / 3600
    )
    assert float(params["fov-dec-hwidth"]) == pytest.approx(5.0 / 60, abs=1e-5)
    # The RA half-width covers the search circle at this declination.
    assert float(params["fov-ra-hwidth"]) == pytest.approx(
        5.0 / 60 / math.cos(math.radians(DEC)), rel=1e-4
    )
    assert params["two-pass"] == "true"
    assert params["vmag-lim"] == "21.5"


def test_jpl_sb_ident_with_coordinates_in_km_and_geocentre_without_site():
    params = query(
        jpl_sb_ident_url(MJD, RA, 41.0, 5.0, SITE), "ssd-api.jpl.nasa.gov", "/sb_ident.api"
    )
    assert (float(params["lat"]), float(params["lon"])) == (52.5, -4.25)
    assert float(params["alt"]) == pytest.approx(0.12)  # km
    assert params["fov-dec-center"] == "41-00-00.0"
    assert "mpc-code" not in params
    params = query(
        jpl_sb_ident_url(MJD, RA, DEC, 5.0, None), "ssd-api.jpl.nasa.gov", "/sb_ident.api"
    )
    assert params["mpc-code"] == GEOCENTRE_CODE


def test_skybot_cone_search():
    url = skybot_url(MJD, RA, DEC, 7.5, SITE_CODED)
    params = query(url, "ssp.imcce.fr", "/webservices/skybot/api/conesearch.php")
    assert float(params["-ep"]) == pytest.approx(MJD + 2400000.5, abs=1e-6)
    assert float(params["-ra"]) == pytest.approx(RA, abs=1e-6)
    assert float(params["-dec"]) == pytest.approx(DEC, abs=1e-6)
    assert float(params["-rd"]) == pytest.approx(7.5 / 60, abs=1e-5)
    assert params["-loc"] == "J95"
    assert params["-mime"] == "html"
    assert query(skybot_url(MJD, RA, DEC, 5, SITE), "ssp.imcce.fr", urlparse(url).path)["-loc"] == (
        GEOCENTRE_CODE
    )


def test_mpc_checker():
    url = mpc_checker_url(MJD, RA, DEC, 4.2, SITE_CODED, limit_mag=20.0)
    params = query(url, "minorplanetcenter.net", "/cgi-bin/mpcheck.cgi")
    assert (params["year"], params["month"]) == ("2026", "03")
    assert float(params["day"]) == pytest.approx(14.875, abs=1e-4)
    assert params["which"] == "pos"
    assert params["ra"] == "10 12 29.63"
    assert params["decl"] == "-12 32 33.0"
    assert params["radius"] == "5"  # whole arcminutes, rounded up
    assert params["limit"] == "20.0"
    assert params["oc"] == "J95"
    assert params["TextArea"] == ""
    # Spaces and signs are encoded, not sent raw.
    north = mpc_checker_url(MJD, RA, 12.5, 5.0, None)
    assert "decl=%2B12+30+00.0" in north
    assert query(north, "minorplanetcenter.net", "/cgi-bin/mpcheck.cgi")["oc"] == GEOCENTRE_CODE


def test_satchecker_needs_coordinates():
    url = satchecker_url(MJD, RA, DEC, 6.0, 42.3, SITE_CODED)
    params = query(url, "satchecker.cps.iau.org", "/fov/satellite-passes/")
    assert (float(params["latitude"]), float(params["longitude"])) == (52.5, -4.25)
    assert float(params["elevation"]) == 120.0
    assert float(params["mid_obs_time_jd"]) == pytest.approx(MJD + 2400000.5, abs=1e-6)
    assert params["duration"] == "43"
    assert float(params["ra"]) == pytest.approx(RA, abs=1e-6)
    assert float(params["dec"]) == pytest.approx(DEC, abs=1e-6)
    assert float(params["fov_radius"]) == pytest.approx(0.1)
    assert satchecker_url(MJD, RA, DEC, 6.0, 42.3, CODE_ONLY) is None
    assert satchecker_url(MJD, RA, DEC, 6.0, 42.3, None) is None


def test_stellarium_web_at_the_time_and_place_looking_at_the_object():
    params = query(stellarium_url(MJD, SITE, RA, DEC), "stellarium-web.org", "/")
    assert params["date"] == "2026-03-14T21:00:00Z"
    assert (float(params["lat"]), float(params["lng"]), float(params["elev"])) == (
        52.5,
        -4.25,
        120.0,
    )
    az, alt = horizontal(MJD, RA, DEC, 52.5, -4.25)
    assert (float(params["az"]), float(params["alt"])) == pytest.approx((az, alt), abs=1e-3)
    assert float(params["fov"]) > 0
    # Without coordinates: the time only, and no view direction.
    params = query(stellarium_url(MJD, CODE_ONLY, RA, DEC), "stellarium-web.org", "/")
    assert set(params) == {"date", "fov"}


def test_horizontal_agrees_with_astropy():
    mjd, lat, lon = 59000.9, 52.0, 5.0  # inside the IERS-B table astropy ships
    az, alt = horizontal(mjd, RA, 30.0, lat, lon)
    with iers.conf.set_temp("auto_download", False), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IERS accuracy notes; nothing is fetched
        frame = AltAz(
            obstime=Time(mjd, format="mjd", scale="utc"),
            location=EarthLocation(lat=lat * u.deg, lon=lon * u.deg),
        )
        truth = SkyCoord(RA * u.deg, 30.0 * u.deg).transform_to(frame)
    assert az == pytest.approx(truth.az.deg, abs=0.05)
    assert alt == pytest.approx(truth.alt.deg, abs=0.05)


def test_the_celestial_pole_stands_at_the_latitude():
    az, alt = horizontal(MJD, 0.0, 90.0, -31.0, 149.0)
    assert alt == pytest.approx(-31.0, abs=0.2)
    az, alt = horizontal(MJD, 0.0, 90.0, 52.5, -4.25)
    assert alt == pytest.approx(52.5, abs=0.2)
    assert min(az, 360.0 - az) < 0.5


def test_rounding_carries_into_minutes_and_hours():
    ra = 15.0 * (1 + 59 / 60 + 59.9999 / 3600)
    params = query(jpl_sb_ident_url(MJD, ra, -0.0001, 5.0), "ssd-api.jpl.nasa.gov", "/sb_ident.api")
    assert params["fov-ra-center"] == "02-00-00.00"
    assert params["fov-dec-center"] == "M00-00-00.4"
    params = query(
        mpc_checker_url(MJD, 359.99999999, 0.0, 5.0),
        "minorplanetcenter.net",
        "/cgi-bin/mpcheck.cgi",
    )
    assert params["ra"] == "00 00 00.00"
    assert params["decl"] == "+00 00 00.0"


def test_candidate_links_choose_services_by_what_was_seen():
    both = candidate_links(
        mjd=MJD,
        ra_deg=RA,
        dec_deg=DEC,
        radius_arcmin=5.0,
        duration_s=60.0,
        site=SITE,
        small_body=True,
        satellite=True,
    )
    assert list(both) == list(SERVICES)
    asteroid = candidate_links(
        mjd=MJD,
        ra_deg=RA,
        dec_deg=DEC,
        radius_arcmin=5.0,
        duration_s=60.0,
        site=SITE,
        small_body=True,
        satellite=False,
    )
    assert list(asteroid) == ["jpl", "skybot", "mpc", "stellarium"]
    satellite_without_coordinates = candidate_links(
        mjd=MJD,
        ra_deg=RA,
        dec_deg=DEC,
        radius_arcmin=5.0,
        duration_s=60.0,
        site=CODE_ONLY,
        small_body=False,
        satellite=True,
    )
    assert list(satellite_without_coordinates) == ["stellarium"]
    unsolved = candidate_links(
        mjd=MJD,
        ra_deg=math.nan,
        dec_deg=math.nan,
        radius_arcmin=5.0,
        duration_s=60.0,
        site=SITE,
        small_body=True,
        satellite=True,
    )
    assert list(unsolved) == ["stellarium"]
    assert "az" not in query(unsolved["stellarium"], "stellarium-web.org", "/")
    untimed = candidate_links(
        mjd=math.nan,
        ra_deg=RA,
        dec_deg=DEC,
        radius_arcmin=5.0,
        duration_s=60.0,
        site=SITE,
        small_body=True,
        satellite=True,
    )
    assert untimed == {}


def test_builders_refuse_positions_and_times_that_are_not():
    with pytest.raises(ValueError):
        skybot_url(MJD, RA, 95.0, 5.0)
    with pytest.raises(ValueError):
        jpl_sb_ident_url(math.nan, RA, DEC, 5.0)
