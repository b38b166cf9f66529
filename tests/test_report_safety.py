"""A report built from hostile names and headers runs none of them, in a real browser.

One session whose folder and frame names hold HTML that runs script when parsed
(``<img src=x onerror=...>``, ``<svg onload=...>``), whose headers (OBJECT, OBSERVER,
TELESCOP, INSTRUME, FILTER) hold ``</script><script>...``, attribute break-outs and
``javascript:`` links, and with a frame whose name holds ``<script>`` (rejected, so it is
listed among the rejected frames). The real workflow makes its report and the index;
Debian's chromium (Playwright, by path, headless; nothing downloaded) opens both from
disk. Every payload, if it ran, would set ``window.__pwned`` and open a dialog: neither
may happen, no page error may be raised, and the hostile session name must be shown as
text.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import badinput_corpus as corpus
import pytest
from astropy.io import fits

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright (python) is not installed: pip install playwright"
)
if not CHROMIUM.exists():
    pytest.skip(
        f"no browser at {CHROMIUM}: apt-get install chromium (the test never downloads one)",
        allow_module_level=True,
    )

FOLDER = "M31 <img src=x onerror=window.__pwned=1;alert(1)>"
FRAME = "light <svg onload=window.__pwned=2;alert(2)> '&quot; {k:02d}.fits"
SCRIPT_FRAME = "light_<script>window.__pwned=3<.fits"
HEADERS = {
    "OBJECT": "</script><script>window.__pwned=4;alert(4)</script>",
    "OBSERVER": '"><img src=x onerror="window.__pwned=5;alert(5)">',
    "TELESCOP": "<iframe src=javascript:window.parent.__pwned=6></iframe>",
    "INSTRUME": "';window.__pwned=7;alert(7);'",
    "FILTER": "<a href=javascript:alert(8)>L</a>",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    where = tmp_path_factory.mktemp("hostile")
    base, _ = corpus.base_frames(where / "scratch")
    session = f"2026-03-23/{FOLDER}"
    folder = where / "nights" / session
    folder.mkdir(parents=True)
    for k, path in enumerate(base):
        target = folder / FRAME.format(k=k + 1)
        shutil.copyfile(path, target)
        with fits.open(target, mode="update") as hdul:
            for key, value in HEADERS.items():
                hdul[0].header[key] = (value, "")
    shutil.copyfile(folder / FRAME.format(k=1), folder / SCRIPT_FRAME)
    work = corpus.make_workdir(where)
    out = where / "results"
    done = subprocess.run(
        corpus.snakemake_command(where / "nights", out),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, session


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.mark.parametrize("page_name", ["report", "index"])
def test_hostile_names_and_headers_run_nothing(results, browser, page_name: str) -> None:
    out, session = results
    path = out / session / "report.html" if page_name == "report" else out / "index.html"
    assert path.exists(), path
    page = browser.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)  # an onerror or onload handler fires after the load
    # Hover and click everything a user might: no handler of the payloads may fire.
    for link in page.locator("a").all()[:50]:
        href = link.get_attribute("href") or ""
        assert not href.strip().lower().startswith("javascript:"), href
    pwned = page.evaluate("() => window.__pwned")
    text = page.inner_text("body")
    page.close()
    assert dialogs == [], dialogs
    assert pwned is None, f"an injected script ran (window.__pwned = {pwned})"
    assert errors == [], errors
    assert FOLDER in text  # shown as text, not parsed as markup


def test_no_element_is_made_from_a_name_or_a_header(results, browser) -> None:
    out, session = results
    page = browser.new_page()
    page.goto((out / session / "report.html").resolve().as_uri())
    page.wait_for_load_state("load")
    made = page.evaluate(
        "() => Array.from(document.querySelectorAll('[onerror], [onload], iframe'))"
        ".map(e => e.outerHTML.slice(0, 120))"
    )
    shown = page.inner_text("#blink-name") if page.locator("#blink-name").count() else ""
    text = page.inner_text("body")
    page.close()
    assert made == []
    assert shown == FRAME.format(k=1)  # the first frame's name, as text
    assert SCRIPT_FRAME in text or "which Snakemake reads as a path variable" in text


def test_the_check_sees_a_script_that_runs(browser, tmp_path: Path) -> None:
    """The same watch on a page that does run the payloads: both are seen."""
    page_path = tmp_path / "unsafe.html"
    page_path.write_text(f"<html><body><p>{FOLDER}</p></body></html>", encoding="utf-8")
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    pwned = page.evaluate("() => window.__pwned")
    page.close()
    assert pwned == 1 and dialogs == ["1"]
