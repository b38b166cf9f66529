"""Observation times come out as mid-exposure MJD (UTC) from whatever the capture program wrote."""

from __future__ import annotations

import math

import pytest
from astropy.io.fits import Header
from astropy.time import Time

from spacepixels.times import (
    ObservationTime,
    ObservationTimeError,
    exposure_seconds,
    mjd_to_iso,
    observation_time,
)

MJD_2026_03_14 = 61113.0
"""MJD of 2026-03-14T00:00:00 UTC."""


def _header(**cards: object) -> Header:
    header = Header()
    for key, value in cards.items():
        header[key.replace("_", "-")] = value
    return header


def _seconds(mjd: float) -> float:
    return mjd * 86400.0


def _when(header: Header) -> ObservationTime:
    result = observation_time(header)
    assert result is not None
    return result


def test_iso_date_obs_with_exptime_gives_the_middle_of_the_exposure() -> None:
    when = _when(_header(DATE_OBS="2026-03-14T21:03:11.250", EXPTIME=120.0))

    assert when.start_mjd == pytest.approx(MJD_2026_03_14 + (21 * 3600 + 3 * 60 + 11.25) / 86400)
    assert _seconds(when.mid_mjd - when.start_mjd) == pytest.approx(60.0, abs=1e-4)
    assert when.iso_mid == "2026-03-14T21:04:11.250"
    assert when.exposure_s == 120.0
    assert when.source == "DATE-OBS+EXPTIME"


def test_agrees_with_astropy_time() -> None:
    when = _when(_header(DATE_OBS="2026-03-14T21:03:11.250"))
    assert _seconds(when.start_mjd) == pytest.approx(
        _seconds(Time("2026-03-14T21:03:11.250", scale="utc").mjd), abs=1e-4
    )


def test_exposure_card_is_used_when_exptime_is_missing() -> None:
    when = _when(_header(DATE_OBS="2026-03-14T21:03:11", EXPOSURE=30))
    assert when.exposure_s == 30.0
    assert when.iso_mid == "2026-03-14T21:03:26.000"
    assert when.source == "DATE-OBS+EXPOSURE"
    assert exposure_seconds(_header(EXPOSURE=30)) == (30.0, "EXPOSURE")
    value, key = exposure_seconds(_header())
    assert math.isnan(value) and key is None


def test_date_only_with_time_obs() -> None:
    when = _when(_header(DATE_OBS="2026-03-14", TIME_OBS="21:03:11.5", EXPTIME=10))
    assert when.iso_mid == "2026-03-14T21:03:16.500"
    assert when.source == "DATE-OBS+TIME-OBS+EXPTIME"


def test_date_only_with_utcstart() -> None:
    when = _when(_header(DATE_OBS="2026-03-14", UTCSTART="23:59:50", EXPTIME=20))
    assert when.iso_mid == "2026-03-15T00:00:00.000"  # the middle is past midnight
    assert when.source == "DATE-OBS+UTCSTART+EXPTIME"


def test_a_readable_time_card_wins_over_an_unreadable_one() -> None:
    when = _when(_header(DATE_OBS="2026-03-14", TIME_OBS="n/a", UTCSTART="21:03:11"))
    assert when.source == "DATE-OBS+UTCSTART"


def test_date_avg_wins_as_the_middle_of_the_exposure() -> None:
    when = _when(
        _header(DATE_OBS="2026-03-14T21:00:00", DATE_AVG="2026-03-14T21:00:40", EXPTIME=60)
    )
    assert when.iso_mid == "2026-03-14T21:00:40.000"
    assert mjd_to_iso(when.start_mjd) == "2026-03-14T21:00:10.000"
    assert when.source == "DATE-AVG"


def test_mjd_obs_alone() -> None:
    when = _when(_header(MJD_OBS=MJD_2026_03_14 + 0.5, EXPTIME=86.4))
    assert when.start_mjd == MJD_2026_03_14 + 0.5
    assert when.iso_mid == "2026-03-14T12:00:43.200"
    assert when.source == "MJD-OBS+EXPTIME"


def test_legacy_dd_mm_yy_counts_years_from_1900() -> None:
    when = _when(_header(DATE_OBS="26/07/102", TIME_OBS="19:36:37", EXPTIME=60))
    assert mjd_to_iso(when.start_mjd) == "2002-07-26T19:36:37.000"
    assert when.iso_mid == "2002-07-26T19:37:07.000"


def test_old_and_future_dates_need_no_leap_second_table() -> None:
    # ERFA calls these years "dubious"; calendar arithmetic does not care (and never warns).
    assert _when(_header(DATE_OBS="03/01/95", TIME_OBS="01:02:03")).iso_mid == (
        "1995-01-03T01:02:03.000"
    )
    assert _when(_header(DATE_OBS="2041-06-01T00:00:00")).iso_mid == "2041-06-01T00:00:00.000"


@pytest.mark.parametrize(
    "cards",
    [
        {"DATE_OBS": "last tuesday"},
        {"DATE_OBS": "2026-13-40T25:00:00"},
        {"DATE_OBS": "2026-02-30T01:00:00"},
        {"DATE_OBS": "2026-03-14", "TIME_OBS": "late"},
    ],
)
def test_garbage_date_obs_is_an_error_naming_the_card(cards: dict[str, str]) -> None:
    with pytest.raises(ObservationTimeError, match=r"DATE-OBS|TIME-OBS"):
        observation_time(_header(**cards))


def test_date_without_a_time_of_day_is_an_error() -> None:
    with pytest.raises(ObservationTimeError, match="without a time of day"):
        observation_time(_header(DATE_OBS="2026-03-14", EXPTIME=60))


def test_no_time_at_all_is_none() -> None:
    assert observation_time(_header(EXPTIME=60, OBJECT="M31")) is None
    assert observation_time(Header()) is None


def test_iso_formatting_rounds_to_the_millisecond() -> None:
    assert mjd_to_iso(MJD_2026_03_14) == "2026-03-14T00:00:00.000"
    assert mjd_to_iso(MJD_2026_03_14 + 0.9999999999) == "2026-03-15T00:00:00.000"
