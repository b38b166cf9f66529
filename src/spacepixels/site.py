"""Where the pictures were taken: the observatory's location from the headers or the config.

The look-up services need to know where the observer stood: a satellite's place on the sky
depends on it by degrees, a near-Earth asteroid's by arcseconds to arcminutes. Capture
programs write the location under many names; this module reads the common ones and
returns one :class:`Site` with an east-positive longitude, or ``None`` when nothing usable
is found.

Where the location comes from, first found wins:

1. the configuration (``site_lat_deg`` and ``site_lon_deg``; ``site_height_m`` optional);
2. the FITS standard's ``OBSGEO-B``/``OBSGEO-L``/``OBSGEO-H`` (geodetic, east-positive,
   metres) and ``OBSGEO-X``/``OBSGEO-Y``/``OBSGEO-Z`` (ITRS geocentric, metres);
3. ``SITELAT``/``SITELONG``/``SITEELEV`` (MaxIm DL, N.I.N.A., SGP, ASCOM drivers, ...);
4. ``LAT-OBS``/``LONG-OBS``/``ALT-OBS``, ``OBSLAT``/``OBSLONG``/``OBSALT``,
   ``OBS-LAT``/``OBS-LONG``/``OBS-ELEV``, ``LATITUDE``/``LONGITUD``/``HEIGHT`` (older
   observatory software; not ``ALTITUDE`` or ``ELEVATIO``, which often hold the pointing);
5. ESO's ``HIERARCH ESO TEL GEOLAT``/``GEOLON``/``GEOELEV`` (east-positive).

Values may be numbers or strings: decimal (``'52.5'``), sexagesimal with spaces, colons or
symbols (``'+52 30 00'``, ``'-4:30:00.5'``, ``52d30m00s``, ``52°30'00"``), with an
optional hemisphere letter (``'52 30 00 N'``, ``'W 4 30'``, ``'4.5W'``). A configured MPC
observatory code (``mpc_code``) is attached to whichever location is used, and alone still
makes a :class:`Site` (without coordinates) that the small-body services accept.

East or west
------------
Longitudes are returned east-positive, in (-180, 180], as astropy, the IAU and the FITS
standard count them. Not every program does: IRAF's observatory database, older
Smithsonian and ING headers count degrees **west** of Greenwich (``SITELONG = '+110:52:39'
/ LONGITUDE, DEGREES WEST OF ZERO`` is Arizona, not China). The sign of a non-standard
longitude card is therefore decided, in order, by

- a hemisphere letter in the value (``E`` or ``W``);
- the card's comment when it says so: ``west`` with ``positive``, ``+``, ``of`` or
  ``degrees west``, or ``+W``/``W+``, means west-positive; ``east`` (``east longitude``,
  ``+=East``, ``east positive``), ``+E``/``E+`` or ``west negative`` means east-positive;
- otherwise the setting ``header_longitude`` (``"east"`` by default, as N.I.N.A., SGP,
  MaxIm DL and ASCOM write it; ``"west"`` for rigs whose software counts westwards).

The standard's ``OBSGEO-L`` and ESO's ``GEOLON`` are east-positive by definition and are
read as such. A latitude and longitude both exactly zero are taken for a placeholder
written by software that did not know the site, and skipped.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from astropy.io.fits import Header

__all__ = [
    "SITE_KEYS",
    "Site",
    "observatory_location",
    "parse_angle",
    "parse_mpc_code",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    """An observatory's location.

    Attributes
    ----------
    lat_deg : float or None
        Geodetic latitude (deg, north positive); None when only an MPC code is known.
    lon_deg : float or None
        Longitude (deg, **east positive**, in (-180, 180]); None when only an MPC code
        is known.
    height_m : float or None
        Height above the WGS84 ellipsoid (or sea level, as the header gives it) in metres;
        None when unknown.
    mpc_code : str or None
        The MPC observatory code (three characters, e.g. ``"J95"``), when configured.
    source : str
        Where the location was read: ``"config"``, ``"header SITELAT/SITELONG"``, ...
    """

    lat_deg: float | None
    lon_deg: float | None
    height_m: float | None
    mpc_code: str | None
    source: str

    @property
    def has_coordinates(self) -> bool:
        """Whether latitude and longitude are known (not only an MPC code)."""
        return self.lat_deg is not None and self.lon_deg is not None

    def as_dict(self) -> dict[str, Any]:
        """The site as a plain mapping (for table metadata and JSON)."""
        return {
            "lat_deg": self.lat_deg,
            "lon_deg": self.lon_deg,
            "height_m": self.height_m,
            "mpc_code": self.mpc_code,
            "source": self.source,
        }


SITE_KEYS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("OBSGEO-B", "OBSGEO-L", ("OBSGEO-H",), True),
    ("SITELAT", "SITELONG", ("SITEELEV", "SITEALT"), False),
    ("LAT-OBS", "LONG-OBS", ("ALT-OBS", "ELEV-OBS"), False),
    ("OBSLAT", "OBSLONG", ("OBSALT", "OBSELEV"), False),
    ("OBS-LAT", "OBS-LONG", ("OBS-ELEV", "OBS-ALT"), False),
    ("LATITUDE", "LONGITUD", ("HEIGHT",), False),
    ("ESO TEL GEOLAT", "ESO TEL GEOLON", ("ESO TEL GEOELEV",), True),
)
"""Header cards of a geodetic location, in order of preference: latitude, longitude,
height candidates, and whether the longitude is east-positive by definition (else its sign
follows the rules in the module docstring). ``OBSGEO-X/Y/Z`` is tried after the first."""

_GEOCENTRIC_KEYS = ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z")
"""ITRS geocentric position of the observatory (m), FITS WCS Paper VII."""

_EARTH_RADIUS_RANGE_M = (6.30e6, 6.42e6)
"""A geocentric position outside this distance from the centre is not on the ground."""

_MPC_CODE = re.compile(r"^[0-9A-Z][0-9]{2}$")
"""An MPC observatory code: three characters, a digit or letter then two digits."""

_HEMISPHERE = re.compile(r"^\s*([NSEW])\s*(.*?)\s*$|^\s*(.*?)\s*([NSEW])\s*$")
"""A hemisphere letter before or after the number (upper case: ``s`` is seconds)."""

_ANGLE_SYMBOLS = re.compile(r"deg|[:°d'′m\"″s]", re.IGNORECASE)
"""Separators of sexagesimal angles, replaced by spaces before the numbers are read."""

_WEST_POSITIVE = re.compile(
    r"west\s*(?:is\s*)?(?:\+|pos)|\+\s*=?\s*west|(?:degrees|degs?)\s+west|west\s+of"
    r"|west\s+longitude|\bW\s*\+|\+\s*=?\s*W\b",
    re.IGNORECASE,
)
"""A card comment that says its longitude counts westwards."""

_EAST_POSITIVE = re.compile(
    r"east|west\s*(?:is\s*)?(?:-|neg)|\bE\s*\+|\+\s*=?\s*E\b", re.IGNORECASE
)
"""A card comment that says its longitude counts eastwards."""


def parse_angle(value: Any) -> tuple[float, str | None]:
    """An angle in degrees from a header value, and the hemisphere letter it carried.

    Parameters
    ----------
    value : float, int or str
        A number, or a string: decimal (``'52.5'``), sexagesimal with spaces, colons or
        symbols (``'+52 30 00'``, ``'-04:30:00.5'``, ``'52d30m00s'``, ``'52°30'00"'``),
        with an optional hemisphere letter before or after (``'52 30 N'``, ``'W 4.5'``).

    Returns
    -------
    degrees : float
        The angle; with a hemisphere letter it is the magnitude (sign left to the caller).
    hemisphere : str or None
        ``"N"``, ``"S"``, ``"E"``, ``"W"`` or None.

    Raises
    ------
    ValueError
        When the value is not an angle.
    """
    if isinstance(value, bool):
        raise ValueError(f"not an angle: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"not an angle: {value!r}")
        return number, None
    text = str(value).strip().strip("'\"").strip()
    hemisphere = None
    letter = _HEMISPHERE.match(text)
    if letter:
        hemisphere = (letter.group(1) or letter.group(4)).upper()
        text = letter.group(2) if letter.group(1) else letter.group(3)
    spaced = _ANGLE_SYMBOLS.sub(" ", text).strip()
    negative = spaced.startswith("-")
    parts = spaced.lstrip("+-").split()
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"not an angle: {value!r}") from None
    if not 1 <= len(numbers) <= 3 or not all(math.isfinite(n) and n >= 0 for n in numbers):
        raise ValueError(f"not an angle: {value!r}")
    degrees, minutes, seconds = (numbers + [0.0, 0.0])[:3]
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"minutes or seconds out of range in {value!r}")
    magnitude = degrees + minutes / 60.0 + seconds / 3600.0
    if hemisphere is not None:
        return magnitude, hemisphere
    return (-magnitude if negative else magnitude), None


def _normalised_longitude(lon: float) -> float:
    lon = math.fmod(lon, 360.0)
    if lon <= -180.0:
        lon += 360.0
    elif lon > 180.0:
        lon -= 360.0
    return lon


def _latitude(header: Header, key: str) -> float:
    degrees, hemisphere = parse_angle(header[key])
    if hemisphere in ("E", "W"):
        raise ValueError(f"{key} = {header[key]!r} carries a longitude's hemisphere")
    if hemisphere == "S":
        degrees = -degrees
    if not -90.0 <= degrees <= 90.0:
        raise ValueError(f"{key} = {header[key]!r} is not a latitude")
    return degrees


def _longitude(header: Header, key: str, east_by_definition: bool, default_east: bool) -> float:
    degrees, hemisphere = parse_angle(header[key])
    if hemisphere in ("N", "S"):
        raise ValueError(f"{key} = {header[key]!r} carries a latitude's hemisphere")
    if hemisphere is not None:
        east = degrees if hemisphere == "E" else -degrees
    elif east_by_definition:
        east = degrees
    else:
        comment = header.comments[key] or ""
        if _WEST_POSITIVE.search(comment):
            west_positive = True
        elif _EAST_POSITIVE.search(comment):
            west_positive = False
        else:
            west_positive = not default_east
        east = -degrees if west_positive else degrees
    if not -360.0 <= east <= 360.0:
        raise ValueError(f"{key} = {header[key]!r} is not a longitude")
    return _normalised_longitude(east)


def _height(header: Header, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key not in header:
            continue
        value = header[key]
        try:
            height = float(str(value).strip().strip("'\"").removesuffix("m").strip())
        except ValueError:
            logger.warning("ignoring %s = %r: not a height in metres", key, value)
            continue
        if math.isfinite(height) and -500.0 <= height <= 10000.0:
            return height
        logger.warning("ignoring %s = %r: not a height on the ground (m)", key, value)
    return None


def _geocentric(header: Header) -> tuple[float, float, float] | None:
    if not all(key in header for key in _GEOCENTRIC_KEYS):
        return None
    try:
        x, y, z = (float(header[key]) for key in _GEOCENTRIC_KEYS)
    except (TypeError, ValueError):
        logger.warning("ignoring OBSGEO-X/Y/Z: not numbers")
        return None
    radius = math.sqrt(x * x + y * y + z * z)
    if not _EARTH_RADIUS_RANGE_M[0] <= radius <= _EARTH_RADIUS_RANGE_M[1]:
        logger.warning(
            "ignoring OBSGEO-X/Y/Z: %.0f m from the geocentre is not on the ground", radius
        )
        return None
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    geodetic = EarthLocation.from_geocentric(x, y, z, unit=u.m).to_geodetic()
    return (
        float(geodetic.lat.to_value(u.deg)),
        _normalised_longitude(float(geodetic.lon.to_value(u.deg))),
        float(geodetic.height.to_value(u.m)),
    )


def _from_header(
    header: Header, default_east: bool
) -> tuple[float, float, float | None, str] | None:
    for index, (lat_key, lon_key, height_keys, east_by_definition) in enumerate(SITE_KEYS):
        if lat_key in header and lon_key in header:
            try:
                lat = _latitude(header, lat_key)
                lon = _longitude(header, lon_key, east_by_definition, default_east)
            except ValueError as error:
                logger.warning("ignoring the site in %s/%s: %s", lat_key, lon_key, error)
            else:
                if lat == 0.0 and lon == 0.0:
                    logger.info("ignoring %s/%s = 0/0: a placeholder, not a site", lat_key, lon_key)
                else:
                    return lat, lon, _height(header, height_keys), f"header {lat_key}/{lon_key}"
        if index == 0:
            geocentric = _geocentric(header)
            if geocentric is not None:
                return (*geocentric, "header OBSGEO-X/Y/Z")
    return None


def _setting(settings: Any, name: str) -> Any:
    if settings is None:
        return None
    if isinstance(settings, Mapping):
        return settings.get(name)
    return getattr(settings, name, None)


def parse_mpc_code(value: Any) -> str | None:
    """An MPC observatory code in its canonical form, or None for none.

    Parameters
    ----------
    value : str, int or None
        ``"J95"``, ``"568"``, ``"j95"``; an int (as YAML reads ``568``) is zero-padded.

    Returns
    -------
    str or None

    Raises
    ------
    ValueError
        When the value is not a three-character code.
    """
    if value is None or value == "":
        return None
    code = f"{value:03d}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    code = code.strip().upper()
    if not _MPC_CODE.match(code):
        raise ValueError(f"mpc_code {value!r} is not an MPC observatory code (e.g. 'J95', '568')")
    return code


def observatory_location(header: Header | None, settings: Any = None) -> Site | None:
    """The observatory's location from the configuration or a frame's header.

    Parameters
    ----------
    header : astropy.io.fits.Header or None
        A frame's header (the reference frame's); None to use the configuration only.
    settings : object or mapping, optional
        Anything with the attributes (or keys) ``site_lat_deg``, ``site_lon_deg``
        (east-positive), ``site_height_m``, ``mpc_code`` and ``header_longitude``
        (``"east"`` or ``"west"``: how an unlabelled header longitude counts), e.g.
        :class:`spacepixels.measure.MeasureSettings`. Missing ones count as None.

    Returns
    -------
    Site or None
        The configured location when ``site_lat_deg`` and ``site_lon_deg`` are set, else
        the first usable one in the header (see :data:`SITE_KEYS`), with the configured
        ``mpc_code`` attached; a Site without coordinates when only an MPC code is
        configured; None when nothing is known.

    Raises
    ------
    ValueError
        When the configuration is inconsistent (only one of latitude and longitude, a
        latitude outside +-90, an ill-formed MPC code).
    """
    mpc_code = parse_mpc_code(_setting(settings, "mpc_code"))
    lat = _setting(settings, "site_lat_deg")
    lon = _setting(settings, "site_lon_deg")
    height = _setting(settings, "site_height_m")
    if (lat is None) != (lon is None):
        raise ValueError("set both site_lat_deg and site_lon_deg, or neither")
    if lat is not None and lon is not None:
        lat, lon = float(lat), float(lon)
        if not -90.0 <= lat <= 90.0 or not -360.0 <= lon <= 360.0:
            raise ValueError(f"site_lat_deg/site_lon_deg {lat}/{lon} is not a place on Earth")
        return Site(
            lat,
            _normalised_longitude(lon),
            None if height is None else float(height),
            mpc_code,
            "config",
        )
    convention = _setting(settings, "header_longitude") or "east"
    if convention not in ("east", "west"):
        raise ValueError(f"header_longitude must be 'east' or 'west', not {convention!r}")
    found = _from_header(header, convention == "east") if header is not None else None
    if found is not None:
        h_lat, h_lon, h_height, source = found
        if height is not None:
            h_height = float(height)
        return Site(h_lat, h_lon, h_height, mpc_code, source)
    if mpc_code is not None:
        return Site(None, None, None, mpc_code, "config (MPC code only)")
    return None
