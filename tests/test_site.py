"""Tests of spacepixels.site: the observatory's location from each header convention."""

from __future__ import annotations

import astropy.units as u
import pytest
from astropy.coordinates import EarthLocation
from astropy.io import fits
from shared_data import REAL_FRAME  # noqa: E402

from spacepixels.measure import MeasureSettings
from spacepixels.site import Site, observatory_location, parse_angle, parse_mpc_code


def header(*cards: tuple) -> fits.Header:
    """A header from (key, value) or (key, value, comment) cards."""
    result = fits.Header()
    for card in cards:
        result.append(card)
    return result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+52 30 00", (52.5, None)),
        ("52:30:00", (52.5, None)),
        ("-04:30:00.0", (-4.5, None)),
        ("-00 30 00", (-0.5, None)),
        ("52d30m00s", (52.5, None)),
        ("52°30'00\"", (52.5, None)),
        ("52.25", (52.25, None)),
        (" 52.25 ", (52.25, None)),
        (52.25, (52.25, None)),
        (-7, (-7.0, None)),
        ("52 30 00 N", (52.5, "N")),
        ("32:22:50S", (32 + 22 / 60 + 50 / 3600, "S")),
        ("W 4 30", (4.5, "W")),
        ("4.5E", (4.5, "E")),
    ],
)
def test_parse_angle_reads_decimal_sexagesimal_and_hemispheres(text, expected):
    degrees, hemisphere = parse_angle(text)
    assert degrees == pytest.approx(expected[0], abs=1e-9)
    assert hemisphere == expected[1]


@pytest.mark.parametrize("text", ["abc", "52 61 00", "1 2 3 4", "nan", "", True])
def test_parse_angle_refuses_what_is_not_an_angle(text):
    with pytest.raises(ValueError):
        parse_angle(text)


def test_sitelat_sitelong_sexagesimal_strings_east_positive_by_default():
    site = observatory_location(
        header(("SITELAT", "+52 30 00"), ("SITELONG", "-04 30 00"), ("SITEELEV", 100.0))
    )
    assert site == Site(52.5, -4.5, 100.0, None, "header SITELAT/SITELONG")


def test_sitelat_sitelong_colons_and_numbers():
    site = observatory_location(header(("SITELAT", "52:30:00"), ("SITELONG", 13.25)))
    assert (site.lat_deg, site.lon_deg, site.height_m) == (52.5, 13.25, None)


def test_a_comment_that_counts_westwards_flips_the_longitude():
    site = observatory_location(
        header(
            ("SITELAT", "+31:40:51.4", "LATITUDE, DEGREES"),
            ("SITELONG", "+110:52:39.0", "LONGITUDE, DEGREES WEST OF ZERO"),
            ("SITEELEV", 2320.0, "ELEVATION, METERS"),
        )
    )
    assert site.lon_deg == pytest.approx(-(110 + 52 / 60 + 39 / 3600))
    assert site.lat_deg == pytest.approx(31 + 40 / 60 + 51.4 / 3600)
    assert site.height_m == 2320.0


@pytest.mark.parametrize(
    ("comment", "east"),
    [
        ("[deg] east longitude", 10.0),
        ("Site Longitude, degrees +E", 10.0),
        ("longitude (E+, W-)", 10.0),
        ("longitude, west is negative", 10.0),
        ("longitude, west positive", -10.0),
        ("longitude (+W)", -10.0),
        ("West longitude of the site", -10.0),
    ],
)
def test_longitude_comments_decide_the_sign(comment, east):
    site = observatory_location(header(("SITELAT", 45.0), ("SITELONG", 10.0, comment)))
    assert site.lon_deg == east


def test_the_west_setting_reads_unlabelled_longitudes_westwards():
    cards = header(("SITELAT", 45.0), ("SITELONG", "110 52 39"))
    west = observatory_location(cards, MeasureSettings(header_longitude="west"))
    east = observatory_location(cards, MeasureSettings())
    assert west.lon_deg == pytest.approx(-110.8775)
    assert east.lon_deg == pytest.approx(110.8775)
    # A hemisphere letter wins over the setting.
    lettered = header(("SITELAT", "45 00 00 N"), ("SITELONG", "110 52 39 E"))
    assert observatory_location(lettered, MeasureSettings(header_longitude="west")).lon_deg == (
        pytest.approx(110.8775)
    )


def test_hemisphere_letters():
    site = observatory_location(header(("SITELAT", "32 22 50 S"), ("SITELONG", "4.5W")))
    assert site.lat_deg == pytest.approx(-(32 + 22 / 60 + 50 / 3600))
    assert site.lon_deg == -4.5


def test_obsgeo_geodetic_is_east_positive_and_normalised():
    site = observatory_location(
        header(("OBSGEO-B", -24.6272), ("OBSGEO-L", 289.5958), ("OBSGEO-H", 2635.0))
    )
    assert site.lat_deg == -24.6272
    assert site.lon_deg == pytest.approx(289.5958 - 360.0)
    assert site.height_m == 2635.0
    assert site.source == "header OBSGEO-B/OBSGEO-L"


def test_obsgeo_geocentric_xyz():
    place = EarthLocation.from_geodetic(
        lon=-17.8792 * u.deg, lat=28.7606 * u.deg, height=2396 * u.m
    )
    site = observatory_location(
        header(
            ("OBSGEO-X", float(place.x.to_value(u.m))),
            ("OBSGEO-Y", float(place.y.to_value(u.m))),
            ("OBSGEO-Z", float(place.z.to_value(u.m))),
        )
    )
    assert site.source == "header OBSGEO-X/Y/Z"
    assert site.lat_deg == pytest.approx(28.7606, abs=1e-7)
    assert site.lon_deg == pytest.approx(-17.8792, abs=1e-7)
    assert site.height_m == pytest.approx(2396.0, abs=1e-3)


def test_geocentric_xyz_off_the_ground_is_ignored():
    assert (
        observatory_location(header(("OBSGEO-X", 1.0), ("OBSGEO-Y", 2.0), ("OBSGEO-Z", 3.0)))
        is None
    )


@pytest.mark.parametrize(
    ("lat_key", "lon_key", "height_key"),
    [
        ("LAT-OBS", "LONG-OBS", "ALT-OBS"),
        ("OBSLAT", "OBSLONG", "OBSALT"),
        ("OBS-LAT", "OBS-LONG", "OBS-ELEV"),
        ("LATITUDE", "LONGITUD", "HEIGHT"),
    ],
)
def test_other_common_key_sets(lat_key, lon_key, height_key):
    site = observatory_location(
        header((lat_key, "-30:10:12"), (lon_key, "-70:48:00"), (height_key, 2200))
    )
    assert site.lat_deg == pytest.approx(-(30 + 10 / 60 + 12 / 3600))
    assert site.lon_deg == pytest.approx(-70.8)
    assert site.height_m == 2200.0
    assert site.source == f"header {lat_key}/{lon_key}"


def test_eso_hierarch_cards():
    cards = fits.Header()
    cards["HIERARCH ESO TEL GEOLAT"] = -24.6270
    cards["HIERARCH ESO TEL GEOLON"] = -70.4040
    cards["HIERARCH ESO TEL GEOELEV"] = 2648.0
    site = observatory_location(cards)
    assert (site.lat_deg, site.lon_deg, site.height_m) == (-24.627, -70.404, 2648.0)


def test_the_standard_keys_win_over_the_others():
    site = observatory_location(
        header(("SITELAT", 10.0), ("SITELONG", 20.0), ("OBSGEO-B", 11.0), ("OBSGEO-L", 21.0))
    )
    assert (site.lat_deg, site.lon_deg) == (11.0, 21.0)


def test_zero_zero_is_a_placeholder_and_the_next_key_set_is_used():
    cards = header(("SITELAT", 0.0), ("SITELONG", 0.0), ("OBSLAT", 45.0), ("OBSLONG", 7.0))
    site = observatory_location(cards)
    assert (site.lat_deg, site.lon_deg, site.source) == (45.0, 7.0, "header OBSLAT/OBSLONG")
    assert observatory_location(header(("SITELAT", 0.0), ("SITELONG", 0.0))) is None


def test_unreadable_cards_are_skipped_not_fatal(caplog):
    assert observatory_location(header(("SITELAT", "somewhere"), ("SITELONG", "10"))) is None
    assert "SITELAT" in caplog.text
    assert observatory_location(header(("SITELAT", 95.0), ("SITELONG", 10.0))) is None


def test_the_configuration_wins_over_the_header_and_carries_the_mpc_code():
    cards = header(("SITELAT", 10.0), ("SITELONG", 20.0), ("SITEELEV", 5.0))
    settings = MeasureSettings(site_lat_deg=-31.27, site_lon_deg=149.06, mpc_code="e12")
    site = observatory_location(cards, settings)
    assert site == Site(-31.27, 149.06, None, "E12", "config")
    # A configured code travels with a header location, and the configured height wins.
    site = observatory_location(cards, {"mpc_code": 568, "site_height_m": 12.0})
    assert site == Site(10.0, 20.0, 12.0, "568", "header SITELAT/SITELONG")


def test_an_mpc_code_alone_is_a_site_without_coordinates():
    site = observatory_location(None, MeasureSettings(mpc_code="J95"))
    assert site is not None and not site.has_coordinates
    assert site.mpc_code == "J95"
    assert observatory_location(None, None) is None
    assert observatory_location(fits.Header(), MeasureSettings()) is None


def test_inconsistent_configurations_are_refused():
    with pytest.raises(ValueError, match="both"):
        observatory_location(None, {"site_lat_deg": 10.0})
    with pytest.raises(ValueError, match="MPC"):
        parse_mpc_code("ABCD")
    with pytest.raises(ValueError, match="header_longitude"):
        observatory_location(None, {"header_longitude": "north"})
    assert parse_mpc_code(95) == "095"
    assert parse_mpc_code(None) is None


def test_real_frame_site_reads_its_east_longitude():
    if not REAL_FRAME.exists():
        pytest.skip(f"real frame {REAL_FRAME} is absent")
    site = observatory_location(fits.getheader(REAL_FRAME))
    # SAAO Sutherland: 32 deg 22' S, 20 deg 49' E ("Site Longitude, degrees +E").
    assert site.lat_deg == pytest.approx(-32.3806, abs=1e-3)
    assert site.lon_deg == pytest.approx(20.8111, abs=1e-3)
    assert site.source == "header LATITUDE/LONGITUD"
