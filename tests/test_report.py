"""Tests of spacepixels.report: the session page and the index, from hand-made stage files.

Each test writes a small session folder the way the stages do (``check/frames.ecsv``,
``convert/stretch.json`` with real JPEG previews, ``tune/settings.yaml``, the public
catalogues, ``render/render.json`` with real GIFs made by Pillow, benchmark files), with
hostile names where a user's data reaches the page, and reads the page back with an HTML
parser, as a browser would.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from PIL import Image

from spacepixels import report

HOSTILE_TARGET = 'M31 <script>alert("target")</script> & <b>bold</b>'
HOSTILE_FRAME = "f<script>alert(1)<!--#2.fits"
HOSTILE_ID = "T</script><script>alert(2)</script>"
SESSION = "2026-03-14/M31 <i>"
FRAMES = ["a_001.fits", "a_002.fits", HOSTILE_FRAME, "a_004.fits", "a_005.fits", "a 006?.fits"]
REJECTED = {
    "a_002.fits": ("cloud", "cloud or glow: background 3422 ADU, 28.1 sigma above the median"),
    "a 006?.fits": ("trailing", "trailing: elongation 1.9 <with> 'quotes'"),
}


class Page(HTMLParser):
    """The tags of a page with their attributes, and the text of its script blocks."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None
        self._text: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):  # noqa: D102
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script, self._text = attributes, []

    def handle_endtag(self, tag):  # noqa: D102
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def handle_data(self, data):  # noqa: D102
        if self._script is not None:
            self._text.append(data)
        else:
            self.text.append(data)

    def all(self, tag: str, **match: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(m in a.get(k, "").split() for k, m in match.items())
        ]


def _write_table(path: Path, table: Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write(path, format="ascii.ecsv", overwrite=True)


def _gif(path: Path, size: int = 24, frames: int = 3) -> None:
    rng = np.random.default_rng(1)
    images = [
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)) for _ in range(frames)
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


@pytest.fixture()
def session(tmp_path: Path) -> dict:
    """A session folder as the stages leave it, with hostile names where users' data go."""
    frames_dir = tmp_path / "nights" / SESSION
    frames_dir.mkdir(parents=True)
    header = fits.Header()
    header["OBJECT"] = HOSTILE_TARGET
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.uint16), header=header).writeto(
        frames_dir / FRAMES[0]
    )
    out = tmp_path / "results" / SESSION
    mjd0 = 61113.9
    rows = []
    for i, name in enumerate(FRAMES):
        kind, reason = REJECTED.get(name, ("", ""))
        rows.append(
            {
                "file": name,
                "index": i,
                "date_obs": f"2026-03-14T21:{36 + 2 * i:02d}:00.000",
                "mjd_mid": mjd0 + i * 2 / 1440,
                "background": 2000.0 + (1400.0 if kind == "cloud" else 10.0 * i),
                "noise": 35.0,
                "star_count": 40 if kind == "cloud" else 210 + i,
                "fwhm": 3.0 + 0.05 * i,
                "elongation": 1.9 if kind == "trailing" else 1.05,
                "dx": 0.1 * i,
                "dy": -0.05 * i,
                "status": "rejected" if kind else "ok",
                "reason": reason,
                "reason_kind": kind,
            }
        )
    _write_table(out / "check" / "frames.ecsv", Table(rows=rows))
    (out / "check" / "summary.json").write_text(
        json.dumps(
            {
                "reference_frame": FRAMES[0],
                "time_span": {
                    "first_utc": rows[0]["date_obs"],
                    "last_utc": rows[-1]["date_obs"],
                    "duration_min": 10.0,
                },
                "warnings": ["2 frames <have> no usable time"],
                "hints": {
                    "vignetting": {"present": True, "message": "corners 11% darker: no flat?"}
                },
            }
        )
    )
    previews = out / "convert" / "previews"
    previews.mkdir(parents=True)
    kept = [name for name in FRAMES if name not in REJECTED]
    entries = []
    for i, name in enumerate(kept):
        preview = f"{Path(name).stem}.jpg"
        Image.fromarray(np.full((30, 40), 20 * i, dtype=np.uint8)).save(previews / preview)
        entries.append({"file": name, "preview": preview})
    (out / "convert" / "stretch.json").write_text(
        json.dumps(
            {
                "binning": 2,
                "frame_width": 80,
                "frame_height": 60,
                "preview_width": 40,
                "preview_height": 30,
                "previews": entries,
            }
        )
    )
    (out / "tune").mkdir()
    (out / "tune" / "settings.yaml").write_text(
        yaml.safe_dump(
            {
                "profile": "balanced",
                "measured": {"fwhm_px": 3.0, "fwhm_source": "median of 40 Moffat fits"},
                "extract": {
                    "detect_sigma": {"value": 4.0, "why": "balanced profile: 4 sigma"},
                    "min_area": {"value": 4, "why": "0.6 x the FWHM disc"},
                },
                "link": {"match_radius_px": {"value": 2.1, "why": "3 x measured jitter 0.24 px"}},
            }
        )
    )
    links = {
        "jpl": "https://ssd-api.jpl.nasa.gov/sb_ident.api?a=1&b=2",
        "evil": "javascript:alert(3)",
    }
    candidates = Table(
        rows=[
            ("S0001", "streak", 1, 0.5, 10.0, 20.0, 30.0, 40.0, 100.0, "{}"),
            (HOSTILE_ID, "track", 4, 0.9, 12.0, 14.0, 16.0, 18.0, 2.0, json.dumps(links)),
            ("F0001", "anomaly", 1, 0.7, 50.0, 50.0, 50.0, 50.0, 0.0, "{}"),
        ],
        names=(
            "id",
            "kind",
            "n_frames",
            "score",
            "x_start",
            "y_start",
            "x_end",
            "y_end",
            "rate_px_per_min",
            "links",
        ),
    )
    candidates["ra_start"] = [10.0, 10.1, np.nan]
    candidates["dec_start"] = [41.0, 41.1, np.nan]
    candidates["snr_median"] = [30.0, 12.0, 80.0]
    _write_table(out / "candidates.ecsv", candidates)
    detections = Table(
        rows=[
            (HOSTILE_ID, FRAMES[0], 12.0, 14.0, np.nan, np.nan, np.nan, np.nan),
            (HOSTILE_ID, HOSTILE_FRAME, 13.0, 15.0, np.nan, np.nan, np.nan, np.nan),
            ("S0001", FRAMES[3], 25.0, 30.0, 10.0, 20.0, 40.0, 40.0),
        ],
        names=("candidate_id", "frame", "x", "y", "x0", "y0", "x1", "y1"),
    )
    _write_table(out / "detections.ecsv", detections)
    (out / "solve").mkdir()
    (out / "solve" / "solve.json").write_text(
        json.dumps(
            {
                "status": "solved",
                "method": "header",
                "pixel_scale_arcsec": 2.0,
                "centre_sexagesimal": "00h42m44s +41d16m",
            }
        )
    )
    render = out / "render"
    render.mkdir()
    gifs = []
    for cid in ("S0001", HOSTILE_ID):
        safe = re.sub(r"[^A-Za-z0-9]", "_", cid)
        _gif(render / f"{safe}_object.gif")
        _gif(render / f"{safe}_stars.gif")
        gifs.append(
            {"id": cid, "gifs": {"object": f"{safe}_object.gif", "stars": f"{safe}_stars.gif"}}
        )
    _gif(render / "F0001_context.gif")
    gifs.append(
        {"id": "F0001", "gifs": {"context": "F0001_context.gif", "object": "F0001_context.gif"}}
    )
    Image.fromarray(np.zeros((30, 40), dtype=np.uint8)).save(render / "overview.png")
    (render / "render.json").write_text(
        json.dumps(
            {"version": 1, "session": SESSION, "overview": "overview.png", "candidates": gifs}
        )
    )
    bench = out / "benchmarks"
    bench.mkdir()
    columns = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, seconds, rss in (
        ("check", 1.5, 200.0),
        ("extract_000", 2.0, 300.0),
        ("extract_001", 3.0, 350.5),
        ("link", 4.0, 150.0),
    ):
        (bench / f"{name}.tsv").write_text(
            columns + f"{seconds}\t0:00:0{int(seconds)}\t{rss}\t0\t0\t0\t0\t0\t50\t{seconds / 2}\n"
        )
    return {"out": out, "frames_dir": frames_dir, "candidates": candidates}


def _context(session: dict, **overrides) -> dict:
    out = session["out"]
    arguments = {
        "session_dir": out,
        "frames_path": out / "check" / "frames.ecsv",
        "summary_path": out / "check" / "summary.json",
        "stretch_path": out / "convert" / "stretch.json",
        "tuned_path": out / "tune" / "settings.yaml",
        "candidates_path": out / "candidates.ecsv",
        "detections_path": out / "detections.ecsv",
        "solve_path": out / "solve" / "solve.json",
        "render_path": out / "render" / "render.json",
        "benchmarks_dir": out / "benchmarks",
        "extract_config": {"detect_sigma": 5.0, "min_area": None, "column_sigma": 8.0},
        "link_config": {"match_radius_px": None},
        "target": report.observed_target(session["frames_dir"], FRAMES[0]),
    }
    arguments.update(overrides)
    return report.session_context(SESSION, **arguments)


def _build(session: dict, **overrides) -> tuple[str, Page]:
    out = session["out"]
    html = report.build_report(
        _context(session, **overrides), out / "report.html", out / "report.json"
    )
    return html, Page(html)


def test_hostile_names_and_target_reach_the_page_as_text(session) -> None:
    html, page = _build(session)
    # Only our two script blocks: the JSON data and the viewer's code.
    assert len(page.all("script")) == 2
    assert "alert(" not in "".join(
        body for attrs, body in page.scripts if attrs.get("type") != "application/json"
    )
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    text = "".join(page.text)
    assert HOSTILE_TARGET in text  # shown, as text
    assert HOSTILE_FRAME in text
    assert HOSTILE_ID in text
    # The JSON block holds the hostile names without any '<' that could end it.
    (data,) = [body for attrs, body in page.scripts if attrs.get("type") == "application/json"]
    assert "<" not in data
    blink = json.loads(data)
    names = [f["name"] for f in blink["frames"]]
    assert HOSTILE_FRAME in names
    markers = {m["id"] for f in blink["frames"] for m in f["markers"]}
    assert HOSTILE_ID in markers


def test_one_card_per_candidate_best_score_first_with_their_gifs(session) -> None:
    _, page = _build(session)
    cards = page.all("article", **{"class": "card"})
    assert len(cards) == len(session["candidates"])
    assert [c["data-candidate"] for c in cards] == [HOSTILE_ID, "F0001", "S0001"]
    images = [unquote(a["src"]) for a in page.all("img")]
    for safe in ("S0001", re.sub(r"[^A-Za-z0-9]", "_", HOSTILE_ID)):
        assert f"render/{safe}_object.gif" in images
        assert f"render/{safe}_stars.gif" in images
    # The flash's context GIF is shown once, though render.json names it twice.
    assert images.count("render/F0001_context.gif") == 1


def test_lookup_links_keep_only_web_addresses(session) -> None:
    _, page = _build(session)
    hrefs = [a["href"] for a in page.all("a")]
    assert "https://ssd-api.jpl.nasa.gov/sb_ident.api?a=1&b=2" in hrefs
    assert not any(h.lower().startswith("javascript:") for h in hrefs)


def test_rejected_frames_are_listed_with_their_reasons(session) -> None:
    html, page = _build(session)
    table = html[html.index('id="rejected"') :]
    table = table[: table.index("</table>")]
    rows = Page(table).all("tr")
    assert len(rows) == 1 + len(REJECTED)  # a header row and one per rejected frame
    text = "".join(Page(table).text)
    for name, (kind, reason) in REJECTED.items():
        assert name in text and reason in text and kind in text
    assert "a_001.fits" not in text  # kept frames are not in the table


def test_settings_are_marked_tuned_with_their_reason_or_configured(session) -> None:
    context = _context(session)
    rows = {(r["stage"], r["key"]): r for r in context["settings_rows"]}
    assert rows[("extract", "detect_sigma")]["mark"] == "configured"
    assert rows[("extract", "detect_sigma")]["value"] == 5.0
    assert "4.0" in rows[("extract", "detect_sigma")]["why"]  # what tuning would have chosen
    assert rows[("extract", "min_area")]["mark"] == "tuned"
    assert rows[("extract", "min_area")]["why"] == "0.6 x the FWHM disc"
    assert rows[("link", "match_radius_px")]["mark"] == "tuned"
    assert rows[("extract", "column_sigma")]["mark"] == "configured"
    _, page = _build(session)
    marks = [a for a in page.all("span") if "mark" in a.get("class", "").split()]
    assert {m["class"] for m in marks} == {"mark mark-configured", "mark mark-tuned"}


def test_links_are_relative_and_nothing_loads_from_the_network(session) -> None:
    html, page = _build(session)
    out = session["out"]
    for attrs in page.all("img"):
        src = attrs["src"]
        assert not urlsplit(src).scheme and not src.startswith("/"), src
        assert (out / unquote(src)).is_file(), src
    for tag in ("script", "link", "iframe", "source", "video", "audio"):
        for attrs in page.all(tag):
            assert "src" not in attrs and "href" not in attrs, (tag, attrs)
    for attrs in page.all("a"):
        href = attrs["href"]
        if urlsplit(href).scheme:
            assert href.startswith("https://") and attrs.get("target") == "_blank"
        else:
            assert not href.startswith("/")
    assert "@import" not in html and "@font-face" not in html
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)


def test_summary_counts_solution_and_run_times(session) -> None:
    context = _context(session)
    assert context["target"] == HOSTILE_TARGET
    assert (context["frames_total"], context["frames_kept"], context["frames_rejected"]) == (
        6,
        4,
        2,
    )
    assert dict(context["kinds"]) == {"track": 1, "streak": 1, "anomaly": 1}
    assert context["solved"] is True
    stages = {b["stage"]: b for b in context["benchmarks"]}
    assert stages["extract"]["jobs"] == 2
    assert stages["extract"]["seconds"] == pytest.approx(5.0)
    assert stages["extract"]["max_rss_mb"] == pytest.approx(350.5)
    assert [b["stage"] for b in context["benchmarks"]] == ["check", "extract", "link"]
    assert context["total_seconds"] == pytest.approx(10.5)
    written = (
        json.loads((session["out"] / "report.json").read_text())
        if (session["out"] / "report.json").exists()
        else None
    )
    assert written is None
    _build(session)
    written = json.loads((session["out"] / "report.json").read_text())
    assert written["candidates"] == 3 and written["rejected"] == 2 and written["solved"] is True


def test_blink_markers_are_scaled_by_the_preview_binning(session) -> None:
    blink = _context(session)["blink"]
    assert [f["name"] for f in blink["frames"]] == [n for n in FRAMES if n not in REJECTED]
    first = blink["frames"][0]
    (marker,) = first["markers"]
    # Binning 2: frame pixel 12 (centre of pixel 12 at 12.5 in SVG units) -> 6.25.
    assert (marker["x"], marker["y"]) == (6.25, 7.25)
    streak = next(f for f in blink["frames"] if f["name"] == FRAMES[3])["markers"][0]
    assert streak["line"] == [5.25, 10.25, 20.25, 20.25]
    assert first["src"] == "convert/previews/a_001.jpg"


def test_target_falls_back_to_the_folder_without_an_object_header(session) -> None:
    context = _context(session, target=None)
    assert context["target"] == "M31 <i>" and context["target_from_header"] is False
    assert report.observed_target(session["frames_dir"], "missing.fits") is None


def test_report_settings_refuse_unknown_keys_and_bad_values() -> None:
    assert report.ReportSettings.from_mapping({"blink_interval_ms": 250}).blink_interval_ms == 250
    with pytest.raises(ValueError, match="unknown key 'blink_speed'"):
        report.ReportSettings.from_mapping({"blink_speed": 2})
    with pytest.raises(ValueError, match="blink_interval_ms"):
        report.ReportSettings(blink_interval_ms=5)


def test_time_plot_leaves_out_missing_values_and_marks_rejected_frames() -> None:
    plot = report.time_plot(
        [0.0, 2.0, 4.0, None],
        [1.0, float("nan"), 3.0, 4.0],
        [False, False, True, False],
        ["a", "b", "c", "d"],
        title="t",
        unit="px",
        x_label="min",
    )
    assert [p["rejected"] for p in plot["points"]] == [False, True]
    assert plot["line"].count(",") == 1  # only the kept, measured frame is on the line
    assert all(plot["left"] <= p["x"] <= plot["right"] for p in plot["points"])
    assert all(plot["top"] <= p["y"] <= plot["bottom"] for p in plot["points"])
    assert report.time_plot([], [], [], [], title="t", unit="", x_label="")["empty"]


def test_index_lists_every_session_newest_night_first_with_failures(
    session, tmp_path: Path
) -> None:
    _build(session)
    results = tmp_path / "results"
    failed = results / "2026-03-15" / "broken"
    (failed / "logs").mkdir(parents=True)
    (failed / "logs" / "convert.log").write_text(
        "2026-03-15 01:00:00,000 ERROR spacepixels: convert failed for session 2026-03-15/broken: "
        "only 0 of 5 frames <passed> the check\n"
    )
    sessions = [SESSION, "2026-03-15/broken", "2026-03-13/later"]
    nights = report.build_index(results, sessions, results / "index.html")
    assert [n["night"] for n in nights] == ["2026-03-15", "2026-03-14", "2026-03-13"]
    status = {s["session"]: s["status"] for n in nights for s in n["sessions"]}
    assert status == {SESSION: "done", "2026-03-15/broken": "failed", "2026-03-13/later": "pending"}
    html = (results / "index.html").read_text()
    page = Page(html)
    links = [a["href"] for a in page.all("a", **{"class": "session-link"})]
    assert len(links) == 1
    assert (results / unquote(links[0])).resolve() == (session["out"] / "report.html").resolve()
    assert "only 0 of 5 frames <passed> the check" in "".join(page.text)
    assert "<passed>" not in html
    assert not page.all("script")
