"""Plate solving: what a user would check of ``solve/wcs.fits`` and ``solve/solve.json``.

A frame with real stars at a real pointing is solved offline by ``solve-field`` (skipped,
with the packages to install named, when it is absent) and lands within 2 arcsec of the
truth, and so do the injected movers. A frame's own WCS is used when it is believable, in
all the shapes real files write it, and refused when it is not. ASTAP is exercised through
a stand-in executable that writes what the real one writes, nova.astrometry.net through a
stand-in server on 127.0.0.1 that speaks its protocol; the real service is never contacted.
Without any solver, the answer is "unsolved" with a line on how to enable solving.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from spacepixels import cli, solve, starlist, synth
from spacepixels.starlist import angular_distance_deg

SHAPE = (768, 1024)
from shared_data import REAL_FRAME  # noqa: E402

HAVE_SOLVE_FIELD = shutil.which("solve-field") is not None and bool(starlist.find_index_files())
NEEDS_SOLVE_FIELD = pytest.mark.skipif(
    not HAVE_SOLVE_FIELD,
    reason="solve-field or its index files are not installed (apt-get install astrometry.net "
    "astrometry-data-tycho2-10-19 astrometry-data-tycho2-09 astrometry-data-tycho2-08)",
)


# --------------------------------------------------------------------------------------
# Helpers


def _arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    return float(angular_distance_deg(ra1, dec1, ra2, dec2)) * 3600.0


def _frame_wcs(truth: dict, index: int) -> fits.Header:
    """The exact WCS of frame ``index``: the nominal one shifted by the frame's jitter."""
    frame = truth["frames"][index]
    header = fits.Header(truth["astrometry"]["wcs"])
    header["CRPIX1"] += frame["jitter_dx"]
    header["CRPIX2"] += frame["jitter_dy"]
    return header


def _true_centre(truth: dict, index: int = 0) -> tuple[float, float]:
    height, width = truth["shape"]
    ra, dec = WCS(_frame_wcs(truth, index)).pixel_to_world_values(
        (width - 1) / 2.0, (height - 1) / 2.0
    )
    return float(ra), float(dec)


def _executable(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _isolated_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Only ``folder`` on PATH: no solve-field, no query-starkd, no ASTAP."""
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PATH", str(folder))


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Three frames of M31 with real stars, no WCS in the headers."""
    root = tmp_path_factory.mktemp("night")
    truth = synth.make_session(
        root, "2026-03-14/M31", seed=7, n_frames=3, shape=SHAPE, catalog=True, wcs=False
    )
    return root / "2026-03-14" / "M31", truth


@pytest.fixture(scope="module")
def night_with_wcs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("night_wcs")
    truth = synth.make_session(
        root, "2026-03-14/M42", seed=8, n_frames=1, shape=SHAPE, catalog=True, wcs=True
    )
    return root / "2026-03-14" / "M42", truth


def _with_header(source: Path, target: Path, edit: dict[str, Any], drop: tuple = ()) -> Path:
    with fits.open(source) as hdul:
        header = hdul[0].header.copy()
        for key in drop:
            header.remove(key, ignore_missing=True)
        for key, value in edit.items():
            header[key] = value
        fits.PrimaryHDU(hdul[0].data, header=header).writeto(target)
    return target


# --------------------------------------------------------------------------------------
# Settings and hints


def test_settings_defaults_and_from_mapping() -> None:
    settings = solve.SolveSettings()
    assert settings.method == "auto" and settings.timeout_s == 120.0
    assert settings.nova_url == "https://nova.astrometry.net/api/"
    assert settings.nova_key_env == "ASTROMETRY_NET_API_KEY"
    mapped = solve.SolveSettings.from_mapping(
        {
            "method": "header",
            "timeout_s": 30,
            "ra": "00:42:44.3",
            "dec": "+41 16 09",
            "scale_low": 6,
        }
    )
    assert mapped.method == "header" and mapped.timeout_s == 30.0
    assert mapped.ra == pytest.approx(10.684583, abs=1e-6)
    assert mapped.dec == pytest.approx(41.269167, abs=1e-6)
    assert solve.SolveSettings.from_mapping(None) == settings
    assert solve.SolveSettings.from_mapping({"astap_path": None}) == settings
    with pytest.raises(ValueError, match="unknown key 'scale_hi'"):
        solve.SolveSettings.from_mapping({"scale_hi": 3.0})
    with pytest.raises(ValueError, match="solve.method"):
        solve.SolveSettings.from_mapping({"method": "magic"})
    with pytest.raises(ValueError, match="solve.timeout_s"):
        solve.SolveSettings.from_mapping({"timeout_s": "soon"})
    with pytest.raises(ValueError, match="quote it"):  # YAML's reading of ra: 10:42:44
        solve.SolveSettings.from_mapping({"ra": 38564, "dec": 41.0})
    with pytest.raises(ValueError, match="give both"):
        solve.SolveSettings(ra=10.0)
    with pytest.raises(ValueError, match="scale_low"):
        solve.SolveSettings(scale_low=5.0, scale_high=2.0)


def test_angles_in_the_shapes_headers_write_them() -> None:
    assert solve.parse_ra("00 42 44.3") == pytest.approx(10.684583, abs=1e-6)
    assert solve.parse_ra("0h42m44.3s") == pytest.approx(10.684583, abs=1e-6)
    assert solve.parse_ra(" 15:28:35.7") == pytest.approx(232.14875, abs=1e-6)
    assert solve.parse_ra(10.68) == 10.68 and solve.parse_ra("10.68") == 10.68
    assert solve.parse_ra(0.712, number_in_hours=True) == pytest.approx(10.68)
    assert solve.parse_dec("-00 00 25.1") == pytest.approx(-25.1 / 3600)
    assert solve.parse_dec("+41:16:09") == pytest.approx(41.269167, abs=1e-6)
    assert solve.parse_dec(-5.39) == -5.39
    for bad in ("north", "95", True):
        with pytest.raises(ValueError):
            solve.parse_dec(bad)


def test_hints_from_headers_and_from_the_configuration() -> None:
    header = fits.Header()
    header["OBJCTRA"] = "05 35 17.3"
    header["OBJCTDEC"] = "-05 23 28"
    header["FOCALLEN"] = 400.0
    header["XPIXSZ"] = 7.52
    header["XBINNING"] = 2
    hints = solve.solver_hints(header, solve.SolveSettings())
    assert hints.position_source == "header OBJCTRA/OBJCTDEC"
    assert hints.ra_deg == pytest.approx(83.822083, abs=1e-6)
    assert hints.dec_deg == pytest.approx(-5.391111, abs=1e-6)
    # Binned 2x2: XPIXSZ may be the binned or the physical size; both are searched.
    unbinned = 206.264806 * 7.52 / 400.0
    assert hints.scale_low == pytest.approx(unbinned * 0.85)
    assert hints.scale_high == pytest.approx(unbinned * 2 * 1.15)
    header["RA"] = 83.9
    header["DEC"] = -5.4
    assert solve.solver_hints(header, solve.SolveSettings()).position_source == "header RA/DEC"
    config = solve.SolveSettings(ra=84.0, dec=-5.0, scale_low=3.0, scale_high=4.0)
    hints = solve.solver_hints(header, config)
    assert (hints.ra_deg, hints.dec_deg, hints.scale_low, hints.scale_high) == (84, -5, 3, 4)
    assert hints.position_source == hints.scale_source == "config"
    nothing = solve.solver_hints(fits.Header(), solve.SolveSettings())
    assert not nothing.has_position and not nothing.has_scale


# --------------------------------------------------------------------------------------
# A WCS in the header


def _tan_cards(scale_deg: float = 2e-3, rotation: float = 20.0) -> dict[str, Any]:
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return {
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CRVAL1": 83.8,
        "CRVAL2": -5.4,
        "CRPIX1": 400.5,
        "CRPIX2": 300.5,
        "CD1_1": -scale_deg * c,
        "CD1_2": scale_deg * s,
        "CD2_1": scale_deg * s,
        "CD2_2": scale_deg * c,
    }


def _sky(header: fits.Header) -> np.ndarray:
    wcs = solve.header_wcs(header)
    assert wcs is not None
    xs = np.array([0.0, 799.0, 0.0, 799.0, 400.0])
    ys = np.array([0.0, 0.0, 599.0, 599.0, 300.0])
    return np.array(wcs.pixel_to_world_values(xs, ys))


def test_every_shape_of_wcs_reads_as_the_same_sky() -> None:
    cards = _tan_cards()
    reference = _sky(fits.Header(cards))
    scale, rotation = 2e-3, 20.0
    # PC + CDELT
    pc = {k: v for k, v in cards.items() if not k.startswith("CD")}
    pc.update(CDELT1=-scale, CDELT2=scale)
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    pc.update(PC1_1=c, PC1_2=-s, PC2_1=s, PC2_2=c)
    # CDELT + CROTA2 (the AIPS convention)
    crota = {k: v for k, v in cards.items() if not k.startswith("CD")}
    crota.update(CDELT1=-scale, CDELT2=scale, CROTA2=-rotation)
    # quoted strings, as some capture programs write them
    quoted = {k: (f"{v!r}" if not k.startswith("CTYPE") else v) for k, v in cards.items()}
    for variant in (pc, crota, quoted):
        np.testing.assert_allclose(_sky(fits.Header(variant)), reference, atol=1e-9)
    # SIP with zero coefficients and TPV with the identity polynomial change nothing
    sip = dict(cards, CTYPE1="RA---TAN-SIP", CTYPE2="DEC--TAN-SIP", A_ORDER=2, B_ORDER=2)
    sip.update(A_2_0=0.0, B_0_2=0.0)
    tpv = dict(cards, CTYPE1="RA---TPV", CTYPE2="DEC--TPV", PV1_1=1.0, PV2_1=1.0)
    for variant in (sip, tpv):
        np.testing.assert_allclose(_sky(fits.Header(variant)), reference, atol=1e-9)
    assert solve._distortion(solve.header_wcs(fits.Header(sip))) == "SIP"
    assert solve._distortion(solve.header_wcs(fits.Header(tpv))) == "TPV"
    # a real TPV polynomial survives the trip through wcs.fits
    tpv.update(PV1_4=2e-3, PV2_5=-1e-3, PV1_7=0.01)
    written = solve._output_header(solve.header_wcs(fits.Header(tpv)), (600, 800), "header")
    np.testing.assert_allclose(_sky(written), _sky(fits.Header(tpv)), atol=1e-9)
    assert solve.header_wcs(fits.Header({"OBJECT": "M42"})) is None


def test_a_real_sip_distortion_is_kept_through_wcs_fits(tmp_path: Path) -> None:
    cards = dict(_tan_cards(), CTYPE1="RA---TAN-SIP", CTYPE2="DEC--TAN-SIP")
    cards.update(A_ORDER=2, B_ORDER=2, A_2_0=2e-6, A_0_2=-1e-6, B_1_1=3e-6)
    wcs = solve.header_wcs(fits.Header(cards))
    header = solve._output_header(wcs, (600, 800), "header")
    solve.write_solution(header, {"status": "solved"}, tmp_path / "w.fits", tmp_path / "s.json")
    back = solve.read_wcs(tmp_path / "w.fits")
    assert back.sip is not None
    np.testing.assert_allclose(
        _sky(fits.Header(cards)), _sky(back.to_header(relax=True)), atol=1e-9
    )


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"CD1_1": 0.0, "CD1_2": 0.0}, "singular"),
        ({"CD1_1": -1e-9, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 1e-9}, "pixel scale"),
        ({"CD1_1": -2e-3, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 5e-3}, "square"),
        ({"CD1_1": -2e-3, "CD1_2": 1.5e-3, "CD2_1": 0.0, "CD2_2": 2e-3}, "skewed"),
    ],
)
def test_an_unbelievable_header_wcs_is_refused(
    night_with_wcs: tuple[Path, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: dict,
    reason: str,
) -> None:
    folder, truth = night_with_wcs
    frame = _with_header(folder / truth["frames"][0]["file"], tmp_path / "bad.fits", edit)
    header, info = solve.solve_session(frame, solve.SolveSettings(method="header"), tmp_path)
    assert header is None and info["status"] == "failed" and info["method"] == "header"
    assert reason in info["message"]
    # auto: the same frame, no solver installed: unsolved, and the way to enable solving.
    _isolated_path(monkeypatch, tmp_path / "bin")
    header, info = solve.solve_session(frame, solve.SolveSettings(), tmp_path)
    assert header is None and info["status"] == "unsolved"
    assert reason in info["message"] and "apt-get install astrometry.net" in info["message"]


def test_header_wcs_is_used_and_written(night_with_wcs: tuple[Path, dict], tmp_path: Path) -> None:
    folder, truth = night_with_wcs
    settings = solve.SolveSettings(method="header", verify_header=False)
    header, info = solve.solve_session(folder / truth["frames"][0]["file"], settings, tmp_path)
    assert info["status"] == "solved" and info["method"] == "header"
    assert _arcsec(*_true_centre(truth), info["centre_ra_deg"], info["centre_dec_deg"]) < 0.01
    assert info["pixel_scale_arcsec"] == pytest.approx(7.0, abs=1e-3)
    assert info["rotation_deg"] == pytest.approx(truth["astrometry"]["rotation_deg"], abs=1e-3)
    assert info["parity"] == "normal"
    assert info["field_width_deg"] == pytest.approx(1.991, abs=0.002)
    assert info["field_height_deg"] == pytest.approx(1.493, abs=0.002)
    wcs_path, json_path = tmp_path / "solve" / "wcs.fits", tmp_path / "solve" / "solve.json"
    solve.write_solution(header, info, wcs_path, json_path)
    assert sorted(p.name for p in wcs_path.parent.iterdir()) == ["solve.json", "wcs.fits"]
    with fits.open(wcs_path) as hdul:
        assert len(hdul) == 1 and hdul[0].data is None
        assert hdul[0].header["IMAGEW"] == 1024 and hdul[0].header["PLTSOLVD"] is True
    assert json.loads(json_path.read_text()) == info
    wcs = solve.read_wcs(wcs_path)
    ra, dec = wcs.pixel_to_world_values(511.5, 383.5)
    assert _arcsec(ra, dec, info["centre_ra_deg"], info["centre_dec_deg"]) < 1e-3


def test_nothing_half_written_when_the_record_is_not_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        solve.write_solution(None, {"x": float("nan")}, tmp_path / "w.fits", tmp_path / "s.json")
    assert list(tmp_path.iterdir()) == []
    solve.write_solution(None, {"status": "unsolved"}, tmp_path / "w.fits", tmp_path / "s.json")
    assert solve.read_wcs(tmp_path / "w.fits") is None
    assert fits.getheader(tmp_path / "w.fits")["PLTSOLVD"] is False


@pytest.mark.skipif(not REAL_FRAME.exists(), reason=f"the real frame {REAL_FRAME} is absent")
def test_real_cutout_wcs_with_crpix_outside_the_image_is_accepted(tmp_path: Path) -> None:
    header, info = solve.solve_session(REAL_FRAME, solve.SolveSettings(method="header"), tmp_path)
    assert info["status"] == "solved" and info["method"] == "header", info["message"]
    assert header["CRPIX1"] == -511.5 and header["CRPIX2"] == 256.5
    assert info["centre_ra_deg"] == pytest.approx(232.92406, abs=1e-4)
    assert info["centre_dec_deg"] == pytest.approx(0.09823, abs=1e-4)
    assert info["pixel_scale_arcsec"] == pytest.approx(3.0397, abs=1e-3)
    assert info["parity"] == "flipped"  # CD1_1 > 0: east is to the right
    assert info["hints"]["position_from"] == "header RA/DEC"
    assert info["hints"]["ra_deg"] == pytest.approx(232.14875)  # ' 15:28:35.7' in hours
    # Whether its stars were checked depends on the installed index files; if they were
    # and did not match, the message says it was used unverified.
    assert info["verified"] in (None, False, True)
    if info["verified"] is False:
        assert "does not match the stars" in info["message"]


def test_method_none_and_an_unreadable_frame_do_not_raise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a FITS file")
    header, info = solve.solve_session(bad, solve.SolveSettings(method="none"), tmp_path)
    assert header is None and info["status"] == "unsolved" and "turned off" in info["message"]
    header, info = solve.solve_session(bad, solve.SolveSettings(), tmp_path)
    assert header is None and info["status"] == "failed" and "cannot be read" in info["message"]
    json.dumps(info, allow_nan=False)


def test_without_any_solver_the_session_is_unsolved_with_how_to_enable(
    night: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, truth = night
    _isolated_path(monkeypatch, tmp_path / "bin")
    header, info = solve.solve_session(
        folder / truth["frames"][0]["file"], solve.SolveSettings(), tmp_path / "work"
    )
    assert header is None and info["status"] == "unsolved" and info["method"] is None
    assert "apt-get install astrometry.net astrometry-data-tycho2-10-19" in info["message"]
    assert [a["status"] for a in info["attempts"]] == ["unavailable"] * 3
    assert info["hints"]["position_from"] == "header RA/DEC"
    assert info["hints"]["scale_from"] == "header FOCALLEN/XPIXSZ"
    assert list((tmp_path / "work").iterdir()) == []  # the scratch folder is cleaned
    _, info = solve.solve_session(
        folder / truth["frames"][0]["file"], solve.SolveSettings(method="astap"), tmp_path
    )
    assert info["status"] == "failed" and "ASTAP is not installed" in info["message"]


# --------------------------------------------------------------------------------------
# ASTAP, through a stand-in executable


FAKE_ASTAP = """
import json, os, shutil, sys
from pathlib import Path
args = sys.argv[1:]
Path(os.environ["FAKE_ASTAP_ARGS"]).write_text(json.dumps(args))
base = args[args.index("-o") + 1]
answer = Path(os.environ["FAKE_ASTAP_ANSWER"])
shutil.copy(answer / "solution.ini", base + ".ini")
if (answer / "solution.wcs").exists():
    shutil.copy(answer / "solution.wcs", base + ".wcs")
sys.exit(int(os.environ.get("FAKE_ASTAP_EXIT", "0")))
"""


def _astap_answer(folder: Path, header: fits.Header | None, wcs_file: bool = True) -> Path:
    """What ASTAP writes: ``.ini`` (key=value lines) and ``.wcs`` (a FITS header)."""
    folder.mkdir(parents=True, exist_ok=True)
    if header is None:
        (folder / "solution.ini").write_text("PLTSOLVD=F\nERROR=No solution found!\n")
        return folder
    lines = ["PLTSOLVD=T"]
    for key in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        lines.append(f"{key}={header[key]:.15E}")
    lines.append("WARNING=")
    (folder / "solution.ini").write_text("\n".join(lines) + "\n")
    if wcs_file:
        wcs = fits.Header()
        wcs["SIMPLE"] = True
        wcs["BITPIX"] = 8
        wcs["NAXIS"] = 0
        for key in ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "EQUINOX", "CRVAL1", "CRVAL2"):
            wcs[key] = header[key]
        for key in ("CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            wcs[key] = header[key]
        wcs["PLTSOLVD"] = (True, "ASTAP internal solver")
        (folder / "solution.wcs").write_bytes(wcs.tostring().encode("ascii"))
    return folder


@pytest.fixture
def fake_astap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    _isolated_path(monkeypatch, bin_dir)
    _executable(bin_dir / "astap", FAKE_ASTAP)
    monkeypatch.setenv("FAKE_ASTAP_ARGS", str(tmp_path / "args.json"))
    return tmp_path


def test_astap_command_line_and_its_answer(
    night: tuple[Path, dict], fake_astap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, truth = night
    answer = _astap_answer(fake_astap / "answer", _frame_wcs(truth, 0))
    monkeypatch.setenv("FAKE_ASTAP_ANSWER", str(answer))
    settings = solve.SolveSettings(downsample=2, radius_deg=3.0)
    header, info = solve.solve_session(folder / truth["frames"][0]["file"], settings, fake_astap)
    assert info["status"] == "solved" and info["method"] == "astap", info["message"]
    args = json.loads((fake_astap / "args.json").read_text())
    mount = truth["astrometry"]["mount_pointing"]
    value = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
    assert float(value["-ra"]) == pytest.approx(mount["ra_deg"] / 15.0, abs=1e-6)  # hours
    assert float(value["-spd"]) == pytest.approx(mount["dec_deg"] + 90.0, abs=1e-6)
    assert float(value["-fov"]) == pytest.approx(768 * 7.0 / 3600.0, rel=0.2)  # height
    assert value["-r"] == "3" and value["-z"] == "2" and "-wcs" in args
    assert Path(value["-f"]).suffix == ".fits" and "-o" in value
    assert _arcsec(*_true_centre(truth), info["centre_ra_deg"], info["centre_dec_deg"]) < 0.5
    assert info["verified"] is True and info["n_matched_stars"] > 30  # shipped star list


def test_astap_ini_only_and_failure(
    night: tuple[Path, dict], fake_astap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, truth = night
    frame = folder / truth["frames"][0]["file"]
    answer = _astap_answer(fake_astap / "ini", _frame_wcs(truth, 0), wcs_file=False)
    monkeypatch.setenv("FAKE_ASTAP_ANSWER", str(answer))
    _, info = solve.solve_session(frame, solve.SolveSettings(method="astap"), fake_astap)
    assert info["status"] == "solved"
    assert _arcsec(*_true_centre(truth), info["centre_ra_deg"], info["centre_dec_deg"]) < 0.5
    monkeypatch.setenv("FAKE_ASTAP_ANSWER", str(_astap_answer(fake_astap / "no", None)))
    monkeypatch.setenv("FAKE_ASTAP_EXIT", "1")
    header, info = solve.solve_session(frame, solve.SolveSettings(method="astap"), fake_astap)
    assert header is None and info["status"] == "failed" and info["method"] == "astap"
    assert "No solution found" in info["message"]


# --------------------------------------------------------------------------------------
# nova.astrometry.net, through a stand-in server on 127.0.0.1

NOVA_KEY = "test-key-do-not-leak-7f3a"


class _NovaStandIn(BaseHTTPRequestHandler):
    """The nova.astrometry.net API as its client speaks it (JSON in ``request-json``)."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def _send(self, payload: Any, content: bytes | None = None) -> None:
        body = content if content is not None else json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        state["calls"].append(("GET", self.path))
        if self.path == "/wcs_file/7":
            self._send(None, state["wcs"])
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        state = self.server.state
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        request = json.loads(form["request-json"][0])
        state["calls"].append(("POST", self.path))
        state["requests"].append((self.path, request))
        if self.path == "/api/login":
            if request.get("apikey") != NOVA_KEY:
                self._send({"status": "error", "errormessage": "bad apikey"})
            else:
                self._send({"status": "success", "session": "s123"})
            return
        if request.get("session") != "s123":
            self._send({"status": "error", "errormessage": "no session"})
            return
        if self.path == "/api/upload":
            self._send({"status": "success", "subid": 42, "hash": "abc"})
        elif self.path == "/api/submissions/42":
            state["polls"] += 1
            self._send({"jobs": [None] if state["polls"] < 2 else [7], "processing_finished": ""})
        elif self.path == "/api/jobs/7":
            state["job_polls"] += 1
            self._send({"status": "solving" if state["job_polls"] < 2 else state["outcome"]})
        else:
            self.send_error(404)


@pytest.fixture
def nova_server(night: tuple[Path, dict]) -> Iterator[dict]:
    _, truth = night
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NovaStandIn)
    header = _frame_wcs(truth, 0)
    server.state = {  # type: ignore[attr-defined]
        "calls": [],
        "requests": [],
        "polls": 0,
        "job_polls": 0,
        "outcome": "success",
        "wcs": header.tostring().encode("ascii"),
        "url": f"http://127.0.0.1:{server.server_address[1]}/api/",
    }
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.state  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_nova_protocol_against_a_stand_in(
    night: tuple[Path, dict],
    nova_server: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder, truth = night
    monkeypatch.setenv("MY_NOVA_KEY", NOVA_KEY)
    settings = solve.SolveSettings(
        method="nova", nova_url=nova_server["url"], nova_key_env="MY_NOVA_KEY", nova_poll_s=0.01
    )
    caplog.set_level("DEBUG")
    header, info = solve.solve_session(folder / truth["frames"][0]["file"], settings, tmp_path)
    assert info["status"] == "solved" and info["method"] == "nova", info["message"]
    assert _arcsec(*_true_centre(truth), info["centre_ra_deg"], info["centre_dec_deg"]) < 0.5
    paths = [path for _, path in nova_server["calls"]]
    assert paths[:2] == ["/api/login", "/api/upload"] and paths[-1] == "/wcs_file/7"
    upload = dict(nova_server["requests"])["/api/upload"]
    assert upload["publicly_visible"] == "n" and len(upload["x"]) == len(upload["y"]) > 50
    assert upload["image_width"] == 1024 and upload["scale_units"] == "arcsecperpix"
    assert "file" not in upload  # the source list is uploaded, never the image
    solve.write_solution(header, info, tmp_path / "w.fits", tmp_path / "s.json")
    for text in (json.dumps(info), caplog.text, (tmp_path / "w.fits").read_bytes().decode()):
        assert NOVA_KEY not in text


def test_nova_failures_never_show_the_key(
    night: tuple[Path, dict],
    nova_server: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder, truth = night
    frame = folder / truth["frames"][0]["file"]
    caplog.set_level("DEBUG")
    settings = solve.SolveSettings(method="nova", nova_url=nova_server["url"], nova_poll_s=0.01)
    monkeypatch.delenv("ASTROMETRY_NET_API_KEY", raising=False)
    _, info = solve.solve_session(frame, settings, tmp_path)
    assert info["status"] == "failed" and "ASTROMETRY_NET_API_KEY" in info["message"]
    assert nova_server["calls"] == []  # no key, no contact
    monkeypatch.setenv("ASTROMETRY_NET_API_KEY", "wrong-" + NOVA_KEY)
    _, info = solve.solve_session(frame, settings, tmp_path)
    assert info["status"] == "failed" and "bad apikey" in info["message"]
    monkeypatch.setenv("ASTROMETRY_NET_API_KEY", NOVA_KEY)
    nova_server["outcome"] = "failure"
    _, info = solve.solve_session(frame, settings, tmp_path)
    assert info["status"] == "failed" and "no solution" in info["message"]
    for text in (json.dumps(info), caplog.text):
        assert NOVA_KEY not in text


def test_nova_is_never_contacted_unless_chosen(
    night: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, truth = night

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the network was used")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    monkeypatch.setenv("ASTROMETRY_NET_API_KEY", NOVA_KEY)
    _isolated_path(monkeypatch, tmp_path / "bin")
    _, info = solve.solve_session(
        folder / truth["frames"][0]["file"], solve.SolveSettings(), tmp_path
    )
    assert info["status"] == "unsolved"
    assert all(a["method"] != "nova" for a in info["attempts"])


# --------------------------------------------------------------------------------------
# solve-field


FAKE_SLOW_SOLVER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.environ["FAKE_SOLVER_PIDS"], "w").write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_a_solver_past_its_time_limit_is_stopped_with_its_children(
    night: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, truth = night
    solver = _executable(tmp_path / "solve-field", FAKE_SLOW_SOLVER)
    index = tmp_path / "index"
    index.mkdir()
    (index / "index-0000.fits").write_bytes(b"")
    monkeypatch.setenv("FAKE_SOLVER_PIDS", str(tmp_path / "pids"))
    settings = solve.SolveSettings(
        method="astrometry_net", timeout_s=1.5, solve_field_path=str(solver), index_dir=str(index)
    )
    start = time.monotonic()
    header, info = solve.solve_session(folder / truth["frames"][0]["file"], settings, tmp_path)
    assert time.monotonic() - start < 10
    assert header is None and info["status"] == "failed" and "1.5 s" in info["message"]
    for pid in (int(p) for p in (tmp_path / "pids").read_text().split()):
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), f"process {pid} survived the time limit"


@pytest.fixture(scope="module")
def solved(night: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    if not HAVE_SOLVE_FIELD:
        pytest.skip("solve-field or its index files are not installed")
    folder, truth = night
    work = tmp_path_factory.mktemp("solve")
    header, info = solve.solve_session(
        folder / truth["frames"][0]["file"], solve.SolveSettings(), work
    )
    return header, info, work


@NEEDS_SOLVE_FIELD
def test_solve_field_solves_real_stars_offline(night: tuple[Path, dict], solved: tuple) -> None:
    _, truth = night
    header, info, work = solved
    assert info["status"] == "solved" and info["method"] == "astrometry_net", info["message"]
    assert info["requested_method"] == "auto" and info["verified"] is True
    assert _arcsec(*_true_centre(truth), info["centre_ra_deg"], info["centre_dec_deg"]) < 2.0
    assert info["pixel_scale_arcsec"] == pytest.approx(7.0, rel=1e-3)
    turn = (info["rotation_deg"] - truth["astrometry"]["rotation_deg"] + 180) % 360 - 180
    assert abs(turn) < 0.05 and info["parity"] == "normal"
    assert info["residual_rms_arcsec"] < 2.0 and info["n_matched_stars"] >= 20
    assert info["seconds"] < 20
    assert info["hints"]["position_from"] == "header RA/DEC"
    assert list(work.iterdir()) == []  # solve-field's own files are gone


@NEEDS_SOLVE_FIELD
def test_solved_movers_are_where_the_truth_says(night: tuple[Path, dict], solved: tuple) -> None:
    _, truth = night
    header, _, _ = solved
    wcs = solve.header_wcs(header)
    aligned = truth["frames"][0]
    checked = 0
    for body in truth["objects"]:
        if body["kind"] not in ("mover", "slow_mover"):
            continue
        for position in body["positions"]:
            if position["index"] == 0:  # the solved frame: pixels as measured there
                ra, dec = wcs.pixel_to_world_values(position["x"], position["y"])
                assert _arcsec(ra, dec, position["ra"], position["dec"]) < 2.0, body["id"]
                checked += 1
        # Sky rate from the solved WCS, on the path brought into the solved frame's pixels.
        first, last = body["positions"][0], body["positions"][-1]
        ends = []
        for position in (first, last):
            frame = truth["frames"][position["index"]]
            ends.append(
                wcs.pixel_to_world_values(
                    position["x"] - frame["jitter_dx"] + aligned["jitter_dx"],
                    position["y"] - frame["jitter_dy"] + aligned["jitter_dy"],
                )
            )
        minutes = (last["mjd"] - first["mjd"]) * 1440.0
        rate = _arcsec(*ends[0], *ends[1]) / minutes
        assert rate == pytest.approx(body["rate_arcsec_per_min"], rel=0.02), body["id"]
    assert checked >= 4


@NEEDS_SOLVE_FIELD
def test_a_header_wcs_that_misses_the_stars_is_replaced_by_a_solution(
    night_with_wcs: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, truth = night_with_wcs
    source = folder / truth["frames"][0]["file"]
    _, info = solve.solve_session(source, solve.SolveSettings(), tmp_path)
    assert info["method"] == "header" and info["verified"] is True
    assert "checked against" in info["message"]
    shifted = fits.getheader(source)["CRVAL1"] + 0.1  # a mount's guess, 5 arcmin off
    frame = _with_header(source, tmp_path / "off.fits", {"CRVAL1": shifted})
    _, info = solve.solve_session(frame, solve.SolveSettings(), tmp_path)
    assert info["status"] == "solved" and info["method"] == "astrometry_net"
    assert [a["status"] for a in info["attempts"]][:2] == ["suspect", "solved"]
    assert _arcsec(*_true_centre(truth), info["centre_ra_deg"], info["centre_dec_deg"]) < 2.0


@NEEDS_SOLVE_FIELD
def test_cli_solves_a_frame(night: tuple[Path, dict], tmp_path: Path) -> None:
    folder, truth = night
    frame = folder / truth["frames"][1]["file"]
    assert cli.main(["solve", str(frame), "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "solve.json").read_text())
    assert info["status"] == "solved"
    assert _arcsec(*_true_centre(truth, 1), info["centre_ra_deg"], info["centre_dec_deg"]) < 2.0
    assert os.path.exists(tmp_path / "wcs.fits")
