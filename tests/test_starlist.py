"""The shipped Tycho-2 star list, and synthetic nights drawn with its real stars.

What a user of these frames would check: the list is the index files' stars, with its
provenance; a frame drawn with ``catalog=True`` shows those stars where the sky has them,
says where the mount points, and records the sky motion of every object; and the random
default is left alone.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from spacepixels import cli, solve, starlist, synth

SHAPE = (768, 1024)
NEEDS_INDEX = pytest.mark.skipif(
    shutil.which("query-starkd") is None
    or not starlist.find_index_files(pattern="index-tycho2-*.fits"),
    reason="astrometry.net's query-starkd or the Tycho-2 index files are not installed "
    "(apt-get install astrometry.net astrometry-data-tycho2-10-19 astrometry-data-tycho2-08)",
)


@pytest.fixture(scope="module")
def catalog_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("catalog")
    truth = synth.make_session(
        root, "2026-03-14/M31", seed=11, n_frames=3, shape=SHAPE, catalog=True, wcs=False
    )
    return root / "2026-03-14" / "M31", truth


# --------------------------------------------------------------------------------------
# The list


def test_shipped_list_is_small_and_has_its_provenance() -> None:
    path = starlist.star_list_path()
    assert path.exists() and path.stat().st_size < 300_000
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    for needed in (
        "query-starkd",
        "astrometry-data-tycho2",
        "Astronomy & Astrophysics",
        "355",
        "BSD-2-Clause",
    ):
        assert needed in readme
    table = starlist.load_star_list()
    assert set(table.colnames) == {"ra", "dec", "mag"} and len(table) > 10_000
    names = {f["name"] for f in starlist.star_list_fields()}
    assert {"M31", "M42", "M45", "M51", "M101", "ECL165"} <= names
    assert set(synth.TARGETS) <= names  # every named synthetic target can have real stars


def test_stars_near_are_near_and_brightest_first() -> None:
    stars = starlist.stars_near(10.6847, 41.269, 1.0)
    assert 60 < len(stars) < 300
    assert np.all(stars["distance_deg"] <= 1.0)
    assert np.all(np.diff(stars["mag"]) >= 0)
    distance = starlist.angular_distance_deg(10.6847, 41.269, stars["ra"], stars["dec"])
    np.testing.assert_allclose(distance, stars["distance_deg"])
    assert 2.0 < float(stars["mag"][0]) < 9.0 < float(stars["mag"][-1]) < 14.0


def test_uncovered_sky_is_refused_with_the_fields_named() -> None:
    assert starlist.covering_field(10.7, 41.3, 2.0) == "M31"
    assert starlist.covering_field(10.7, 41.3, 3.5) is None
    assert len(starlist.stars_near(100.0, -60.0, 1.0)) == 0
    with pytest.raises(ValueError, match="does not cover.*M31"):
        starlist.stars_near(100.0, -60.0, 1.0, require_coverage=True)


def test_angular_distance_is_right_at_small_and_large_separations() -> None:
    assert float(starlist.angular_distance_deg(0.0, 0.0, 180.0, 0.0)) == pytest.approx(180.0)
    tiny = float(starlist.angular_distance_deg(10.0, 60.0, 10.0 + 1e-6 / 0.5, 60.0))
    assert tiny == pytest.approx(1e-6, rel=1e-6)


def test_index_files_are_found_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "index-4107.fits").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert starlist.find_index_files(tmp_path) == [tmp_path / "index-4107.fits"]
    assert starlist.find_index_files(tmp_path / "missing") == []


def test_index_stars_say_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install astrometry.net"):
        starlist.index_stars(10.0, 41.0, 1.0)


@NEEDS_INDEX
def test_shipped_list_is_what_the_index_files_hold(tmp_path: Path) -> None:
    out = tmp_path / "m51.ecsv.gz"
    starlist.build_star_list(out, fields={"M51": synth.TARGETS["M51"]}, radius_deg=0.6)
    again = tmp_path / "again.ecsv.gz"
    starlist.build_star_list(again, fields={"M51": synth.TARGETS["M51"]}, radius_deg=0.6)
    assert out.read_bytes() == again.read_bytes()  # no timestamps: same input, same bytes
    built = starlist.stars_near(*synth.TARGETS["M51"], 0.55, path=out)
    shipped = starlist.stars_near(*synth.TARGETS["M51"], 0.55)
    assert len(built) == len(shipped) > 10
    np.testing.assert_allclose(np.sort(built["ra"]), np.sort(shipped["ra"]), atol=1e-6)
    np.testing.assert_allclose(np.sort(built["mag"]), np.sort(shipped["mag"]), atol=1e-3)


def test_cli_prints_the_stars_near_a_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["starlist", "near", "83.82", "-5.39", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("#") and len(lines) > 3
    ra, dec, mag = (float(v) for v in lines[2].split())
    assert abs(ra - 83.82) < 0.5 and abs(dec + 5.39) < 0.3 and mag < 13


# --------------------------------------------------------------------------------------
# Synthetic frames with real stars


def test_catalogue_stars_are_drawn_where_the_sky_has_them(
    catalog_session: tuple[Path, dict],
) -> None:
    folder, truth = catalog_session
    sky = truth["astrometry"]
    catalog = sky["catalog"]
    assert catalog["field"] == "M31" and 80 <= catalog["n_stars"] <= 160
    assert sky["pixel_scale_arcsec"] == pytest.approx(synth.CATALOG_PIXEL_SCALE_ARCSEC, 1e-4)
    assert sky["field_deg"] == pytest.approx([1.99, 1.49], abs=0.01)
    nominal = WCS(fits.Header(sky["wcs"]))
    frame = truth["frames"][0]
    data = fits.getdata(folder / frame["file"]).astype(np.float64)
    background = np.median(data)
    stars = np.array(catalog["stars"])
    # Every listed star is where the WCS puts its catalogue position ...
    x, y = nominal.world_to_pixel_values(stars[:, 0], stars[:, 1])
    np.testing.assert_allclose(x, stars[:, 3], atol=1e-3)
    np.testing.assert_allclose(y, stars[:, 4], atol=1e-3)
    # ... and the brightest ones shine there (with the frame's jitter).
    height, width = SHAPE
    for _ra, _dec, mag, sx, sy in stars[np.argsort(stars[:, 2])][:15]:
        col = int(round(sx + frame["jitter_dx"]))
        row = int(round(sy + frame["jitter_dy"]))
        if 3 <= col < width - 3 and 3 <= row < height - 3:
            assert data[row - 1 : row + 2, col - 1 : col + 2].max() > background + 1000, mag


def test_random_stars_are_fainter_than_the_catalogue(catalog_session: tuple[Path, dict]) -> None:
    _, truth = catalog_session
    catalog = truth["astrometry"]["catalog"]
    assert catalog["n_random_stars"] > 500
    assert truth["n_stars"] >= catalog["n_stars"] + catalog["n_random_stars"]
    assert 11.0 < catalog["faintest_mag"] < 14.0


def test_headers_say_where_the_mount_points_and_carry_no_wcs(
    catalog_session: tuple[Path, dict],
) -> None:
    folder, truth = catalog_session
    header = fits.getheader(folder / truth["frames"][0]["file"])
    assert "CTYPE1" not in header and "CD1_1" not in header
    mount = truth["astrometry"]["mount_pointing"]
    assert 1.0 <= mount["error_arcmin"] <= 8.0
    assert header["RA"] == mount["ra_deg"] and header["DEC"] == mount["dec_deg"]
    ra = solve.parse_ra(header["OBJCTRA"])
    dec = solve.parse_dec(header["OBJCTDEC"])
    assert abs(ra - mount["ra_deg"]) * 3600 < 0.1 and abs(dec - mount["dec_deg"]) * 3600 < 0.1
    scale = 206.264806 * header["XPIXSZ"] / header["FOCALLEN"] / header["XBINNING"]
    assert scale == pytest.approx(truth["astrometry"]["pixel_scale_arcsec"], rel=1e-4)
    assert "lens" in header["TELESCOP"]


def test_objects_keep_their_pixels_and_gain_their_sky_motion(
    catalog_session: tuple[Path, dict], tmp_path: Path
) -> None:
    _, truth = catalog_session
    plain = synth.make_session(
        tmp_path, "2026-03-14/M31", seed=11, n_frames=3, shape=SHAPE, wcs=False
    )
    scale = truth["astrometry"]["pixel_scale_arcsec"]
    rotation = truth["astrometry"]["rotation_deg"]
    for body, same in zip(truth["objects"], plain["objects"], strict=True):
        assert [(p["x"], p["y"]) for p in body["positions"]] == [
            (p["x"], p["y"]) for p in same["positions"]
        ]
        if body["kind"] == "flash":
            assert body["rate_arcsec_per_min"] == 0.0 and body["pa_deg"] is None
            continue
        # A straight line at a constant rate: the sky rate is the pixel rate times the scale.
        assert body["rate_arcsec_per_min"] == pytest.approx(
            body["rate_px_per_min"] * scale, rel=0.01
        )
        # Direction: +y is the rotation's position angle; east is 90 degrees from north
        # toward -x for this unmirrored WCS, so a motion along +x heads to PA rotation - 90.
        expected = (rotation - 90.0 + body["direction_deg"]) % 360.0
        turn = (body["pa_deg"] - expected + 180.0) % 360.0 - 180.0
        assert abs(turn) < 0.5, body["id"]
    mover = truth["objects"][0]
    nominal = WCS(fits.Header(truth["astrometry"]["wcs"]))
    for position in mover["positions"]:
        frame = truth["frames"][position["index"]]
        ra, dec = nominal.pixel_to_world_values(
            position["x"] - frame["jitter_dx"], position["y"] - frame["jitter_dy"]
        )
        assert math.isclose(ra, position["ra"], abs_tol=1e-6)
        assert math.isclose(dec, position["dec"], abs_tol=1e-6)


def test_catalogue_options_in_the_tree_and_on_the_command_line(tmp_path: Path) -> None:
    truth_path = synth.make_night_tree(
        tmp_path / "tree",
        seed=5,
        nights=1,
        sessions_per_night=1,
        n_frames=1,
        catalog=True,
        pixel_scale_arcsec=8.0,
    )
    document = synth.read_truth(truth_path)
    (session,) = document["sessions"].values()
    assert session["astrometry"]["pixel_scale_arcsec"] == pytest.approx(8.0, rel=1e-4)
    assert session["wcs"] is not None  # wcs=True still writes the exact WCS
    options = ["--frames", "1", "--nights", "1", "--catalog", "--no-wcs", "--no-progress"]
    assert cli.main(["synth", str(tmp_path / "cli"), *options]) == 0
    (session,) = synth.read_truth(tmp_path / "cli" / "truth.json")["sessions"].values()
    assert session["astrometry"]["catalog"]["n_stars"] > 40 and session["wcs"] is None


def test_catalogue_needs_a_covered_pointing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a field of the star list"):
        synth.make_session(tmp_path, "n/FIELD1", seed=1, n_frames=1, catalog=True)
    with pytest.raises(ValueError, match="does not cover"):
        synth.make_session(
            tmp_path, "n/X", seed=1, n_frames=1, catalog=True, pointing=(100.0, -60.0)
        )
    ecliptic = synth.make_session(tmp_path, "n/ECL165", seed=1, n_frames=1, catalog=True)
    assert ecliptic["astrometry"]["catalog"]["field"] == "ECL165"


def test_default_output_does_not_change(tmp_path: Path) -> None:
    """``catalog=False`` (the default) is the generator as it was: no astrometry, the
    mount card names of old, and the same bytes with or without the new arguments."""
    a = synth.make_session(tmp_path / "a", "n/M31", seed=3, n_frames=1, shape=(64, 96))
    b = synth.make_session(
        tmp_path / "b", "n/M31", seed=3, n_frames=1, shape=(64, 96), catalog=False
    )
    assert "astrometry" not in a and a == b
    assert (tmp_path / "a/n/M31/M31_0001.fits").read_bytes() == (
        tmp_path / "b/n/M31/M31_0001.fits"
    ).read_bytes()
    header = fits.getheader(tmp_path / "a/n/M31/M31_0001.fits")
    assert "OBJCTRA" not in header and header["RA"] == synth.TARGETS["M31"][0]
