"""The demo's reports in a real browser: Debian's chromium driven by Playwright (sync API).

The demo tree of two nights (three sessions) is made in a temporary folder and the real
workflow runs on it once for the module; each test then opens the pages from disk
(``file://``) as a user would, with no server. The browser is the system's own, given by
path; nothing is downloaded. A full-page screenshot of a report and one of the index are
saved in ``test-artifacts/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from astropy.table import Table
from badinput_corpus import snakemake_command
from workdir import make_workdir

from spacepixels import synth

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright (python) is not installed: pip install playwright"
)
if not CHROMIUM.exists():
    pytest.skip(
        f"no browser at {CHROMIUM}: apt-get install chromium (the test never downloads one)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo run through the whole workflow once: its results folder."""
    base = tmp_path_factory.mktemp("browser")
    synth.make_demo_tree(base / "demo", catalog=True, wcs=False)
    work = make_workdir(base / "work")
    results = work / "results"
    command = snakemake_command(base / "demo" / "nights", results)
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def _sessions(results: Path) -> list[str]:
    return sorted(p.parent.relative_to(results).as_posix() for p in results.glob("*/*/report.html"))


def _open(browser, path: Path):
    """A page at ``path`` (file://), with the console errors and page errors it raised."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors


def test_the_demo_has_three_session_reports(demo) -> None:
    assert _sessions(demo) == ["2026-03-14/M31", "2026-03-14/M45", "2026-03-15/M51"]


def test_reports_load_cleanly_with_every_image_and_card(demo, browser) -> None:
    for session in _sessions(demo):
        page, errors = _open(browser, demo / session / "report.html")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete,"
            " i.naturalWidth])"
        )
        cards = page.locator("article.card").count()
        page.close()
        assert errors == [], (session, errors)
        assert len(images) > 2, session  # the blink frame, the overviews and the GIFs
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        assert broken == [], (session, broken)
        for src, _, _ in images:
            assert not urlsplit(src).scheme, src  # relative: the folder works when copied
        candidates = Table.read(demo / session / "candidates.ecsv", format="ascii.ecsv")
        assert cards == len(candidates) > 0, session


def test_blink_viewer_steps_plays_and_marks(demo, browser) -> None:
    session = demo / "2026-03-14" / "M31"
    stretch = json.loads((session / "convert" / "stretch.json").read_text())
    names = [p["file"] for p in stretch["previews"]]
    detections = Table.read(session / "detections.ecsv", format="ascii.ecsv")
    page, errors = _open(browser, session / "report.html")

    def frame() -> tuple[str, str]:
        return page.inner_text("#blink-name"), page.get_attribute("#blink-img", "src")

    first = frame()
    assert first[0] == names[0]
    page.keyboard.press("ArrowRight")
    second = frame()
    assert second[0] == names[1] and second[1] != first[1]
    assert unquote(second[1]).endswith(stretch["previews"][1]["preview"])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert frame()[0] == names[-1]  # wraps round
    page.keyboard.press("ArrowRight")
    assert frame() == first
    assert page.inner_text("#blink-time").startswith("2026-03-14T")

    # "m" draws one marker per detection in the frame shown, and takes them away again.
    assert page.locator("#blink-markers circle, #blink-markers line").count() == 0
    page.keyboard.press("m")
    expected = int((detections["frame"] == names[0]).sum())
    assert expected > 0
    assert page.locator("#blink-markers circle, #blink-markers line").count() == expected
    page.keyboard.press("m")
    assert page.locator("#blink-markers circle, #blink-markers line").count() == 0

    # Space plays (frames advance by themselves), space again pauses.
    page.keyboard.press(" ")
    page.wait_for_function(
        "name => document.getElementById('blink-name').textContent !== name", arg=names[0]
    )
    page.keyboard.press(" ")
    paused = frame()
    page.wait_for_timeout(1200)
    assert frame() == paused

    # A card's "blink" button shows the candidate's first frame with the markers on.
    candidates = Table.read(session / "candidates.ecsv", format="ascii.ecsv")
    later = next(c for c in candidates if c["frame_start"] != names[0])
    page.click(f"article[data-candidate='{later['id']}'] button.to-blink")
    assert page.inner_text("#blink-name") == later["frame_start"]
    in_frame = int((detections["frame"] == later["frame_start"]).sum())
    assert page.locator("#blink-markers circle, #blink-markers line").count() == in_frame

    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")  # markers stay on while stepping
    assert page.locator("#blink-markers circle, #blink-markers line").count() == in_frame
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-M31.png"), full_page=True)
    page.close()
    assert errors == []
    assert (ARTIFACTS / "report-M31.png").stat().st_size > 10_000


def test_index_links_to_every_session_newest_night_first(demo, browser) -> None:
    page, errors = _open(browser, demo / "index.html")
    hrefs = page.eval_on_selector_all("a.session-link", "links => links.map(a => a.href)")
    nights = page.eval_on_selector_all("section.night h2", "hs => hs.map(h => h.textContent)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
    targets = {Path(unquote(urlsplit(h).path)).resolve() for h in hrefs}
    assert targets == {(demo / s / "report.html").resolve() for s in _sessions(demo)}
    assert nights == ["2026-03-15", "2026-03-14"]
    # Following a link opens that session's report.
    page.click("a.session-link >> nth=0")
    page.wait_for_load_state("load")
    assert page.url.endswith("/report.html")
    assert page.locator("article.card").count() > 0
    page.close()
    assert errors == []


def test_snakemake_report_gathers_the_pages_and_gifs(demo, tmp_path: Path) -> None:
    work = demo.parent
    nights = work.parent / "demo" / "nights"
    archive = tmp_path / "report.zip"
    command = [
        SNAKEMAKE,
        "--config",
        f"input_root={nights}",
        f"results_root={demo}",
        "--report",
        str(archive),
    ]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with zipfile.ZipFile(archive) as bundle:
        names = [Path(n).name for n in bundle.namelist()]
    assert names.count("report.html") == 1 + len(_sessions(demo))  # snakemake's own + ours
    assert "index.html" in names
    gifs = sorted(p.name for p in demo.glob("*/*/render/*.gif"))
    assert gifs and set(gifs) <= set(names)
