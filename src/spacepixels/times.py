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

Dates are turned into MJD by calendar arithmetic (days since 1858-11-17 plus the fraction
of the day), which is what MJD (UTC) means in a FITS header. It needs no leap-second table,
so it works for any year offline and without ERFA's "dubious year" warnings.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from astropy.io.fits import Header

__all__ = [
    "ObservationTime",
    "ObservationTimeError",
    "exposure_seconds",
    "mjd_to_iso",
    "observation_time",
]

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0

_EXPOSURE_KEYS = ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME")
"""Header cards holding the exposure length in seconds, in order of preference."""

_TIME_KEYS = ("TIME-OBS", "UTCSTART", "UTSTART", "UT", "UTC", "TIME_OBS")
"""Header cards holding the start time of day when DATE-OBS holds only a date."""

_MJD_EPOCH = date(1858, 11, 17)
"""Day zero of the Modified Julian Date."""

_LEGACY_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{2,3})\s*$")
_ISO_DATE_ONLY = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_ISO_DATE_TIME = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})[T ]"
    r"(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?\s*(?:Z|UTC|\+00:?00)?\s*$",
    re.IGNORECASE,
)
_TIME_OF_DAY = re.compile(r"^\s*(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?\s*$")


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
        return mjd_to_iso(self.mid_mjd)


def mjd_to_iso(mjd: float) -> str:
    """An MJD (UTC) as ``YYYY-MM-DDTHH:MM:SS.sss``, rounded to the millisecond."""
    days = math.floor(mjd)
    millis = round((mjd - days) * SECONDS_PER_DAY * 1000.0)
    moment = datetime(1858, 11, 17) + timedelta(days=days, milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _day_mjd(year: int, month: int, day: int) -> float:
    """MJD of 0h UTC on a calendar date; ValueError for a date that does not exist."""
    return float((date(year, month, day) - _MJD_EPOCH).days)


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
    """Seconds since midnight for ``HH:MM[:SS[.fff]]``, or None."""
    match = _TIME_OF_DAY.match(text)
    if not match:
        return None
    hours, minutes = int(match[1]), int(match[2])
    seconds = float(match[3]) if match[3] else 0.0
    if hours > 23 or minutes > 59 or seconds >= 61:
        return None
    return hours * 3600.0 + minutes * 60.0 + seconds


def _legacy_date(text: str) -> tuple[int, int, int] | None:
    """``DD/MM/YY`` with years counted from 1900 (``26/07/102`` is 2002-07-26)."""
    match = _LEGACY_DATE.match(text)
    if not match:
        return None
    return 1900 + int(match[3]), int(match[2]), int(match[1])


def _date_only(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a card holding a date without a time, or None."""
    legacy = _legacy_date(text)
    if legacy is not None:
        return legacy
    match = _ISO_DATE_ONLY.match(text)
    if match:
        return int(match[1]), int(match[2]), int(match[3])
    return None


def _date_string_to_mjd(key: str, text: str, header: Header) -> tuple[float, str]:
    """MJD from a date card, combining a split time of day where needed."""
    text = text.strip()
    ymd = _date_only(text)
    if ymd is not None:
        try:
            day = _day_mjd(*ymd)
        except ValueError as exc:
            raise ObservationTimeError(f"{key} = {text!r} is not a calendar date") from exc
        unreadable = None
        for tkey in _TIME_KEYS:
            value = header.get(tkey)
            if isinstance(value, str) and value.strip():
                seconds = _time_of_day(value)
                if seconds is not None:
                    return day + seconds / SECONDS_PER_DAY, f"{key}+{tkey}"
                unreadable = unreadable or f"{tkey} = {value!r}"
        if unreadable:
            raise ObservationTimeError(
                f"{unreadable} is not a time of day (HH:MM:SS), and {key} = {text!r} holds "
                "only a date"
            )
        raise ObservationTimeError(
            f"{key} = {text!r} holds a date without a time of day, and no TIME-OBS or UTCSTART"
        )
    match = _ISO_DATE_TIME.match(text)
    if match is None:
        raise ObservationTimeError(f"{key} = {text!r} is not a date and time")
    hours, minutes = int(match[4]), int(match[5])
    seconds = float(match[6]) if match[6] else 0.0
    try:
        day = _day_mjd(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise ObservationTimeError(f"{key} = {text!r} is not a calendar date") from exc
    if hours > 23 or minutes > 59 or seconds >= 61:
        raise ObservationTimeError(f"{key} = {text!r} is not a time of day")
    return day + (hours * 3600.0 + minutes * 60.0 + seconds) / SECONDS_PER_DAY, key


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
        if key in header and value is not None and not isinstance(value, str):
            raise ObservationTimeError(f"{key} = {value!r} is not a date and time")
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
