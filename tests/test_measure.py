"""Tests of spacepixels.measure: sky positions, rates, the sidereal flag and links.

Each test writes linker-style tables (the columns of :mod:`spacepixels.link`) for objects
whose motion on the sky is known, built from a hand-made plate solution (TAN, TAN with SIP,
TPV): positions are laid out on the sky first and turned into pixels through the WCS, so
measure must turn them back into the motion they came from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from shared_data import REAL_FRAME  # noqa: E402

from spacepixels import link
from spacepixels.measure import (
    CANDIDATE_COLUMNS,
    DETECTION_COLUMNS,
    SIDEREAL_RATE_ARCSEC_PER_S,
    MeasureSettings,
    load_solution,
    publish,
)

MJD0 = 61113.875  # 2026-03-14T21:00 UTC
EXPOSURE_S = 20.0
CADENCE_MIN = 1.0
SIDEREAL_PER_MIN = SIDEREAL_RATE_ARCSEC_PER_S * 60.0


def wcs_header(kind: str = "tan") -> fits.Header:
    """A 2"/px plate solution rotated by 30 degrees at RA 150, Dec 20 (TAN, SIP or TPV)."""
    header = fits.Header()
    scale = 2.0 / 3600.0
    angle = math.radians(30.0)
    header["CTYPE1"] = {"tan": "RA---TAN", "sip": "RA---TAN-SIP", "tpv": "RA---TPV"}[kind]
    header["CTYPE2"] = {"tan": "DEC--TAN", "sip": "DEC--TAN-SIP", "tpv": "DEC--TPV"}[kind]
    header["CRVAL1"], header["CRVAL2"] = 150.0, 20.0
    header["CRPIX1"], header["CRPIX2"] = 1024.5, 768.5
    header["CD1_1"] = -scale * math.cos(angle)
    header["CD1_2"] = scale * math.sin(angle)
    header["CD2_1"] = scale * math.sin(angle)
    header["CD2_2"] = scale * math.cos(angle)
    header["CUNIT1"], header["CUNIT2"] = "deg", "deg"
    header["RADESYS"] = "ICRS"
    if kind == "sip":  # a few pixels of distortion at the corners
        header["A_ORDER"], header["B_ORDER"] = 2, 2
        header["A_2_0"], header["A_1_1"], header["A_0_2"] = 3e-6, -2e-6, 1e-6
        header["B_2_0"], header["B_1_1"], header["B_0_2"] = -1e-6, 2e-6, 4e-6
    if kind == "tpv":
        for axis in (1, 2):
            header[f"PV{axis}_0"], header[f"PV{axis}_1"], header[f"PV{axis}_2"] = 0.0, 1.0, 0.0
        header["PV1_4"], header["PV2_4"] = 2e-3, -1e-3
    return header


def write_solution(folder: Path, kind: str = "tan", status: str = "solved") -> tuple[Path, Path]:
    """``wcs.fits`` (header only, as solve writes it) and ``solve.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU()
    hdu.header.update(wcs_header(kind))
    wcs_path = folder / "wcs.fits"
    hdu.writeto(wcs_path, overwrite=True)
    solve_json = folder / "solve.json"
    solve_json.write_text(
        json.dumps(
            {
                "method": "astrometry_net",
                "status": status,
                "message": "" if status == "solved" else "no index covers this scale",
            }
        )
    )
    return wcs_path, solve_json


@dataclass
class Scene:
    """Candidates and detections in the linker's columns, laid out on the sky."""

    wcs: WCS
    candidates: list[dict] = field(default_factory=list)
    detections: list[dict] = field(default_factory=list)

    def pixels(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.wcs.all_world2pix(np.atleast_1d(ra), np.atleast_1d(dec), 0)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def _candidate(self, ident: str, kind: str, **values: float) -> None:
        row = {name: math.nan for name in link.CANDIDATE_COLUMNS}
        row.update(
            id=ident,
            kind=kind,
            snr_median=20.0,
            score=0.9,
            n_missed=0,
            fit_rms_px=0.1,
            flux_median=1000.0,
            length_px=0.0,
            frame_start="f000.fits",
            frame_end="f000.fits",
        )
        row.update(values)
        self.candidates.append(row)

    def _detection(self, ident: str, k: int, x: float, y: float, **values: float) -> None:
        row = {name: math.nan for name in link.DETECTION_COLUMNS}
        row.update(
            candidate_id=ident,
            frame=f"f{k:03d}.fits",
            frame_index=k,
            mjd=MJD0 + k * CADENCE_MIN / 1440.0,
            x=x,
            y=y,
            flux=1000.0,
            snr=20.0,
            peak_snr=10.0,
            x_fit=x,
            y_fit=y,
            elongation=1.0,
        )
        row.update(values)
        self.detections.append(row)

    def track(
        self,
        ident: str,
        start: SkyCoord,
        rate_arcsec_per_min: float,
        pa_deg: float,
        n: int = 10,
        kind: str = "track",
    ) -> None:
        """A point track along a great circle at a constant rate and direction."""
        minutes = np.arange(n) * CADENCE_MIN
        where = start.directional_offset_by(
            pa_deg * u.deg, rate_arcsec_per_min * minutes * u.arcsec
        )
        x, y = self.pixels(where.ra.deg, where.dec.deg)
        for k in range(n):
            self._detection(ident, k, x[k], y[k])
        speed = math.hypot(x[-1] - x[0], y[-1] - y[0]) / minutes[-1]
        self._candidate(
            ident,
            kind,
            n_frames=n,
            mjd_start=MJD0,
            mjd_end=MJD0 + minutes[-1] / 1440.0,
            x_start=x[0],
            y_start=y[0],
            x_end=x[-1],
            y_end=y[-1],
            rate_px_per_min=speed,
            direction_deg=math.degrees(math.atan2(y[-1] - y[0], x[-1] - x[0])) % 360.0,
            rate_px_per_frame=speed * CADENCE_MIN,
        )

    def geostationary(
        self,
        ident: str,
        ra0: float,
        dec: float,
        n: int = 3,
        factor: float = 1.0,
        backwards: bool = False,
    ) -> None:
        """Streaks of an object fixed in azimuth and altitude: RA grows with sidereal time.

        ``n == 1`` makes a single ``streak`` (drawn from its east end when ``backwards``).
        """
        ra_per_s = factor * SIDEREAL_RATE_ARCSEC_PER_S / 3600.0

        def ra_at(seconds: float) -> float:
            return ra0 + ra_per_s * seconds

        half = EXPOSURE_S / 2.0
        ends = []
        for k in range(n):
            mid = k * CADENCE_MIN * 60.0
            (x0, x1), (y0, y1) = self.pixels(
                np.array([ra_at(mid - half), ra_at(mid + half)]), np.array([dec, dec])
            )
            if backwards:
                x0, x1, y0, y1 = x1, x0, y1, y0
            cx, cy = self.pixels(np.array([ra_at(mid)]), np.array([dec]))
            self._detection(ident, k, cx[0], cy[0], x0=x0, y0=y0, x1=x1, y1=y1)
            ends.append((x0, y0, x1, y1))
        length = math.hypot(ends[0][2] - ends[0][0], ends[0][3] - ends[0][1])
        speed = length / (EXPOSURE_S / 60.0)
        self._candidate(
            ident,
            "streak_track" if n > 1 else "streak",
            n_frames=n,
            mjd_start=MJD0,
            mjd_end=MJD0 + (n - 1) * CADENCE_MIN / 1440.0,
            x_start=ends[0][0],
            y_start=ends[0][1],
            x_end=ends[-1][2],
            y_end=ends[-1][3],
            rate_px_per_min=speed,
            direction_deg=math.degrees(
                math.atan2(ends[-1][3] - ends[0][1], ends[-1][2] - ends[0][0])
            )
            % 360.0,
            rate_px_per_frame=speed * CADENCE_MIN,
            length_px=length,
        )

    def flash(self, ident: str, where: SkyCoord, k: int = 4) -> None:
        x, y = self.pixels(where.ra.deg, where.dec.deg)
        self._detection(ident, k, x[0], y[0])
        mjd = MJD0 + k * CADENCE_MIN / 1440.0
        self._candidate(
            ident,
            "anomaly",
            n_frames=1,
            mjd_start=mjd,
            mjd_end=mjd,
            x_start=x[0],
            y_start=y[0],
            x_end=x[0],
            y_end=y[0],
            rate_px_per_min=0.0,
            rate_px_per_frame=0.0,
        )

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        candidates = Table(
            rows=[[row[name] for name in link.CANDIDATE_COLUMNS] for row in self.candidates],
            names=link.CANDIDATE_COLUMNS,
        )
        detections = Table(
            rows=[[row[name] for name in link.DETECTION_COLUMNS] for row in self.detections],
            names=link.DETECTION_COLUMNS,
        )
        candidates.write(folder / "candidates.ecsv", format="ascii.ecsv", overwrite=True)
        detections.write(folder / "detections.ecsv", format="ascii.ecsv", overwrite=True)
        return folder / "candidates.ecsv", folder / "detections.ecsv"


def site_header() -> fits.Header:
    header = fits.Header()
    header["EXPTIME"] = EXPOSURE_S
    header["SITELAT"] = ("+52 30 00", "site latitude")
    header["SITELONG"] = ("-04 15 00", "[deg] east longitude")
    header["SITEELEV"] = 120.0
    return header


def run(tmp_path: Path, scene: Scene, kind: str = "tan", **kwargs) -> tuple[Table, Table]:
    link_c, link_d = scene.write(tmp_path / "link")
    wcs_path, solve_json = write_solution(tmp_path / "solve", kind)
    kwargs.setdefault("reference_header", site_header())
    return publish(
        link_c,
        link_d,
        tmp_path / "candidates.ecsv",
        tmp_path / "detections.ecsv",
        wcs_path=wcs_path,
        solve_json=solve_json,
        **kwargs,
    )


def row(table: Table, ident: str):
    return table[list(table["id"]).index(ident)]


def links_of(candidate) -> dict[str, str]:
    return json.loads(str(candidate["links"]))


# --------------------------------------------------------------------------- sky motion


@pytest.mark.parametrize("kind", ["tan", "sip", "tpv"])
def test_a_track_keeps_its_sky_rate_and_position_angle(tmp_path, kind):
    scene = Scene(WCS(wcs_header(kind)))
    scene.track("T0001", SkyCoord(150.05, 19.98, unit="deg"), 3.7, 112.0)
    scene.track("T0002", SkyCoord(149.90, 20.10, unit="deg"), 0.45, 301.5, n=30, kind="slow_mover")
    candidates, _ = run(tmp_path, scene, kind)
    for ident, rate, pa in (("T0001", 3.7, 112.0), ("T0002", 0.45, 301.5)):
        candidate = row(candidates, ident)
        assert candidate["rate_arcsec_per_min"] == pytest.approx(rate, rel=0.01)
        assert abs((candidate["pa_deg"] - pa + 180.0) % 360.0 - 180.0) < 0.5
        assert not candidate["sidereal_rate"]
    assert "solved" in candidates.meta["sky"]["reason"]
    if kind != "tan":
        assert kind.upper() in candidates.meta["sky"]["reason"]


def test_positions_are_the_wcs_own_conversion_with_distortion(tmp_path):
    truth = WCS(wcs_header("sip"))
    scene = Scene(truth)
    scene.track("T0001", SkyCoord(150.3, 20.2, unit="deg"), 5.0, 45.0)  # far from CRPIX
    scene.geostationary("K0001", 149.8, 19.9)
    candidates, detections = run(tmp_path, scene, "sip")
    ra, dec = truth.all_pix2world(np.asarray(detections["x"]), np.asarray(detections["y"]), 0)
    assert np.max(np.abs(np.asarray(detections["ra"]) - ra)) < 1e-9
    assert np.max(np.abs(np.asarray(detections["dec"]) - dec)) < 1e-9
    # The distortion matters: the linear part alone is pixels away.
    linear_ra, _ = truth.wcs_pix2world(np.asarray(detections["x"]), np.asarray(detections["y"]), 0)
    assert np.max(np.abs(linear_ra - ra)) * 3600 > 2.0
    streaks = detections[detections["candidate_id"] == "K0001"]
    ra0, dec0 = truth.all_pix2world(np.asarray(streaks["x0"]), np.asarray(streaks["y0"]), 0)
    assert np.allclose(streaks["ra0"], ra0, atol=1e-9) and np.allclose(
        streaks["dec0"], dec0, atol=1e-9
    )
    points = detections[detections["candidate_id"] == "T0001"]
    assert np.all(np.isnan(points["ra0"]))
    track = row(candidates, "T0001")
    start_ra, start_dec = truth.all_pix2world([track["x_start"]], [track["y_start"]], 0)
    assert track["ra_start"] == pytest.approx(start_ra[0], abs=1e-9)
    assert track["dec_start"] == pytest.approx(start_dec[0], abs=1e-9)
    assert (
        SkyCoord(track["ra_start"], track["dec_start"], unit="deg")
        .separation(SkyCoord(150.3, 20.2, unit="deg"))
        .arcsec
        < 1e-3
    )


def test_the_real_cutout_with_crpix_outside_the_frame(tmp_path):
    if not REAL_FRAME.exists():
        pytest.skip(f"real frame {REAL_FRAME} is absent")
    header = fits.getheader(REAL_FRAME)
    truth = WCS(header, fix=False)
    scene = Scene(truth)
    scene._detection("S0001", 0, 180.0, 325.0, x0=20.0, y0=340.0, x1=340.0, y1=310.0)
    scene._candidate(
        "S0001",
        "streak",
        n_frames=1,
        mjd_start=MJD0,
        mjd_end=MJD0,
        x_start=20.0,
        y_start=340.0,
        x_end=340.0,
        y_end=310.0,
        rate_px_per_min=math.hypot(320.0, 30.0),
        length_px=math.hypot(320.0, 30.0),
    )
    link_c, link_d = scene.write(tmp_path / "link")
    candidates, detections = publish(
        link_c,
        link_d,
        tmp_path / "c.ecsv",
        tmp_path / "d.ecsv",
        wcs_path=REAL_FRAME,
        reference_header=header,
    )
    ra, dec = truth.all_pix2world([180.0], [325.0], 0)
    assert detections["ra"][0] == pytest.approx(ra[0], abs=1e-9)
    assert detections["dec"][0] == pytest.approx(dec[0], abs=1e-9)
    streak = candidates[0]
    # About 3"/px and 60 s: some 320 px a minute, some 16 arcmin a minute, going east.
    assert 800 < streak["rate_arcsec_per_min"] < 1200
    assert 80 < streak["pa_deg"] < 100
    satchecker = parse_qs(urlparse(links_of(streak)["satchecker"]).query)
    assert float(satchecker["latitude"][0]) == pytest.approx(-32.38, abs=0.01)
    assert float(satchecker["longitude"][0]) == pytest.approx(20.81, abs=0.01)


# --------------------------------------------------------------------------- sidereal rate


def test_a_geostationary_track_is_flagged_and_an_asteroid_is_not(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.geostationary("K0001", 149.8, 19.95, n=3)
    scene.geostationary("S0001", 150.1, 20.05, n=1, backwards=True)  # drawn west to east
    scene.track("T0001", SkyCoord(150.0, 20.0, unit="deg"), 0.6, 95.0)  # slow, eastwards
    # Sidereal speed, wrong direction: a satellite, but not geostationary.
    scene.track("T0002", SkyCoord(150.0, 19.9, unit="deg"), SIDEREAL_PER_MIN * 0.94, 0.0, n=3)
    candidates, _ = run(tmp_path, scene)
    geo = row(candidates, "K0001")
    expected = SIDEREAL_PER_MIN * math.cos(math.radians(19.95))
    assert geo["rate_arcsec_per_min"] == pytest.approx(expected, rel=0.01)
    assert geo["pa_deg"] == pytest.approx(90.0, abs=0.5)
    assert geo["sidereal_rate"]
    assert row(candidates, "S0001")["sidereal_rate"]
    assert abs(row(candidates, "S0001")["pa_deg"] - 270.0) < 0.5  # a streak has no arrow
    assert not row(candidates, "T0001")["sidereal_rate"]
    assert not row(candidates, "T0002")["sidereal_rate"]
    assert candidates.meta["sidereal_rate"]["pa_deg"] == 90.0


def test_the_sidereal_tolerance_is_a_setting(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.geostationary("K0001", 149.8, 19.95, n=3, factor=1.03)
    loose, _ = run(tmp_path / "a", scene, settings=MeasureSettings(sidereal_tolerance=0.05))
    tight, _ = run(tmp_path / "b", scene, settings=MeasureSettings(sidereal_tolerance=0.02))
    assert loose["sidereal_rate"][0]
    assert not tight["sidereal_rate"][0]


def test_a_streak_rate_without_an_exposure_in_the_header(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.geostationary("K0001", 149.8, 19.95, n=3)
    scene.geostationary("S0001", 150.1, 20.05, n=1)
    candidates, _ = run(tmp_path, scene, reference_header=None)
    expected = SIDEREAL_PER_MIN * math.cos(math.radians(20.0))
    for ident in ("K0001", "S0001"):
        assert row(candidates, ident)["rate_arcsec_per_min"] == pytest.approx(expected, rel=0.01)


def test_a_flash_has_no_motion_but_gets_satellite_links(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.flash("F0001", SkyCoord(150.02, 20.03, unit="deg"))
    candidates, _ = run(tmp_path, scene)
    flash = candidates[0]
    assert np.isnan(flash["rate_arcsec_per_min"]) and np.isnan(flash["pa_deg"])
    assert flash["ra_start"] == pytest.approx(150.02, abs=1e-7)
    assert not flash["sidereal_rate"]
    assert list(links_of(flash)) == ["satchecker", "stellarium"]


def test_frames_without_times_keep_the_direction_but_not_the_rate(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.track("T0001", SkyCoord(150.05, 19.98, unit="deg"), 3.7, 112.0)
    for candidate in scene.candidates:
        candidate.update(mjd_start=math.nan, mjd_end=math.nan, rate_px_per_min=math.nan)
    for detection in scene.detections:
        detection["mjd"] = math.nan
    candidates, _ = run(tmp_path, scene)
    track = candidates[0]
    assert np.isnan(track["rate_arcsec_per_min"])
    assert track["pa_deg"] == pytest.approx(112.0, abs=0.5)
    assert track["utc_start"] == ""
    assert links_of(track) == {}


# --------------------------------------------------------------------------- links and site


def test_links_by_kind_point_at_the_candidate_time_place_and_site(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.track("T0001", SkyCoord(150.05, 19.98, unit="deg"), 3.7, 112.0)
    scene.track("T0002", SkyCoord(150.0, 19.9, unit="deg"), 400.0, 200.0, n=3)  # fast
    scene.geostationary("K0001", 149.8, 19.95, n=3)
    settings = MeasureSettings(mpc_code="J95", lookup_radius_arcmin=4.0)
    candidates, _ = run(tmp_path, scene, settings=settings)
    asteroid = links_of(row(candidates, "T0001"))
    assert list(asteroid) == ["jpl", "skybot", "mpc", "stellarium"]
    assert list(links_of(row(candidates, "T0002"))) == [
        "jpl",
        "skybot",
        "mpc",
        "satchecker",
        "stellarium",
    ]
    assert list(links_of(row(candidates, "K0001"))) == ["satchecker", "stellarium"]

    track = row(candidates, "T0001")
    middle = SkyCoord(track["ra_start"], track["dec_start"], unit="deg").directional_offset_by(
        track["pa_deg"] * u.deg, 0.5 * track["rate_arcsec_per_min"] * 9.0 * u.arcsec
    )
    mjd_mid = 0.5 * (track["mjd_start"] + track["mjd_end"])
    skybot = parse_qs(urlparse(asteroid["skybot"]).query)
    assert float(skybot["-ep"][0]) == pytest.approx(mjd_mid + 2400000.5, abs=1e-6)
    assert float(skybot["-ra"][0]) == pytest.approx(middle.ra.deg, abs=1e-5)
    assert float(skybot["-dec"][0]) == pytest.approx(middle.dec.deg, abs=1e-5)
    assert float(skybot["-rd"][0]) == pytest.approx(4.0 / 60, abs=1e-5)
    assert skybot["-loc"] == ["J95"]
    assert parse_qs(urlparse(asteroid["jpl"]).query)["mpc-code"] == ["J95"]
    assert parse_qs(urlparse(asteroid["mpc"]).query)["oc"] == ["J95"]
    stellarium = parse_qs(urlparse(asteroid["stellarium"]).query)
    assert stellarium["lat"] == ["52.50000"] and stellarium["lng"] == ["-4.25000"]
    assert stellarium["date"] == ["2026-03-14T21:04:30Z"]
    satellite = parse_qs(urlparse(links_of(row(candidates, "K0001"))["satchecker"]).query)
    assert float(satellite["elevation"][0]) == 120.0
    assert int(satellite["duration"][0]) == 2 * 60 + 20  # first start to last end
    assert candidates.meta["site"]["source"] == "header SITELAT/SITELONG"
    assert candidates.meta["site"]["mpc_code"] == "J95"


# --------------------------------------------------------------------------- unsolved


@pytest.mark.parametrize("status", ["unsolved", "failed"])
def test_unsolved_sessions_keep_the_columns_empty_and_say_why(tmp_path, status):
    scene = Scene(WCS(wcs_header()))
    scene.track("T0001", SkyCoord(150.05, 19.98, unit="deg"), 3.7, 112.0)
    scene.geostationary("K0001", 149.8, 19.95, n=3)
    link_c, link_d = scene.write(tmp_path / "link")
    wcs_path, solve_json = write_solution(tmp_path / "solve", status=status)
    candidates, detections = publish(
        link_c,
        link_d,
        tmp_path / "candidates.ecsv",
        tmp_path / "detections.ecsv",
        wcs_path=wcs_path,
        solve_json=solve_json,
        reference_header=site_header(),
    )
    for name in ("ra_start", "dec_start", "ra_end", "dec_end", "rate_arcsec_per_min", "pa_deg"):
        assert np.all(np.isnan(candidates[name]))
    assert not np.any(candidates["sidereal_rate"])
    assert np.all(np.isnan(detections["ra"])) and np.all(np.isnan(detections["dec"]))
    assert candidates.meta["sky"]["solved"] is False
    assert candidates.meta["sky"]["reason"] == f"plate solving {status}: no index covers this scale"
    assert detections.meta["sky"]["status"] == ("failed" if status == "failed" else "unsolved")
    for candidate in candidates:
        assert list(links_of(candidate)) == ["stellarium"]


def test_without_any_solution_the_old_positional_call_still_writes_everything(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.track("T0001", SkyCoord(150.05, 19.98, unit="deg"), 3.7, 112.0)
    link_c, link_d = scene.write(tmp_path / "link")
    candidates, _ = publish(link_c, link_d, tmp_path / "c.ecsv", tmp_path / "d.ecsv")
    assert candidates["utc_start"][0] == "2026-03-14T21:00:00.000"
    assert np.isnan(candidates["ra_start"][0])
    assert "not plate solved" in candidates.meta["sky"]["reason"]
    assert candidates.meta["site"]["source"] is None
    stellarium = parse_qs(urlparse(links_of(candidates[0])["stellarium"]).query)
    assert set(stellarium) == {"date", "fov"}


def test_a_wcs_without_sky_axes_is_not_a_solution(tmp_path):
    hdu = fits.PrimaryHDU()
    hdu.header["CTYPE1"], hdu.header["CTYPE2"] = "LINEAR", "LINEAR"
    hdu.writeto(tmp_path / "wcs.fits")
    solution = load_solution(tmp_path / "wcs.fits")
    assert not solution.solved and solution.status == "invalid"
    (tmp_path / "broken.fits").write_text("not fits")
    assert load_solution(tmp_path / "broken.fits").status == "invalid"
    assert load_solution(tmp_path / "absent.fits").status == "missing"


# --------------------------------------------------------------------------- files


def test_written_files_keep_the_contract_order_units_and_meta(tmp_path):
    scene = Scene(WCS(wcs_header()))
    scene.track("T0001", SkyCoord(150.05, 19.98, unit="deg"), 3.7, 112.0)
    scene.geostationary("K0001", 149.8, 19.95, n=3)
    scene.flash("F0001", SkyCoord(150.02, 20.03, unit="deg"))
    run(tmp_path, scene)
    candidates = Table.read(tmp_path / "candidates.ecsv", format="ascii.ecsv")
    detections = Table.read(tmp_path / "detections.ecsv", format="ascii.ecsv")
    assert tuple(candidates.colnames[: len(CANDIDATE_COLUMNS)]) == CANDIDATE_COLUMNS
    assert tuple(detections.colnames[: len(DETECTION_COLUMNS)]) == DETECTION_COLUMNS
    assert "fit_rms_px" in candidates.colnames and "x_fit" in detections.colnames
    assert candidates["ra_start"].unit == u.deg
    assert candidates["rate_arcsec_per_min"].unit == u.arcsec / u.min
    assert candidates["sidereal_rate"].dtype == bool
    assert candidates.meta["pixel_convention"] == "0-based, x = column"
    assert candidates.meta["sky"]["solved"] is True
    for candidate in candidates:
        assert all(url.startswith("https://") for url in links_of(candidate).values())


def test_no_candidates_still_writes_both_files(tmp_path):
    scene = Scene(WCS(wcs_header()))
    candidates, detections = run(tmp_path, scene)
    assert len(candidates) == 0 and len(detections) == 0
    again = Table.read(tmp_path / "candidates.ecsv", format="ascii.ecsv")
    assert tuple(again.colnames[: len(CANDIDATE_COLUMNS)]) == CANDIDATE_COLUMNS


def test_the_linker_must_give_the_contract_columns(tmp_path):
    Table({"id": ["T0001"]}).write(tmp_path / "c.ecsv", format="ascii.ecsv")
    Table({"candidate_id": ["T0001"]}).write(tmp_path / "d.ecsv", format="ascii.ecsv")
    with pytest.raises(ValueError, match="contract columns"):
        publish(tmp_path / "c.ecsv", tmp_path / "d.ecsv", tmp_path / "o1", tmp_path / "o2")


# --------------------------------------------------------------------------- settings


def test_settings_from_a_mapping():
    settings = MeasureSettings.from_mapping(
        {"sidereal_tolerance": 0.1, "mpc_code": "j95", "site_lat_deg": 52, "site_lon_deg": -4}
    )
    assert settings.sidereal_tolerance == 0.1
    assert settings.mpc_code == "J95"
    assert settings.site_lat_deg == 52.0 and isinstance(settings.site_lat_deg, float)
    assert MeasureSettings.from_mapping(None) == MeasureSettings()
    with pytest.raises(ValueError, match="sidereal_tolerence"):
        MeasureSettings.from_mapping({"sidereal_tolerence": 0.1})
    with pytest.raises(ValueError, match="sidereal_tolerance"):
        MeasureSettings(sidereal_tolerance=0.0)
    with pytest.raises(ValueError, match="both"):
        MeasureSettings(site_lat_deg=52.0)
    with pytest.raises(ValueError, match="header_longitude"):
        MeasureSettings(header_longitude="up")
    with pytest.raises(ValueError, match="MPC"):
        MeasureSettings(mpc_code="12")
    with pytest.raises(ValueError, match="number"):
        MeasureSettings(lookup_radius_arcmin="5")
