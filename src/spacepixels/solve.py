"""Plate solving: where on the sky a session's frames are.

One frame per session (the reference frame; the frames are aligned, so one solution maps
them all) is turned into a celestial WCS: the function that takes a pixel to a right
ascension and declination. The later stages use it to put every detection on the sky.

How a solution is found (``solve.method``)
------------------------------------------
``header``
    Many capture and stacking programs write a WCS into the frames they save. It is read
    (TAN with a CD matrix, PC with CDELT, or CDELT with CROTA; SIP or TPV distortion),
    after repairing what real files get wrong (numbers stored as quoted strings, old
    ``EPOCH``/``RADECSYS`` names), and then *checked* before it is trusted: the pixel
    scale must be sane, the matrix not singular or badly skewed, and pixel to sky and
    back must agree. Where astrometry.net's index files are installed, the stars they
    list in the field are projected through the WCS and must land on stars found in the
    frame (a WCS written by a mount's pointing model, off by arcminutes, fails here). Such
    a WCS is not thrown away: its centre and scale become the solvers' hints, and when no
    solver does better it is used, marked ``"verified": false``. The reference pixel may
    lie outside the image: a cutout keeps its parent's.
``astrometry_net``
    Debian's ``solve-field``, offline, with the Tycho-2 index packages. The frame's stars
    are found with ``sep`` (the brightest few hundred, positions refined with windowed
    centroids) and handed over as a source list, which is faster than letting the solver
    read and search the image. The position and scale hints come from the configuration,
    else from the header: ``RA``/``DEC`` (degrees, or sexagesimal text), ``OBJCTRA``/
    ``OBJCTDEC``, and the pixel scale from ``FOCALLEN`` with ``XPIXSZ`` and ``XBINNING``
    (when binned, both readings of ``XPIXSZ``, binned or not, are allowed). The solver
    runs in a temporary folder under a time limit; only its WCS is kept.
``astap``
    The ASTAP command line, where installed (on ``PATH`` or ``astap_path``), with the
    same hints (``-ra`` in hours, ``-spd`` = Dec + 90, ``-fov`` = field height).
``nova``
    The online service nova.astrometry.net, only when chosen by name: log in with the API
    key from the environment variable ``nova_key_env``, upload the source list (not the
    image), poll the submission and the job, fetch the WCS. The key is never logged,
    written or shown in a message.
``auto`` (default)
    The header's WCS if it passes the checks, else the first local solver installed
    (``solve-field``, then ASTAP), else no solution: the status is ``unsolved``, the
    message says how to enable solving, and every later stage runs without sky
    coordinates.
``none``
    Do not solve.

After a solver has answered, its WCS is refitted to every catalogue star found in the
frame (a solver fits the stars of the one index file that recognised the field, a few
dozen; the index files together list several times more, about 35 per square degree):
the pairs within 2 px give a TAN fit, with SIP terms of order ``tweak_order`` when there
are enough pairs, kept only when it fits better. The residuals reported are those of
these pairs (catalogue position against the frame's star through the final WCS). The
reference stars come from the installed index files through ``query-starkd``, else from
the small Tycho-2 list shipped with the package where it covers the field.

What is written
---------------
``solve/wcs.fits``: a header-only FITS file (primary HDU, no data) holding the celestial
WCS (with ``IMAGEW``/``IMAGEH``, the frame's size), or no WCS when unsolved; read it with
:func:`read_wcs`. ``solve/solve.json``: strict JSON with ``status`` (``solved``,
``unsolved``, ``failed``), ``method``, ``message``, pixel scale (arcsec/px), centre,
rotation (the position angle of the image's +y axis, degrees east of north), parity,
field size, fit residuals (arcsec rms, from the solver's matched stars or from a
cross-match with the index stars), the time taken, the hints used and every attempt.
Pixel coordinates follow astropy: :func:`read_wcs` returns an ``astropy.wcs.WCS`` whose
``pixel_to_world_values(x, y)`` takes 0-based ``x`` (column), ``y`` (row).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

from spacepixels.settings import section_values

__all__ = [
    "ENABLE_MESSAGE",
    "METHODS",
    "SOLVE_SCHEMA",
    "Hints",
    "SolveSettings",
    "astap_command",
    "header_wcs",
    "parse_astap_output",
    "parse_dec",
    "parse_ra",
    "read_wcs",
    "solve_session",
    "solver_hints",
    "write_solution",
]

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("auto", "header", "astrometry_net", "astap", "nova", "none")
"""Values of ``solve.method``."""

SOLVE_SCHEMA = "spacepixels.solve/1"
"""Value of ``schema`` in ``solve.json``."""

ENABLE_MESSAGE = (
    "to plate-solve offline, install astrometry.net with its Tycho-2 index files "
    "(apt-get install astrometry.net astrometry-data-tycho2-10-19; add "
    "astrometry-data-tycho2-09 and -08 for fields narrower than 1.4 degrees) or ASTAP, "
    "or set solve.method (header, astrometry_net, astap, or nova with an API key)"
)
"""The line the report shows when no solver is available."""

SCALE_LIMITS_ARCSEC: tuple[float, float] = (0.02, 1800.0)
"""Pixel scales (arcsec per pixel) a header WCS may have and still be believed."""

_WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE[12]|CUNIT[12]|CRVAL[12]|CRPIX[12]|CDELT[12]|CROTA[12]|CD[12]_[12]"
    r"|PC[12]_[12]|PV[12]_\d+|PS[12]_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH"
    r"|(A|B|AP|BP)_ORDER|(A|B|AP|BP)_\d+_\d+|A_DMAX|B_DMAX)$"
)
"""Header keys that describe the celestial WCS of the first two axes."""

_ASTAP_NAMES: tuple[str, ...] = ("astap", "astap_cli")


# --------------------------------------------------------------------------------------
# Settings


def _sexagesimal_parts(text: str) -> tuple[float, list[float]] | None:
    """Sign and parts of ``"dd:mm:ss.s"``, ``"dd mm ss"`` or ``"12h34m56s"`` (None if the
    text is a plain number)."""
    cleaned = text.strip().lower()
    if not re.search(r"[:\shdm'\"°]", cleaned):
        return None
    sign = -1.0 if cleaned.startswith("-") else 1.0
    numbers = re.findall(r"\d+(?:\.\d*)?|\.\d+", cleaned)
    if not 1 <= len(numbers) <= 3:
        raise ValueError(f"not a sexagesimal angle: {text!r}")
    return sign, [float(n) for n in numbers]


def _from_parts(sign: float, parts: list[float]) -> float:
    value = 0.0
    for power, part in enumerate(parts):
        value += part / 60.0**power
    return sign * value


def parse_ra(value: Any, *, text_in_hours: bool = True, number_in_hours: bool = False) -> float:
    """A right ascension in degrees from a header or configuration value.

    Parameters
    ----------
    value : float, int or str
        Degrees as a number (``10.68``), or sexagesimal text (``"00 42 44.3"``,
        ``"00:42:44"``, ``"0h42m44s"``); a number written as text is read as a number.
    text_in_hours : bool
        Sexagesimal text is in hours (the convention for RA, e.g. ``OBJCTRA``).
    number_in_hours : bool
        A plain number is in hours (``OBJCTRA`` written as a number).

    Returns
    -------
    float
        Degrees in [0, 360).

    Raises
    ------
    ValueError
        When the value is no angle or out of range.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a right ascension: {value!r}")
    if isinstance(value, int | float):
        degrees = float(value) * (15.0 if number_in_hours else 1.0)
    else:
        text = str(value).strip()
        parsed = _sexagesimal_parts(text)
        if parsed is None:
            degrees = float(text) * (15.0 if number_in_hours else 1.0)
        else:
            sign, parts = parsed
            degrees = _from_parts(sign, parts) * (15.0 if text_in_hours else 1.0)
    if not (math.isfinite(degrees) and -360.0 <= degrees <= 360.0):
        raise ValueError(f"right ascension out of range: {value!r}")
    return degrees % 360.0


def parse_dec(value: Any) -> float:
    """A declination in degrees from a number or sexagesimal text (``"-00 00 25.1"``).

    Raises
    ------
    ValueError
        When the value is no angle or outside -90..90.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a declination: {value!r}")
    if isinstance(value, int | float):
        degrees = float(value)
    else:
        text = str(value).strip()
        parsed = _sexagesimal_parts(text)
        degrees = float(text) if parsed is None else _from_parts(*parsed)
    if not (math.isfinite(degrees) and -90.0 <= degrees <= 90.0):
        raise ValueError(f"declination out of range: {value!r}")
    return degrees


@dataclass(frozen=True)
class SolveSettings:
    """The ``solve:`` section of the configuration.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    timeout_s : float
        Time limit of one solver run, seconds (the process group is killed after it).
    scale_low, scale_high : float, optional
        Pixel scale range, arcsec per pixel; default from the headers (``FOCALLEN`` with
        ``XPIXSZ``/``XBINNING``), else a blind search.
    scale_tolerance : float
        Relative width of the range around a scale read from the headers.
    ra, dec : float or str, optional
        Position hint (degrees, or sexagesimal text: RA in hours); default the headers'.
    radius_deg : float
        Search radius around the position hint, degrees.
    downsample : int
        ASTAP's ``-z`` (0: ASTAP decides).
    max_sources : int
        The brightest sources handed to a solver.
    tweak_order : int
        Order of the SIP distortion ``solve-field`` fits (0: none, linear only).
    verify_header : bool
        Cross-check a header WCS against the index stars when they are installed.
    refine : bool
        Refit a solver's WCS to every catalogue star found in the frame (see
        :func:`_refine`); kept only when it fits better.
    solve_field_path : str, optional
        The ``solve-field`` executable; default the one on ``PATH``.
    index_dir : str, optional
        Folder of astrometry.net index files; default astrometry.net's configuration
        (``/etc/astrometry.cfg``).
    astap_path : str, optional
        The ASTAP executable; default ``astap`` or ``astap_cli`` on ``PATH``.
    astap_database : str, optional
        ASTAP's star database folder (``-d``).
    nova_url : str
        API address of nova.astrometry.net (or a compatible server).
    nova_key_env : str
        Name of the environment variable holding the API key.
    nova_poll_s : float
        Seconds between two questions to the server.
    """

    method: str = "auto"
    timeout_s: float = 120.0
    scale_low: float | None = None
    scale_high: float | None = None
    scale_tolerance: float = 0.15
    ra: float | str | None = None
    dec: float | str | None = None
    radius_deg: float = 5.0
    downsample: int = 0
    max_sources: int = 300
    tweak_order: int = 2
    verify_header: bool = True
    refine: bool = True
    solve_field_path: str | None = None
    index_dir: str | None = None
    astap_path: str | None = None
    astap_database: str | None = None
    nova_url: str = "https://nova.astrometry.net/api/"
    nova_key_env: str = "ASTROMETRY_NET_API_KEY"
    nova_poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"solve.method: {self.method!r} is not one of {', '.join(METHODS)}")
        if not self.timeout_s > 0:
            raise ValueError(f"solve.timeout_s must be positive, not {self.timeout_s}")
        for name in ("scale_low", "scale_high"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"solve.{name} must be positive, not {value}")
        if (
            self.scale_low is not None
            and self.scale_high is not None
            and self.scale_low > self.scale_high
        ):
            raise ValueError(
                f"solve.scale_low ({self.scale_low}) is above solve.scale_high ({self.scale_high})"
            )
        if not 0 <= self.scale_tolerance < 1:
            raise ValueError(f"solve.scale_tolerance must be in [0, 1), not {self.scale_tolerance}")
        if (self.ra is None) != (self.dec is None):
            raise ValueError("solve.ra and solve.dec go together: give both or neither")
        if self.ra is not None:
            object.__setattr__(self, "ra", parse_ra(self.ra))
            object.__setattr__(self, "dec", parse_dec(self.dec))
        if not 0 < self.radius_deg <= 180:
            raise ValueError(f"solve.radius_deg must be in (0, 180], not {self.radius_deg}")
        if not 0 <= self.downsample <= 4:
            raise ValueError(f"solve.downsample must be 0-4, not {self.downsample}")
        if self.max_sources < 10:
            raise ValueError(f"solve.max_sources must be at least 10, not {self.max_sources}")
        if not 0 <= self.tweak_order <= 5:
            raise ValueError(f"solve.tweak_order must be 0-5, not {self.tweak_order}")
        if not self.nova_poll_s > 0:
            raise ValueError(f"solve.nova_poll_s must be positive, not {self.nova_poll_s}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SolveSettings:
        """Settings from the configuration's ``solve:`` section.

        Parameters
        ----------
        values : mapping, optional
            Keys as the fields of this class; missing keys take their defaults, None
            means the default too.

        Returns
        -------
        SolveSettings

        Raises
        ------
        ValueError
            For an unknown key (named in the message) or a bad value.
        """
        values = section_values(cls, values, "solve")
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            default = known[name].default
            try:
                if name in ("ra", "dec"):
                    limit = 360.0 if name == "ra" else 90.0
                    if isinstance(value, int | float) and abs(value) > limit:
                        raise ValueError(
                            f"solve.{name}: {value!r} is out of range; YAML reads an unquoted "
                            'hh:mm:ss as a base-60 number, so quote it: "10:42:44"'
                        )
                    kwargs[name] = value
                elif isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise TypeError
                    kwargs[name] = value
                elif isinstance(default, int):
                    if isinstance(value, bool) or float(value) != int(value):
                        raise TypeError
                    kwargs[name] = int(value)
                elif isinstance(default, float) or name in ("scale_low", "scale_high"):
                    if isinstance(value, bool):
                        raise TypeError
                    kwargs[name] = float(value)
                else:
                    kwargs[name] = str(value)
            except TypeError as exc:
                raise ValueError(f"solve.{name}: {value!r} is not a valid value") from exc
            except ValueError as exc:
                if str(exc).startswith("solve."):
                    raise
                raise ValueError(f"solve.{name}: {value!r} is not a valid value") from exc
        return cls(**kwargs)


# --------------------------------------------------------------------------------------
# Reading a WCS


def _clean_wcs_header(header: fits.Header) -> fits.Header:
    """The WCS cards of ``header`` alone, numbers stored as text turned into numbers and
    old key names renamed, so that astropy reads them without complaint."""
    clean = fits.Header()
    for card in header.cards:
        key = card.keyword
        if not _WCS_KEY.match(key):
            continue
        value = card.value
        if isinstance(value, str) and not key.startswith(("CTYPE", "CUNIT", "RADE")):
            try:
                value = float(value.strip())
            except ValueError:
                logger.debug("ignoring %s = %r: not a number", key, value)
                continue
        if key in ("A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER", "WCSAXES"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        clean[key] = value
    if "RADECSYS" in clean:
        clean.setdefault("RADESYS", clean["RADECSYS"])
        del clean["RADECSYS"]
    if "EPOCH" in clean:
        clean.setdefault("EQUINOX", clean["EPOCH"])
        del clean["EPOCH"]
    ctypes = [str(clean.get(f"CTYPE{i}", "")) for i in (1, 2)]
    if any(c.endswith("-SIP") for c in ctypes) and "A_ORDER" not in clean:
        # SIP named but not given: read it as plain TAN rather than fail.
        for i in (1, 2):
            clean[f"CTYPE{i}"] = ctypes[i - 1][:-4]
    if "WCSAXES" in clean and clean["WCSAXES"] != 2:
        clean["WCSAXES"] = 2
    return clean


def _read_wcs_cards(header: fits.Header) -> tuple[Any | None, str | None]:
    """The celestial WCS in a header, or why there is none that can be read."""
    from astropy.wcs import WCS

    clean = _clean_wcs_header(header)
    if "CTYPE1" not in clean or "CTYPE2" not in clean:
        return None, "the frame has no celestial WCS"
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wcs = WCS(clean, naxis=2)
            wcs.wcs.set()
    except Exception as exc:  # astropy and wcslib raise many kinds for broken cards
        text = " ".join(str(exc).split())
        if "singular" in text.lower():
            return None, "the frame's WCS is not used: its matrix is singular"
        return None, f"the frame's WCS cannot be read ({text[:200]})"
    finally:
        for item in caught:
            logger.debug("reading the WCS: %s", str(item.message).strip())
    if not wcs.has_celestial or wcs.naxis != 2 or not wcs.is_celestial:
        return None, "the frame's WCS is not celestial"
    return wcs, None


def header_wcs(header: fits.Header) -> Any | None:
    """The celestial WCS in a header, as astropy reads it, or None when there is none.

    The header's WCS cards are taken alone and cleaned first: numbers stored as quoted
    strings become numbers, ``EPOCH`` and ``RADECSYS`` get their modern names, a ``-SIP``
    type without coefficients is read as plain TAN. astropy's warnings while reading are
    logged at debug level, never emitted.

    Parameters
    ----------
    header : astropy.io.fits.Header
        A frame's header, or a header-only WCS file's.

    Returns
    -------
    astropy.wcs.WCS or None
        Two celestial axes, or None when the header has no (readable) celestial WCS.
    """
    return _read_wcs_cards(header)[0]


def read_wcs(path: str | os.PathLike[str]) -> Any | None:
    """The celestial WCS of ``solve/wcs.fits``, or None when the session is unsolved.

    Parameters
    ----------
    path : path-like
        A file written by :func:`write_solution` (or any FITS file with a WCS).

    Returns
    -------
    astropy.wcs.WCS or None
        ``pixel_to_world_values(x, y)`` takes 0-based pixel coordinates.
    """
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header.copy()
    return header_wcs(header)


# --------------------------------------------------------------------------------------
# Hints


@dataclass(frozen=True)
class Hints:
    """What a solver is told about the field, and where each hint came from."""

    ra_deg: float | None = None
    dec_deg: float | None = None
    radius_deg: float | None = None
    scale_low: float | None = None
    scale_high: float | None = None
    position_source: str | None = None
    scale_source: str | None = None

    @property
    def has_position(self) -> bool:
        return self.ra_deg is not None and self.dec_deg is not None

    @property
    def has_scale(self) -> bool:
        return self.scale_low is not None and self.scale_high is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "ra_deg": _round(self.ra_deg, 6),
            "dec_deg": _round(self.dec_deg, 6),
            "radius_deg": _round(self.radius_deg, 4),
            "position_from": self.position_source,
            "scale_low_arcsec": _round(self.scale_low, 4),
            "scale_high_arcsec": _round(self.scale_high, 4),
            "scale_from": self.scale_source,
        }


def _header_float(header: fits.Header, *keys: str) -> tuple[float, str] | None:
    for key in keys:
        value = header.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except ValueError:
            continue
        if math.isfinite(number) and number > 0:
            return number, key
    return None


def _header_position(header: fits.Header) -> tuple[float, float, str] | None:
    """RA, Dec (degrees) and the keys they came from, from the usual pointing cards."""
    pairs = (
        ("RA", "DEC", False),
        ("OBJCTRA", "OBJCTDEC", True),
        ("RA_OBJ", "DEC_OBJ", False),
        ("TELRA", "TELDEC", False),
        ("CRVAL1", "CRVAL2", False),
    )
    for ra_key, dec_key, hours in pairs:
        if ra_key not in header or dec_key not in header:
            continue
        try:
            ra = parse_ra(header[ra_key], number_in_hours=hours)
            dec = parse_dec(header[dec_key])
        except (TypeError, ValueError):
            logger.debug(
                "%s/%s are not a position: %r %r", ra_key, dec_key, header[ra_key], header[dec_key]
            )
            continue
        return ra, dec, f"header {ra_key}/{dec_key}"
    return None


def _header_scale(header: fits.Header) -> tuple[float, float, str] | None:
    """The pixel scale range (arcsec/px) the optics in the header imply."""
    direct = _header_float(header, "PIXSCALE", "SCALE", "SECPIX", "PIXSCAL1")
    if direct is not None:
        return direct[0], direct[0], f"header {direct[1]}"
    focal = _header_float(header, "FOCALLEN", "FOCAL")
    pixel = _header_float(header, "XPIXSZ", "PIXSIZE1", "PIXSIZE")
    if focal is None or pixel is None:
        return None
    scale = 206.264806 * pixel[0] / focal[0]
    binning = _header_float(header, "XBINNING", "BINNING")
    keys = f"{focal[1]}/{pixel[1]}"
    if binning is not None and binning[0] > 1:
        # Some programs write the binned pixel size, others the physical one: allow both.
        return scale, scale * binning[0], f"header {keys}/{binning[1]}"
    return scale, scale, f"header {keys}"


def solver_hints(
    header: fits.Header,
    settings: SolveSettings,
    *,
    fallback: Hints | None = None,
) -> Hints:
    """Position and scale hints for a solver: the configuration's, else the header's.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The reference frame's header.
    settings : SolveSettings
        ``ra``/``dec``/``radius_deg`` and ``scale_low``/``scale_high`` win over the
        header; ``scale_tolerance`` widens a scale read from the header.
    fallback : Hints, optional
        Position and scale to use when neither gives them (e.g. from a header WCS that
        does not match the stars).

    Returns
    -------
    Hints
    """
    ra = dec = None
    position_source = None
    if settings.ra is not None and settings.dec is not None:
        ra, dec, position_source = float(settings.ra), float(settings.dec), "config"
    else:
        found = _header_position(header)
        if found is not None:
            ra, dec, position_source = found
        elif fallback is not None and fallback.has_position:
            ra, dec, position_source = fallback.ra_deg, fallback.dec_deg, fallback.position_source
    low = high = None
    scale_source = None
    if settings.scale_low is not None or settings.scale_high is not None:
        low = settings.scale_low or (settings.scale_high or 0.0) * 0.5
        high = settings.scale_high or (settings.scale_low or 0.0) * 2.0
        scale_source = "config"
    else:
        found_scale = _header_scale(header)
        if found_scale is not None:
            low = found_scale[0] * (1.0 - settings.scale_tolerance)
            high = found_scale[1] * (1.0 + settings.scale_tolerance)
            scale_source = found_scale[2]
        elif fallback is not None and fallback.has_scale:
            low, high, scale_source = fallback.scale_low, fallback.scale_high, fallback.scale_source
    return Hints(
        ra_deg=ra,
        dec_deg=dec,
        radius_deg=settings.radius_deg if ra is not None else None,
        scale_low=low,
        scale_high=high,
        position_source=position_source,
        scale_source=scale_source,
    )


# --------------------------------------------------------------------------------------
# Sources


@dataclass
class _Sources:
    """The frame's brightest sources: 0-based pixel positions and fluxes, brightest first."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    flux: NDArray[np.float64]
    fwhm_px: float


def _find_sources(data: NDArray[np.float32], max_sources: int) -> _Sources:
    """Stars for the solvers, with ``sep``: background, 5-sigma extraction, the brightest
    ``max_sources``, windowed centroids."""
    import sep

    image = np.ascontiguousarray(data, dtype=np.float32)
    mask = ~np.isfinite(image)
    if mask.any():
        image = np.where(mask, np.float32(np.nanmedian(image)), image)
    background = sep.Background(image, mask=mask if mask.any() else None, bw=64, bh=64)
    residual = image - background.back()
    pixstack, sub_objects = sep.get_extract_pixstack(), sep.get_sub_object_limit()
    sep.set_extract_pixstack(max(pixstack, image.size // 4))
    sep.set_sub_object_limit(max(sub_objects, 4096))
    try:
        objects = sep.extract(
            residual,
            5.0,
            err=background.globalrms,
            mask=mask if mask.any() else None,
            minarea=5,
            deblend_cont=0.005,
        )
    except Exception as exc:  # sep raises plain Exception when its buffers overflow
        logger.debug("sep at 5 sigma failed (%s); retrying at 10 sigma", exc)
        objects = sep.extract(residual, 10.0, err=background.globalrms, minarea=5)
    finally:  # sep's limits are global: leave them as found
        sep.set_extract_pixstack(pixstack)
        sep.set_sub_object_limit(sub_objects)
    if len(objects) == 0:
        return _Sources(np.empty(0), np.empty(0), np.empty(0), float("nan"))
    order = np.argsort(-objects["flux"], kind="stable")[:max_sources]
    objects = objects[order]
    x = np.asarray(objects["x"], dtype=np.float64)
    y = np.asarray(objects["y"], dtype=np.float64)
    a = np.asarray(objects["a"], dtype=np.float64)
    b = np.asarray(objects["b"], dtype=np.float64)
    fwhm = float(np.median(2.0 * np.sqrt(np.log(2.0) * (a * a + b * b))))
    sigma = max(0.5, fwhm / 2.3548) if math.isfinite(fwhm) else 1.0
    wx, wy, flags = sep.winpos(residual, x, y, sigma)
    good = (flags == 0) & np.isfinite(wx) & np.isfinite(wy) & (np.hypot(wx - x, wy - y) < 2.0)
    x = np.where(good, wx, x)
    y = np.where(good, wy, y)
    return _Sources(x, y, np.asarray(objects["flux"], dtype=np.float64), fwhm)


# --------------------------------------------------------------------------------------
# Checking and describing a solution


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(round(float(value), digits))


def _separation_deg(
    ra1: NDArray[np.float64] | float,
    dec1: NDArray[np.float64] | float,
    ra2: NDArray[np.float64] | float,
    dec2: NDArray[np.float64] | float,
) -> NDArray[np.float64]:
    from spacepixels.starlist import angular_distance_deg

    return angular_distance_deg(ra1, dec1, ra2, dec2)


def _position_angle_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    a1, d1, a2, d2 = (math.radians(v) for v in (ra1, dec1, ra2, dec2))
    east = math.sin(a2 - a1) * math.cos(d2)
    north = math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(a2 - a1)
    return math.degrees(math.atan2(east, north)) % 360.0


def _world(wcs: Any, x: Any, y: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, dec = wcs.pixel_to_world_values(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(ra, dtype=np.float64) % 360.0, np.asarray(dec, dtype=np.float64)


def _pixels(wcs: Any, ra: Any, dec: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = wcs.world_to_pixel_values(np.asarray(ra, float), np.asarray(dec, float))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _describe(wcs: Any, shape: tuple[int, int]) -> dict[str, Any]:
    """Centre, scale, rotation, parity and size of a WCS on an image of ``shape``."""
    height, width = shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ra, dec = _world(
        wcs,
        [cx, cx + 1.0, cx, 0.0, width - 1.0, cx, cx],
        [cy, cy, cy + 1.0, cy, cy, 0.0, height - 1.0],
    )
    step_x = float(_separation_deg(ra[0], dec[0], ra[1], dec[1])) * 3600.0
    step_y = float(_separation_deg(ra[0], dec[0], ra[2], dec[2])) * 3600.0
    up = _position_angle_deg(ra[0], dec[0], ra[2], dec[2])
    right = _position_angle_deg(ra[0], dec[0], ra[1], dec[1])
    # On the sky, east is 90 degrees counter-clockwise from north; an image whose +x axis
    # lies 90 degrees clockwise of +y (PA of +x = PA of +y - 90) shows the sky unmirrored.
    turn = (right - up) % 360.0
    width_deg = float(_separation_deg(ra[3], dec[3], ra[4], dec[4])) + step_x / 3600.0
    height_deg = float(_separation_deg(ra[5], dec[5], ra[6], dec[6])) + step_y / 3600.0
    return {
        "centre_ra_deg": _round(float(ra[0]), 7),
        "centre_dec_deg": _round(float(dec[0]), 7),
        "centre_sexagesimal": _sexagesimal(float(ra[0]), float(dec[0])),
        "pixel_scale_arcsec": _round(math.sqrt(step_x * step_y), 5),
        "pixel_scale_x_arcsec": _round(step_x, 5),
        "pixel_scale_y_arcsec": _round(step_y, 5),
        "rotation_deg": _round(up, 4),
        "parity": "normal" if 180.0 < turn < 360.0 else "flipped",
        "axes_angle_deg": _round(min(turn, 360.0 - turn), 4),
        "field_width_deg": _round(width_deg, 5),
        "field_height_deg": _round(height_deg, 5),
        "distortion": _distortion(wcs),
    }


def _distortion(wcs: Any) -> str | None:
    """``"SIP"``, ``"TPV"`` or ``"TPD"`` when the WCS carries that distortion, else None."""
    if getattr(wcs, "sip", None) is not None:
        return "SIP"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctype = str(wcs.to_header(relax=True).get("CTYPE1", ""))
    for name in ("TPV", "TPD"):
        if ctype.endswith(name):
            return name
    return None


def _sexagesimal(ra_deg: float, dec_deg: float) -> str:
    hours = ra_deg / 15.0
    total = round(hours * 3600.0, 2)
    h, rest = divmod(total, 3600.0)
    m, s = divmod(rest, 60.0)
    sign = "-" if dec_deg < 0 else "+"
    dtotal = round(abs(dec_deg) * 3600.0, 1)
    d, drest = divmod(dtotal, 3600.0)
    dm, ds = divmod(drest, 60.0)
    return f"{int(h) % 24:02d}h{int(m):02d}m{s:05.2f}s {sign}{int(d):02d}d{int(dm):02d}m{ds:04.1f}s"


def _sanity(wcs: Any, shape: tuple[int, int]) -> str | None:
    """Why a WCS cannot be believed, or None when it passes the structural checks."""
    matrix = np.asarray(wcs.pixel_scale_matrix, dtype=np.float64)
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(wcs.wcs.crval)):
        return "its matrix or reference values are not finite"
    if not np.all(np.isfinite(wcs.wcs.crpix)):
        return "its reference pixel is not finite"
    det = float(np.linalg.det(matrix))
    if not abs(det) > 0.0:
        return "its matrix is singular"
    height, width = shape
    try:
        info = _describe(wcs, shape)
    except Exception as exc:  # noqa: BLE001 - a broken projection fails in many ways
        return f"it cannot map the image ({exc})"
    scale = info["pixel_scale_arcsec"]
    low, high = SCALE_LIMITS_ARCSEC
    if scale is None or not low <= scale <= high:
        return f"its pixel scale ({scale} arcsec/px) is outside {low}-{high}"
    sx, sy = info["pixel_scale_x_arcsec"], info["pixel_scale_y_arcsec"]
    if max(sx, sy) / min(sx, sy) > 1.5:
        return f"its pixels are far from square ({sx:.3g} x {sy:.3g} arcsec)"
    if info["axes_angle_deg"] is None or abs(info["axes_angle_deg"] - 90.0) > 15.0:
        return f"its axes are skewed ({info['axes_angle_deg']} degrees apart)"
    xs = np.array([0.0, width - 1.0, 0.0, width - 1.0, (width - 1) / 2.0])
    ys = np.array([0.0, 0.0, height - 1.0, height - 1.0, (height - 1) / 2.0])
    ra, dec = _world(wcs, xs, ys)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        return "some of the image's corners map to no sky position"
    bx, by = _pixels(wcs, ra, dec)
    error = float(np.max(np.hypot(bx - xs, by - ys)))
    if not error < 0.05:
        return f"pixel to sky and back disagrees by {error:.3g} px"
    return None


@dataclass
class _Match:
    """A cross-match of catalogue stars with the frame's sources through a WCS."""

    expected: int
    matched: int
    rms_arcsec: float | None
    median_arcsec: float | None
    source: str


def _catalogue_stars(
    centre: tuple[float, float], radius: float, settings: SolveSettings
) -> tuple[NDArray[np.float64], NDArray[np.float64], str] | None:
    """Reference stars around a position: the installed index files, else the shipped
    star list where it covers the field (with the name of the source)."""
    key = (round(centre[0], 4), round(centre[1], 4), round(radius, 4), settings.index_dir)
    return _catalogue_stars_cached(*key, shutil.which("query-starkd"))


@functools.lru_cache(maxsize=16)
def _catalogue_stars_cached(
    ra: float, dec: float, radius: float, index_dir: str | None, query_starkd: str | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], str] | None:
    from spacepixels import starlist

    centre = (ra, dec)
    files = starlist.find_index_files(index_dir)
    if files and query_starkd:
        try:
            # The densest Tycho-2 files suffice; all files hold the same stars.
            dense = [f for f in files if "tycho2" in f.name][:3] or files[:3]
            table = starlist.index_stars(
                centre[0], centre[1], radius, index_files=dense, query_starkd=query_starkd
            )
            return (
                np.asarray(table["ra"], dtype=np.float64),
                np.asarray(table["dec"], dtype=np.float64),
                "astrometry.net index files",
            )
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            logger.debug("no index stars: %s", exc)
    if starlist.covering_field(centre[0], centre[1], radius) is not None:
        table = starlist.stars_near(centre[0], centre[1], radius)
        return (
            np.asarray(table["ra"], dtype=np.float64),
            np.asarray(table["dec"], dtype=np.float64),
            "shipped Tycho-2 star list",
        )
    return None


def _crossmatch(
    wcs: Any, sources: _Sources, shape: tuple[int, int], settings: SolveSettings
) -> _Match | None:
    """Project the catalogue's stars through ``wcs``; how many land on a source, how far."""
    from scipy.spatial import cKDTree

    if sources.x.size == 0:
        return None
    info = _describe(wcs, shape)
    height, width = shape
    radius = math.hypot(info["field_width_deg"], info["field_height_deg"]) / 2.0 * 1.05
    found = _catalogue_stars((info["centre_ra_deg"], info["centre_dec_deg"]), radius, settings)
    if found is None:
        return None
    ra, dec, where = found
    x, y = _pixels(wcs, ra, dec)
    edge = 5.0
    inside = (x >= edge) & (x <= width - 1 - edge) & (y >= edge) & (y <= height - 1 - edge)
    if not inside.any():
        return _Match(0, 0, None, None, where)
    scale = info["pixel_scale_arcsec"]
    tolerance = max(3.0, 3.0 / scale)
    tree = cKDTree(np.stack([sources.x, sources.y], axis=1))
    distance, nearest = tree.query(np.stack([x[inside], y[inside]], axis=1))
    hit = distance <= tolerance
    if not hit.any():
        return _Match(int(inside.sum()), 0, None, None, where)
    sra, sdec = _world(wcs, sources.x[nearest[hit]], sources.y[nearest[hit]])
    offsets = _separation_deg(sra, sdec, ra[inside][hit], dec[inside][hit]) * 3600.0
    return _Match(
        expected=int(inside.sum()),
        matched=int(hit.sum()),
        rms_arcsec=float(np.sqrt(np.mean(offsets**2))),
        median_arcsec=float(np.median(offsets)),
        source=where,
    )


def _matched_pairs(
    wcs: Any, sources: _Sources, shape: tuple[int, int], settings: SolveSettings, tolerance: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], str]:
    """Pixel positions of sources and the sky positions of the catalogue stars they are,
    paired through ``wcs`` within ``tolerance`` px (each source at most once), and the
    catalogue's name."""
    from scipy.spatial import cKDTree

    empty = np.empty(0)
    info = _describe(wcs, shape)
    radius = math.hypot(info["field_width_deg"], info["field_height_deg"]) / 2.0 * 1.05
    found = _catalogue_stars((info["centre_ra_deg"], info["centre_dec_deg"]), radius, settings)
    if found is None or sources.x.size == 0:
        return empty, empty, empty, empty, ""
    ra, dec, label = found
    x, y = _pixels(wcs, ra, dec)
    height, width = shape
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    tree = cKDTree(np.stack([sources.x, sources.y], axis=1))
    distance, nearest = tree.query(np.stack([x[inside], y[inside]], axis=1))
    hit = distance <= tolerance
    # One catalogue star per source: keep the closest.
    order = np.argsort(distance[hit], kind="stable")
    _, first = np.unique(nearest[hit][order], return_index=True)
    pick = order[first]
    src = nearest[hit][pick]
    return sources.x[src], sources.y[src], ra[inside][hit][pick], dec[inside][hit][pick], label


def _rms_arcsec(
    wcs: Any,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    ra: NDArray[np.float64],
    dec: NDArray[np.float64],
) -> float:
    sra, sdec = _world(wcs, x, y)
    offsets = _separation_deg(sra, sdec, ra, dec) * 3600.0
    return float(np.sqrt(np.mean(offsets**2)))


def _residuals(
    wcs: Any, sources: _Sources, shape: tuple[int, int], settings: SolveSettings
) -> _Match | None:
    """Offsets of the catalogue stars from the sources they pair with (within 2 px)."""
    x, y, ra, dec, label = _matched_pairs(wcs, sources, shape, settings, 2.0)
    if x.size < 5:
        return None
    sra, sdec = _world(wcs, x, y)
    offsets = _separation_deg(sra, sdec, ra, dec) * 3600.0
    return _Match(
        expected=int(x.size),
        matched=int(x.size),
        rms_arcsec=float(np.sqrt(np.mean(offsets**2))),
        median_arcsec=float(np.median(offsets)),
        source=f"cross-match with the {label}",
    )


def _refine(
    wcs: Any, sources: _Sources, shape: tuple[int, int], settings: SolveSettings
) -> tuple[Any, bool]:
    """Refit a solver's WCS to every catalogue star found in the frame.

    A solver fits its WCS to the stars of the one index that solved the field (a few
    dozen); the installed index files together list several times more. They are paired
    with the frame's sources through the solver's WCS (within 2 px), and a TAN WCS with
    SIP distortion of order ``tweak_order`` (linear when too few pairs: at least ten per
    free parameter) is fitted to them, twice. The refit is kept when it fits the pairs
    better than the solver's own WCS. Returns the WCS kept and whether it is the refit.
    """
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import fit_wcs_from_points

    best, refitted = wcs, False
    for _ in range(2):
        x, y, ra, dec, _ = _matched_pairs(best, sources, shape, settings, 2.0)
        if x.size < 12:
            break
        free = 6 + 2 * _sip_terms(settings.tweak_order)
        order = settings.tweak_order if x.size >= 10 * free else 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = fit_wcs_from_points(
                    (x, y),
                    SkyCoord(ra, dec, unit="deg", frame="icrs"),
                    proj_point="center",
                    projection="TAN",
                    sip_degree=order if order >= 2 else None,
                )
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            logger.debug("refit failed: %s", exc)
            break
        before = _rms_arcsec(best, x, y, ra, dec)
        after = _rms_arcsec(fitted, x, y, ra, dec)
        logger.debug("refit to %d stars: %.3f -> %.3f arcsec rms", x.size, before, after)
        if not after < before or _sanity(fitted, shape) is not None:
            break
        best, refitted = fitted, True
    return best, refitted


def _sip_terms(order: int) -> int:
    """Number of SIP coefficients per axis of order ``order`` (terms of degree 2..order)."""
    return sum(d + 1 for d in range(2, order + 1)) if order >= 2 else 0


def _output_header(wcs: Any, shape: tuple[int, int], method: str) -> fits.Header:
    """The header written to ``wcs.fits``: the WCS as astropy writes it, and the size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cards = wcs.to_header(relax=True)
    header = fits.Header()
    header["PLTSOLVD"] = (True, "plate solved")
    header["SOLVER"] = (method, "spacepixels solve.method that found the WCS")
    header["IMAGEW"] = (int(shape[1]), "[px] width of the solved image")
    header["IMAGEH"] = (int(shape[0]), "[px] height of the solved image")
    for card in cards.cards:
        if card.keyword in ("DATE-OBS", "MJD-OBS", "DATEREF", "MJDREFI", "MJDREFF"):
            continue
        header.append(card, end=True)
    return header


# --------------------------------------------------------------------------------------
# Running solvers


@dataclass
class _Attempt:
    method: str
    status: str  # solved, failed, unavailable, suspect (a header WCS that fits no stars)
    message: str
    seconds: float = 0.0
    header: fits.Header | None = None
    residual_rms_arcsec: float | None = None
    residual_median_arcsec: float | None = None
    n_matched: int | None = None
    residual_source: str | None = None
    verified: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "status": self.status,
            "message": self.message,
            "seconds": _round(self.seconds, 3),
        }


def _run_process(command: list[str], timeout_s: float, cwd: Path) -> tuple[int | None, str]:
    """Run a solver in its own process group; kill the group at the time limit.

    Returns the exit status (None when killed) and the combined output.
    """
    logger.debug("running %s", " ".join(command))
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        output, _ = process.communicate()
        return None, output or ""
    return process.returncode, output or ""


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _write_xylist(path: Path, sources: _Sources, shape: tuple[int, int]) -> None:
    """A source list as astrometry.net reads it: 1-based FITS pixel coordinates."""
    columns = [
        fits.Column(name="X", format="D", array=sources.x + 1.0),
        fits.Column(name="Y", format="D", array=sources.y + 1.0),
        fits.Column(name="FLUX", format="D", array=sources.flux),
    ]
    table = fits.BinTableHDU.from_columns(columns)
    table.header["IMAGEW"] = int(shape[1])
    table.header["IMAGEH"] = int(shape[0])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)


def _find_solve_field(settings: SolveSettings) -> str | None:
    if settings.solve_field_path:
        path = Path(settings.solve_field_path)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return shutil.which(settings.solve_field_path)
    return shutil.which("solve-field")


def _find_astap(settings: SolveSettings) -> str | None:
    if settings.astap_path:
        path = Path(settings.astap_path)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return shutil.which(settings.astap_path)
    for name in _ASTAP_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _astrometry_net_available(settings: SolveSettings) -> str | None:
    """Why ``solve-field`` cannot run, or None when it can."""
    from spacepixels.starlist import find_index_files

    if _find_solve_field(settings) is None:
        return "solve-field is not installed (apt-get install astrometry.net)"
    if not find_index_files(settings.index_dir):
        return (
            "solve-field has no index files (apt-get install astrometry-data-tycho2-10-19 "
            "astrometry-data-tycho2-09 astrometry-data-tycho2-08)"
        )
    return None


def _solve_astrometry_net(
    sources: _Sources, shape: tuple[int, int], hints: Hints, settings: SolveSettings, tmp: Path
) -> _Attempt:
    reason = _astrometry_net_available(settings)
    if reason is not None:
        return _Attempt("astrometry_net", "unavailable", reason)
    if sources.x.size < 8:
        return _Attempt(
            "astrometry_net", "failed", f"only {sources.x.size} stars found in the frame"
        )
    executable = _find_solve_field(settings)
    assert executable is not None
    height, width = shape
    xylist = tmp / "field.xyls"
    _write_xylist(xylist, sources, shape)
    out = {name: tmp / f"field.{name}" for name in ("wcs", "corr", "solved")}
    command = [
        executable,
        "--no-plots",
        "--overwrite",
        "--dir", str(tmp),
        "--temp-dir", str(tmp),
        "--out", "field",
        "--width", str(width),
        "--height", str(height),
        "--x-column", "X",
        "--y-column", "Y",
        "--sort-column", "FLUX",
        "--new-fits", "none",
        "--match", "none",
        "--rdls", "none",
        "--index-xyls", "none",
        "--wcs", str(out["wcs"]),
        "--corr", str(out["corr"]),
        "--solved", str(out["solved"]),
        "--crpix-center",
        "--cpulimit", str(max(1, int(math.ceil(settings.timeout_s)))),
    ]  # fmt: skip
    if settings.tweak_order > 0:
        command += ["--tweak-order", str(settings.tweak_order)]
    else:
        command += ["--no-tweak"]
    if hints.has_scale:
        command += ["--scale-units", "arcsecperpix"]
        command += [
            "--scale-low",
            f"{hints.scale_low:.6g}",
            "--scale-high",
            f"{hints.scale_high:.6g}",
        ]
    if hints.has_position:
        command += ["--ra", f"{hints.ra_deg:.8f}", "--dec", f"{hints.dec_deg:.8f}"]
        command += ["--radius", f"{hints.radius_deg:.6g}"]
    if settings.index_dir:
        config = tmp / "astrometry.cfg"
        config.write_text(f"add_path {settings.index_dir}\nautoindex\ninparallel\n")
        command += ["--config", str(config)]
    command.append(str(xylist))
    start = time.monotonic()
    status, output = _run_process(command, settings.timeout_s, tmp)
    seconds = time.monotonic() - start
    logger.debug("solve-field said:\n%s", output)
    if status is None:
        return _Attempt(
            "astrometry_net",
            "failed",
            f"solve-field found no solution within {settings.timeout_s:g} s (stopped)",
            seconds,
        )
    if not out["solved"].exists() or not out["wcs"].exists():
        why = _tail(output) if status != 0 else "no index quad matched the stars"
        return _Attempt(
            "astrometry_net",
            "failed",
            f"solve-field found no solution ({sources.x.size} stars; {why})",
            seconds,
        )
    header = fits.Header.fromfile(out["wcs"])
    attempt = _Attempt("astrometry_net", "solved", "solved by solve-field", seconds, header)
    if out["corr"].exists():
        _corr_residuals(attempt, out["corr"])
    return attempt


def _corr_residuals(attempt: _Attempt, corr: Path) -> None:
    """Residuals of the stars solve-field matched, through the final WCS."""
    assert attempt.header is not None
    wcs = header_wcs(attempt.header)
    if wcs is None:
        return
    with fits.open(corr, memmap=False) as hdul:
        if len(hdul) < 2 or hdul[1].data is None or len(hdul[1].data) == 0:
            return
        data = hdul[1].data
        fx = np.asarray(data["field_x"], dtype=np.float64) - 1.0
        fy = np.asarray(data["field_y"], dtype=np.float64) - 1.0
        ira = np.asarray(data["index_ra"], dtype=np.float64)
        idec = np.asarray(data["index_dec"], dtype=np.float64)
    ra, dec = _world(wcs, fx, fy)
    offsets = _separation_deg(ra, dec, ira, idec) * 3600.0
    attempt.residual_rms_arcsec = float(np.sqrt(np.mean(offsets**2)))
    attempt.residual_median_arcsec = float(np.median(offsets))
    attempt.n_matched = int(offsets.size)
    attempt.residual_source = "solve-field's matched stars (corr file)"


def _write_plain_fits(path: Path, data: NDArray[np.float32]) -> None:
    fits.PrimaryHDU(np.ascontiguousarray(data, dtype=np.float32)).writeto(path, overwrite=True)


def _header_from_text(raw: bytes) -> fits.Header:
    """A header from a ``.wcs`` file: FITS blocks, or one card per line."""
    text = raw.decode("ascii", errors="replace")
    if "\n" in text:
        lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
        text = "".join(line[:80].ljust(80) for line in lines)
    return fits.Header.fromstring(text)


def _read_ini(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip().upper()] = value.strip()
    return values


_ASTAP_EXIT = {
    1: "no solution",
    2: "not enough stars detected",
    16: "error reading the image",
    32: "no star database found (install one, or set solve.astap_database)",
    33: "error reading the star database",
}


def astap_command(
    executable: str,
    image: Path,
    output_base: Path,
    hints: Hints,
    settings: SolveSettings,
    shape: tuple[int, int],
) -> list[str]:
    """The ASTAP command line for one image (``-f``, ``-o``, ``-wcs`` and the hints).

    Parameters
    ----------
    executable : str
        ASTAP's path.
    image : Path
        The FITS image to solve.
    output_base : Path
        Base name of ASTAP's ``.wcs`` and ``.ini`` files (``-o``).
    hints : Hints
        ``-ra`` (hours) and ``-spd`` (Dec + 90) with ``-r`` (radius) from the position,
        else ``-r 180`` (the whole sky); ``-fov`` (the field's height in degrees) from
        the scale.
    settings : SolveSettings
        ``downsample`` (``-z``), ``max_sources`` (``-s``), ``astap_database`` (``-d``).
    shape : tuple of int
        ``(height, width)`` of the image.

    Returns
    -------
    list of str
    """
    command = [executable, "-f", str(image), "-o", str(output_base), "-wcs"]
    command += ["-z", str(settings.downsample), "-s", str(max(settings.max_sources, 50))]
    if hints.has_position:
        assert hints.ra_deg is not None and hints.dec_deg is not None
        command += ["-ra", f"{hints.ra_deg / 15.0:.7f}", "-spd", f"{hints.dec_deg + 90.0:.7f}"]
        command += ["-r", f"{hints.radius_deg:.4g}"]
    else:
        command += ["-r", "180"]
    if hints.has_scale:
        assert hints.scale_low is not None and hints.scale_high is not None
        scale = math.sqrt(hints.scale_low * hints.scale_high)
        command += ["-fov", f"{shape[0] * scale / 3600.0:.5f}"]
    if settings.astap_database:
        command += ["-d", settings.astap_database]
    return command


def parse_astap_output(output_base: Path) -> tuple[fits.Header | None, str]:
    """ASTAP's answer: the WCS (from ``.wcs``, else from ``.ini``) and its message.

    Parameters
    ----------
    output_base : Path
        The ``-o`` base name: ASTAP writes ``<base>.ini`` always and ``<base>.wcs`` when
        solved.

    Returns
    -------
    (astropy.io.fits.Header or None, str)
        The WCS cards when ``PLTSOLVD=T``, and ASTAP's ``ERROR``/``WARNING`` text.
    """
    ini_path = output_base.with_suffix(".ini")
    wcs_path = output_base.with_suffix(".wcs")
    ini = _read_ini(ini_path) if ini_path.exists() else {}
    message = "; ".join(v for k, v in ini.items() if k in ("ERROR", "WARNING") and v)
    solved = ini.get("PLTSOLVD", "").upper().startswith("T")
    if not solved:
        return None, message or "ASTAP wrote no solution"
    if wcs_path.exists():
        try:
            header = _header_from_text(wcs_path.read_bytes())
            if "CTYPE1" not in header:
                header["CTYPE1"] = "RA---TAN"
                header["CTYPE2"] = "DEC--TAN"
            return header, message
        except (OSError, ValueError) as exc:
            logger.debug("ASTAP's .wcs file cannot be read (%s); using the .ini", exc)
    header = fits.Header()
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    for key in (
        "CRPIX1",
        "CRPIX2",
        "CRVAL1",
        "CRVAL2",
        "CD1_1",
        "CD1_2",
        "CD2_1",
        "CD2_2",
        "CDELT1",
        "CDELT2",
        "CROTA1",
        "CROTA2",
    ):
        if key in ini:
            try:
                header[key] = float(ini[key])
            except ValueError:
                continue
    return header, message


def _solve_astap(
    data: NDArray[np.float32],
    hints: Hints,
    settings: SolveSettings,
    tmp: Path,
) -> _Attempt:
    executable = _find_astap(settings)
    if executable is None:
        return _Attempt("astap", "unavailable", "ASTAP is not installed (or set solve.astap_path)")
    image = tmp / "astap_field.fits"
    _write_plain_fits(image, data)
    base = tmp / "astap_solution"
    command = astap_command(executable, image, base, hints, settings, data.shape)
    start = time.monotonic()
    status, output = _run_process(command, settings.timeout_s, tmp)
    seconds = time.monotonic() - start
    logger.debug("ASTAP said:\n%s", output)
    if status is None:
        return _Attempt(
            "astap", "failed", f"ASTAP found no solution within {settings.timeout_s:g} s", seconds
        )
    header, message = parse_astap_output(base)
    if header is None:
        why = message or _ASTAP_EXIT.get(status or 0, "") or _tail(output)
        return _Attempt(
            "astap", "failed", f"ASTAP found no solution (exit {status}; {why})", seconds
        )
    return _Attempt(
        "astap", "solved", "solved by ASTAP" + (f" ({message})" if message else ""), seconds, header
    )


# --------------------------------------------------------------------------------------
# nova.astrometry.net


class _NovaError(RuntimeError):
    """The online service refused or failed; the message never holds the key."""


class _Nova:
    """The nova.astrometry.net API: JSON in a ``request-json`` form field, answers in JSON."""

    def __init__(self, url: str, key: str, deadline: float) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.key = key
        self.deadline = deadline
        self.session: str | None = None

    def _redact(self, text: str) -> str:
        return text.replace(self.key, "***") if self.key else text

    def time_left(self) -> float:
        """Seconds for the next request (at most 30); raises once the time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _NovaError("the time limit ran out")
        return min(30.0, left)

    def _open(self, request: urllib.request.Request | str) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.time_left()) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise _NovaError(f"the server answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _NovaError(self._redact(f"cannot reach the server ({reason})")) from None

    def call(self, service: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = dict(args or {})
        if self.session is not None:
            payload["session"] = self.session
        body = urllib.parse.urlencode({"request-json": json.dumps(payload)}).encode()
        request = urllib.request.Request(self.url + service, data=body, method="POST")
        raw = self._open(request)
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _NovaError(f"the server's answer to {service} is not JSON") from None
        if not isinstance(answer, dict):
            raise _NovaError(f"the server's answer to {service} is not a JSON object")
        if answer.get("status") == "error":
            text = str(answer.get("errormessage", "(no message)"))
            raise _NovaError(self._redact(f"{service}: {text}"))
        return answer

    def login(self) -> None:
        answer = self.call("login", {"apikey": self.key})
        session = answer.get("session")
        if not session:
            raise _NovaError("login: no session in the answer (is the API key right?)")
        self.session = str(session)

    def wcs_file(self, job: int) -> bytes:
        base = self.url[: -len("api/")] if self.url.endswith("api/") else self.url
        return self._open(f"{base}wcs_file/{int(job)}")


def _solve_nova(
    sources: _Sources, shape: tuple[int, int], hints: Hints, settings: SolveSettings
) -> _Attempt:
    key = os.environ.get(settings.nova_key_env, "").strip()
    if not key:
        return _Attempt(
            "nova",
            "unavailable",
            f"no API key: set the environment variable {settings.nova_key_env} to your "
            "nova.astrometry.net key",
        )
    if sources.x.size < 8:
        return _Attempt("nova", "failed", f"only {sources.x.size} stars found in the frame")
    start = time.monotonic()
    client = _Nova(settings.nova_url, key, start + settings.timeout_s)
    try:
        client.login()
        args: dict[str, Any] = {
            "publicly_visible": "n",
            "allow_commercial_use": "n",
            "allow_modifications": "n",
            "x": [round(float(v) + 1.0, 3) for v in sources.x],
            "y": [round(float(v) + 1.0, 3) for v in sources.y],
            "image_width": int(shape[1]),
            "image_height": int(shape[0]),
            "crpix_center": True,
            "tweak_order": int(settings.tweak_order),
        }
        if hints.has_scale:
            args.update(
                scale_units="arcsecperpix",
                scale_type="ul",
                scale_lower=hints.scale_low,
                scale_upper=hints.scale_high,
            )
        if hints.has_position:
            args.update(center_ra=hints.ra_deg, center_dec=hints.dec_deg, radius=hints.radius_deg)
        upload = client.call("upload", args)
        submission = upload.get("subid")
        if submission is None:
            raise _NovaError("upload: no submission id in the answer")
        job = None
        while job is None:
            answer = client.call(f"submissions/{int(submission)}")
            jobs = [j for j in answer.get("jobs") or [] if j is not None]
            if jobs:
                job = int(jobs[0])
                break
            client.time_left()
            time.sleep(min(settings.nova_poll_s, max(0.0, client.deadline - time.monotonic())))
        while True:
            status = str(client.call(f"jobs/{job}").get("status", ""))
            if status == "success":
                break
            if status == "failure":
                return _Attempt(
                    "nova",
                    "failed",
                    f"nova.astrometry.net found no solution (job {job})",
                    time.monotonic() - start,
                )
            client.time_left()
            time.sleep(min(settings.nova_poll_s, max(0.0, client.deadline - time.monotonic())))
        header = _header_from_text(client.wcs_file(job))
    except _NovaError as exc:
        return _Attempt(
            "nova",
            "failed",
            client._redact(f"nova.astrometry.net: {exc}"),
            time.monotonic() - start,
        )
    return _Attempt(
        "nova",
        "solved",
        f"solved by nova.astrometry.net (job {job})",
        time.monotonic() - start,
        header,
        detail={"nova_job": job},
    )


# --------------------------------------------------------------------------------------
# The stage


def _check_header(
    wcs: Any,
    header: fits.Header,
    sources: _Sources | None,
    shape: tuple[int, int],
    settings: SolveSettings,
) -> tuple[_Attempt, Hints | None]:
    """Judge a header's WCS.

    Returns the attempt (``solved``: believed; ``failed``: not believable, or believable
    in form but not matching the catalogue stars) and, in the last case, hints built from
    it for a solver (its centre and scale), since it is usually roughly right.
    """
    reason = _sanity(wcs, shape)
    if reason is not None:
        return _Attempt("header", "failed", f"the frame's WCS is not used: {reason}"), None
    attempt = _Attempt("header", "solved", "the frame's own WCS", header=header)
    match = _crossmatch(wcs, sources, shape, settings) if sources is not None else None
    if match is None or match.expected < 5:
        if not settings.verify_header:
            attempt.message += ", checked for sanity"
        elif match is None:
            attempt.message += ", checked for sanity (no catalogue stars at hand to cross-check"
            attempt.message += " it: install astrometry.net's index files)"
        else:
            attempt.message += ", checked for sanity (too few catalogue stars in its field"
            attempt.message += f" to cross-check it: {match.expected})"
        return attempt, None
    attempt.n_matched = match.matched
    if match.matched >= max(3, 0.25 * match.expected):
        attempt.verified = True
        attempt.residual_rms_arcsec = match.rms_arcsec
        attempt.residual_median_arcsec = match.median_arcsec
        attempt.residual_source = f"cross-match with the {match.source}"
        attempt.message += (
            f", checked against {match.matched} of the {match.expected} catalogue stars"
        )
        return attempt, None
    attempt.status = "suspect"
    attempt.verified = False
    attempt.message = (
        f"the frame's WCS does not match the stars: only {match.matched} of the "
        f"{match.expected} catalogue stars in its field land on a star of the frame"
    )
    info = _describe(wcs, shape)
    scale = float(info["pixel_scale_arcsec"])
    fallback = Hints(
        ra_deg=float(info["centre_ra_deg"]),
        dec_deg=float(info["centre_dec_deg"]),
        scale_low=scale * (1.0 - settings.scale_tolerance),
        scale_high=scale * (1.0 + settings.scale_tolerance),
        position_source="header WCS (does not match the stars)",
        scale_source="header WCS (does not match the stars)",
    )
    return attempt, fallback


def _finish(
    attempt: _Attempt,
    sources: _Sources | None,
    shape: tuple[int, int],
    settings: SolveSettings,
) -> tuple[Any | None, str | None]:
    """Read and check a solver's WCS; fill in residuals when the solver gave none."""
    assert attempt.header is not None
    wcs = header_wcs(attempt.header)
    if wcs is None:
        return None, f"{attempt.method} returned no readable celestial WCS"
    reason = _sanity(wcs, shape)
    if reason is not None:
        return None, f"the WCS {attempt.method} returned is not believable: {reason}"
    attempt.verified = True  # a solver's WCS is one that matched the stars
    if sources is None:
        return wcs, None
    if settings.refine:
        wcs, refitted = _refine(wcs, sources, shape, settings)
        attempt.detail["refined"] = refitted
    # Residuals: of every catalogue star paired with a star of the frame; the solver's own
    # (from solve-field's corr file) only when too few pair up.
    match = _residuals(wcs, sources, shape, settings)
    if match is not None:
        attempt.residual_rms_arcsec = match.rms_arcsec
        attempt.residual_median_arcsec = match.median_arcsec
        attempt.n_matched = match.matched
        attempt.residual_source = match.source
    return wcs, None


def solve_session(
    reference_frame: Path, settings: SolveSettings, workdir: Path
) -> tuple[fits.Header | None, dict[str, Any]]:
    """Plate-solve a session's reference frame.

    Never raises for a frame that cannot be solved or a solver that fails: the answer
    says so (``status`` ``unsolved`` or ``failed`` and a ``message``), and the later
    stages run without sky coordinates.

    Parameters
    ----------
    reference_frame : Path
        The frame to solve (any format :func:`spacepixels.frames.read_frame` reads).
    settings : SolveSettings
        The ``solve:`` section.
    workdir : Path
        A folder for the solvers' scratch files (created if missing); they are removed
        before returning.

    Returns
    -------
    (astropy.io.fits.Header or None, dict)
        The celestial WCS (header cards, with ``IMAGEW``/``IMAGEH``) or None, and the
        content of ``solve.json`` (see the module docstring).
    """
    from spacepixels.frames import FrameReadError, read_frame

    started = time.monotonic()
    reference_frame = Path(reference_frame)
    info: dict[str, Any] = {
        "schema": SOLVE_SCHEMA,
        "status": "unsolved",
        "method": None,
        "requested_method": settings.method,
        "message": "",
        "reference_frame": reference_frame.name,
        "image_width": None,
        "image_height": None,
        "hints": None,
        "attempts": [],
    }
    info.update({k: None for k in _SOLUTION_KEYS})

    def done(header: fits.Header | None) -> tuple[fits.Header | None, dict[str, Any]]:
        info["seconds"] = _round(time.monotonic() - started, 3)
        log = logger.info if info["status"] == "solved" else logger.warning
        log("%s: %s", reference_frame.name, info["message"])
        return header, info

    if settings.method == "none":
        info["message"] = "plate solving is turned off (solve.method: none)"
        return done(None)
    try:
        frame = read_frame(reference_frame)
    except FrameReadError as exc:
        info["status"] = "failed"
        info["message"] = f"the reference frame cannot be read: {exc}"
        return done(None)
    shape = frame.shape
    info["image_height"], info["image_width"] = int(shape[0]), int(shape[1])
    header_in = frame.header
    sources: _Sources | None = None

    def get_sources() -> _Sources:
        nonlocal sources
        if sources is None:
            try:
                sources = _find_sources(frame.data, settings.max_sources)
            except Exception as exc:  # sep fails on some pathological images
                logger.warning("%s: no stars found (%s)", reference_frame.name, exc)
                sources = _Sources(np.empty(0), np.empty(0), np.empty(0), float("nan"))
            logger.debug("%d sources for the solver", sources.x.size)
        return sources

    attempts: list[_Attempt] = []
    fallback: Hints | None = None
    solved: tuple[_Attempt, Any] | None = None
    suspect: tuple[_Attempt, Any] | None = None

    # 1. The header's own WCS.
    if settings.method in ("auto", "header"):
        t0 = time.monotonic()
        wcs, problem = _read_wcs_cards(header_in)
        if wcs is None:
            status = "unavailable" if problem == "the frame has no celestial WCS" else "failed"
            attempts.append(_Attempt("header", status, str(problem)))
        else:
            attempt, verdict = _check_header(
                wcs, header_in, get_sources() if settings.verify_header else None, shape, settings
            )
            attempt.seconds = time.monotonic() - t0
            attempts.append(attempt)
            if attempt.status == "solved":
                solved = (attempt, wcs)
            elif verdict is not None:  # sane, but it does not match the stars
                suspect = (attempt, wcs)
                fallback = verdict
                if settings.method == "header":
                    solved = suspect

    hints = solver_hints(header_in, settings, fallback=fallback)
    info["hints"] = hints.to_json()

    # 2. The solvers.
    if solved is None and settings.method != "header":
        if settings.method == "auto":
            order = ["astrometry_net", "astap"]
        else:
            order = [settings.method]
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="solve-", dir=workdir))
        try:
            for method in order:
                if method == "astrometry_net":
                    missing = _astrometry_net_available(settings)
                    if missing is not None:
                        attempts.append(_Attempt(method, "unavailable", missing))
                        continue
                t0 = time.monotonic()
                try:
                    if method == "astrometry_net":
                        attempt = _solve_astrometry_net(get_sources(), shape, hints, settings, tmp)
                    elif method == "astap":
                        attempt = _solve_astap(frame.data, hints, settings, tmp)
                    else:
                        attempt = _solve_nova(get_sources(), shape, hints, settings)
                except (OSError, ValueError, RuntimeError, subprocess.SubprocessError) as exc:
                    logger.debug("%s failed", method, exc_info=method != "nova")
                    text = " ".join(str(exc).split())[:300]
                    secret = os.environ.get(settings.nova_key_env, "").strip()
                    if secret:
                        text = text.replace(secret, "***")
                    attempt = _Attempt(
                        method, "failed", f"{method} failed: {text}", time.monotonic() - t0
                    )
                if attempt.status == "solved":
                    wcs, problem = _finish(attempt, get_sources(), shape, settings)
                    if problem is not None:
                        attempt.status = "failed"
                        attempt.message = problem
                    else:
                        attempts.append(attempt)
                        solved = (attempt, wcs)
                        break
                attempts.append(attempt)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    info["attempts"] = [a.to_json() for a in attempts]
    if solved is None and suspect is not None:
        solved = suspect
    if solved is not None:
        attempt, wcs = solved
        info.update(_describe(wcs, shape))
        info["status"] = "solved"
        info["method"] = attempt.method
        info["residual_rms_arcsec"] = _round(attempt.residual_rms_arcsec, 4)
        info["residual_median_arcsec"] = _round(attempt.residual_median_arcsec, 4)
        info["n_matched_stars"] = attempt.n_matched
        info["residual_source"] = attempt.residual_source
        info["solver_seconds"] = _round(attempt.seconds, 3)
        info["verified"] = attempt.verified
        info.update({k: v for k, v in attempt.detail.items()})
        residual = (
            f", residuals {attempt.residual_rms_arcsec:.2f} arcsec rms over "
            f"{attempt.n_matched} stars"
            if attempt.residual_rms_arcsec is not None
            else ""
        )
        if attempt.verified is False:
            info["message"] = (
                f"{attempt.message}; no solver found a better solution, so it is used unverified"
                if settings.method == "auto"
                else f"{attempt.message}; used as solve.method is header"
            )
            info["message"] += (
                f": centre {info['centre_sexagesimal']}, {info['pixel_scale_arcsec']:.3f} arcsec/px"
            )
            return done(_output_header(wcs, shape, attempt.method))
        info["message"] = (
            f"{attempt.message}: centre {info['centre_sexagesimal']}, "
            f"{info['pixel_scale_arcsec']:.3f} arcsec/px, rotation "
            f"{info['rotation_deg']:.2f} deg{residual}"
        )
        return done(_output_header(wcs, shape, attempt.method))

    ran = [a for a in attempts if a.method != "header" and a.status == "failed"]
    problems = "; ".join(a.message for a in attempts if a.status != "solved")
    if ran:
        info["status"] = "failed"
        info["method"] = ran[-1].method
        info["message"] = problems
        if settings.method != "nova":
            info["message"] += "; check the hints (solve.ra, solve.dec, solve.scale_low/high)"
    elif settings.method == "auto":
        info["message"] = f"not plate-solved: {problems}; {ENABLE_MESSAGE}"
    else:
        info["status"] = "failed"
        info["method"] = settings.method
        info["message"] = f"solve.method {settings.method} cannot run: {problems}"
        if settings.method in ("astrometry_net", "astap"):
            info["message"] += f"; {ENABLE_MESSAGE}"
    return done(None)


_SOLUTION_KEYS: tuple[str, ...] = (
    "centre_ra_deg",
    "centre_dec_deg",
    "centre_sexagesimal",
    "pixel_scale_arcsec",
    "pixel_scale_x_arcsec",
    "pixel_scale_y_arcsec",
    "rotation_deg",
    "parity",
    "axes_angle_deg",
    "field_width_deg",
    "field_height_deg",
    "distortion",
    "residual_rms_arcsec",
    "residual_median_arcsec",
    "n_matched_stars",
    "residual_source",
    "verified",
    "solver_seconds",
    "seconds",
)
"""Keys of ``solve.json`` that describe the solution (None while unsolved)."""


def _replace_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_solution(
    header: fits.Header | None,
    info: Mapping[str, Any],
    wcs_path: Path,
    json_path: Path,
) -> None:
    """Write ``solve/wcs.fits`` and ``solve/solve.json``, each whole or not at all.

    Parameters
    ----------
    header : astropy.io.fits.Header or None
        The WCS from :func:`solve_session`; None writes a header-only file with
        ``PLTSOLVD = F`` and no WCS.
    info : mapping
        ``solve.json``'s content; it must be strict JSON (no NaN).
    wcs_path, json_path : Path
        Where to write.

    Raises
    ------
    ValueError
        When ``info`` holds something strict JSON cannot (NaN, infinity, objects).
    """
    primary = fits.PrimaryHDU()
    if header is None:
        primary.header["PLTSOLVD"] = (False, "not plate solved; see solve.json")
    else:
        for card in header.cards:
            if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END"):
                continue
            primary.header.append(card, end=True)
    buffer = io.BytesIO()
    fits.HDUList([primary]).writeto(buffer)
    text = json.dumps(dict(info), indent=1, allow_nan=False, sort_keys=False) + "\n"
    _replace_atomic(Path(wcs_path), buffer.getvalue())
    _replace_atomic(Path(json_path), text.encode("utf-8"))
