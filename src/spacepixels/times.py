"""Observation times from FITS headers, as mid-exposure MJD (UTC).

Capture programs disagree on how they write the time of a frame. The most common is a
``DATE-OBS`` holding the ISO start of the exposure (``2026-03-14T21:03:11.250``) with the
exposure length in ``EXPTIME`` or ``EXPOSURE``. Older software splits date and time over
``DATE-OBS`` and ``TIME-OBS`` (or ``UTCSTART``/``UT``), and some writes the pre-2000 FITS
form ``DD/MM/YY``, in which the year is counted from 1900 (``26/07/102`` is 2002-07-26).
Where ``DATE-AVG`` is given it already is the middle of the exposure and wins. ``MJD-OBS``
(start) is used when no date string is usable.

The reader never guesses silently: :func:`observation_time` returns ``None`` when no usable
time is present, and raises :class:`ObservationTimeError` naming the card when one is
present but cannot be parsed.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from astropy.io.fits import Header
from astropy.time import Time

__all__ = ["ObservationTime", "ObservationTimeError", "observation_time", "exposure_seconds"]

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0

_EXPOSURE_KEYS = ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME")
"""Header cards holding the exposure length in seconds, in order of preference."""

_TIME_KEYS = ("TIME-OBS", "UTCSTART", "UTSTART", "UT", "UTC", "TIME_OBS")
"""Header cards holding the start time of day when DATE-OBS holds only a date."""

_LEGACY_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2,3})\s*$")
_ISO_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d*)?)\s*$")


class ObservationTimeError(ValueError):
    """A time card is present but cannot be read."""


@dataclass(frozen=True)
class ObservationTime:
    """When a frame was exposed.

    Attributes
    ----------
    start_mjd : float
        Exposure start, MJD (UTC).
    mid_mjd : float
        Mid-exposure, MJD (UTC): the time every later stage uses.
    exposure_s : float
        Exposure length in seconds (NaN when the header does not say).
    source : str
        The cards the time came from, e.g. ``"DATE-OBS+EXPTIME"``, for the report.
    """

    start_mjd: float
    mid_mjd: float
    exposure_s: float
    source: str

    @property
    def iso_mid(self) -> str:
        """Mid-exposure as an ISO string (UTC), to the millisecond."""
        return Time(self.mid_mjd, format="mjd", scale="utc").isot


def exposure_seconds(header: Header) -> tuple[float, str | None]:
    """Exposure length in seconds and the card it came from, or ``(nan, None)``."""
    for key in _EXPOSURE_KEYS:
        if key in header:
            try:
                value = float(header[key])
            except (TypeError, ValueError):
                continue
            if math.isfinite(value) and value >= 0:
                return value, key
    return math.nan, None


def _time_of_day(text: str) -> float | None:
    """Seconds since midnight for ``HH:MM:SS[.fff]``, or None."""
    match = _TIME_OF_DAY.match(text)
    if not match:
        return None
    hours, minutes, seconds = int(match[1]), int(match[2]), float(match[3])
    if hours > 23 or minutes > 59 or seconds >= 61:
        return None
    return hours * 3600.0 + minutes * 60.0 + seconds


def _legacy_date_to_iso(text: str) -> str | None:
    """``DD/MM/YY`` with years counted from 1900 (``26/07/102`` is 2002-07-26)."""
    match = _LEGACY_DATE.match(text)
    if not match:
        return None
    day, month, year = int(match[1]), int(match[2]), 1900 + int(match[3])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


def _date_string_to_mjd(key: str, text: str, header: Header) -> tuple[float, str]:
    """MJD from a date card, combining a split time of day where needed."""
    text = text.strip()
    date_only = _legacy_date_to_iso(text)
    if date_only is None and _ISO_DATE_ONLY.match(text):
        date_only = text
    if date_only is not None:
        for tkey in _TIME_KEYS:
            if tkey in header and isinstance(header[tkey], str):
                seconds = _time_of_day(header[tkey])
                if seconds is not None:
                    day = Time(date_only, format="iso", scale="utc").mjd
                    return day + seconds / SECONDS_PER_DAY, f"{key}+{tkey}"
        raise ObservationTimeError(
            f"{key} = {text!r} holds a date without a time of day, and no TIME-OBS or UTCSTART"
        )
    iso = text.replace(" ", "T", 1) if "T" not in text else text
    iso = iso.rstrip("Z")
    try:
        return Time(iso, format="isot", scale="utc").mjd, key
    except ValueError:
        pass
    try:
        return Time(text, scale="utc").mjd, key
    except ValueError as exc:
        raise ObservationTimeError(f"{key} = {text!r} is not a date and time") from exc


def observation_time(header: Header) -> ObservationTime | None:
    """Read a frame's observation time from its header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image HDU's header.

    Returns
    -------
    ObservationTime or None
        None when the header holds no time at all (the frame is then linked by order).

    Raises
    ------
    ObservationTimeError
        When a time card is present but unreadable (garbage, date without time).
    """
    exposure, exp_key = exposure_seconds(header)
    half = 0.0 if math.isnan(exposure) else exposure / 2.0 / SECONDS_PER_DAY
    exp_note = f"+{exp_key}" if exp_key else ""

    if isinstance(header.get("DATE-AVG"), str) and header["DATE-AVG"].strip():
        mid, source = _date_string_to_mjd("DATE-AVG", header["DATE-AVG"], header)
        return ObservationTime(mid - half, mid, exposure, source)

    for key in ("DATE-OBS", "DATE-BEG"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            start, source = _date_string_to_mjd(key, value, header)
            return ObservationTime(start, start + half, exposure, source + exp_note)

    for key in ("MJD-OBS", "MJD-BEG"):
        if key in header:
            try:
                start = float(header[key])
            except (TypeError, ValueError) as exc:
                raise ObservationTimeError(f"{key} = {header[key]!r} is not a number") from exc
            if math.isfinite(start):
                return ObservationTime(start, start + half, exposure, key + exp_note)

    if "DATE-OBS" in header and not str(header["DATE-OBS"]).strip():
        raise ObservationTimeError("DATE-OBS is empty")
    return None
