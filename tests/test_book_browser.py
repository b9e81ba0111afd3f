"""The built book as a reader sees it, in headless Chromium with no network.

The book is built by the Makefile's own ``make book`` (quick mode, the committed records:
about 2 to 4 minutes on 2 cores, the notebooks executed two at a time), in a scratch copy of
the book's sources, so a build of the developer's own in ``_build/`` is left alone; the
package and the records are the checkout's. Then every page of the table of contents is
opened from disk (``file://``, as a reader opens a downloaded book) and must show:

* no error in the browser's console, no script error, and no request off this machine
  (MathJax comes with the book: sphinx-mathjax-offline);
* its title; for a chapter, at least one figure that has loaded (natural width > 0) and
  one table;
* rendered math: MathJax's output is there, and no raw ``\\(`` ``\\[`` or ``$$`` is left
  in the text;
* no build-machine path (the checkout, the venv, the home and temporary folders,
  ``site-packages``) anywhere in its text, hidden code cells included.

A screenshot of each page goes to ``_build/screenshots/`` (kept by CI's log). Without a
browser (Debian's ``chromium``; ``.ci/run`` installs it) or playwright, the module skips,
saying which, before building anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from headless import browser, chromium_path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "_build" / "screenshots"
BUILD_TIMEOUT_S = 1800  # the quick book takes ~12 min on 2 idle cores; twice that beside a campaign
BOOK_SOURCES = ["Makefile", "_config.yml", "_toc.yml", "notebooks", "book"]

pytestmark = pytest.mark.slow


def toc_pages() -> list[str]:
    """The pages of _toc.yml in order: the root, then each chapter."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


PAGES = toc_pages()


def has_math(page: str) -> bool:
    """Whether the page's source holds TeX (the bibliography, say, has none, and Sphinx loads
    MathJax only on pages with math)."""
    if page.startswith("book/_executed/"):
        source = ROOT / "notebooks" / f"{Path(page).name}.py"
    else:
        source = ROOT / f"{page}.md"
    return "$" in source.read_text()


# The text a reader reads: the page's main part without code (which may hold TeX on purpose).
PROSE_JS = """() => {
    const main = document.querySelector('main').cloneNode(true);
    main.querySelectorAll('pre, code, script, style').forEach(e => e.remove());
    return main.textContent;
}"""
# What the cells printed or displayed.
OUTPUTS_JS = (
    """() => [...document.querySelectorAll('.cell_output')].map(e => e.textContent).join(' ')"""
)
# A library's warning line or a progress bar (tqdm's "45%|████   | 9/20 [00:01<...]").
BUILD_LOG = re.compile(r"\b\w+Warning: .{0,80}|\d+%\|.{0,40}\|\s*\d+/\d+ \[")
# All the text of the page, collapsed (hidden-input) cells included; not scripts or styles.
ALL_TEXT_JS = """() => {
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const parts = [];
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        const tag = n.parentElement && n.parentElement.tagName;
        if (tag !== 'SCRIPT' && tag !== 'STYLE') parts.push(n.textContent);
    }
    return parts.join(' ');
}"""


def data_dir() -> Path:
    """The data folder `make book` would use from the checkout."""
    return Path(os.environ.get("LORABOOK_DATA") or ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """``make book`` in a scratch copy of the book's sources; the built ``html`` folder."""
    pytest.importorskip("playwright", reason="playwright is not installed (the dev extra)")
    if chromium_path() is None:
        pytest.skip("no Chromium: apt-get install chromium (or set LORABOOK_CHROMIUM)")
    if shutil.which("make") is None:
        pytest.skip("no make")
    work = tmp_path_factory.mktemp("book")
    for name in BOOK_SOURCES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("_executed", "__pycache__", ".ipynb_checkpoints")
            shutil.copytree(source, work / name, ignore=ignore)
        else:
            shutil.copy2(source, work / name)
    venv = Path(sys.prefix)
    command = [
        *("make", "-C", str(work), "-j2", "-o", f"{venv}/.installed", "book"),
        *(f"VENV={venv}", "MODE=quick", f"LORABOOK_DATA={data_dir()}"),
    ]
    log = work / "make-book.log"
    with log.open("w") as out:
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S, check=False
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-60:])
        pytest.fail(f"make book failed ({done.returncode}):\n{tail}")
    return work / "_build" / "html"


@pytest.fixture(scope="module")
def chromium(book):
    with browser() as context:
        yield context


def machine_paths(book: Path) -> list[str]:
    """Strings that would betray the build machine in a page."""
    paths = {ROOT, Path(sys.prefix), Path(sys.prefix).resolve(), Path.home(), book.parents[1]}
    paths.add(Path(tempfile.gettempdir()))
    return sorted({f"{p}/" for p in paths if str(p) != "/"} | {"site-packages", "dist-packages"})


def test_the_book_has_mathjax_from_itself_not_a_cdn(book):
    assert (book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in PAGES:
        html = (book / f"{page}.html").read_text()
        sources = re.findall(r'<script[^>]*src="([^"]*)"', html)
        mathjax = [s for s in sources if "mathjax" in s.lower()]
        assert mathjax or not has_math(page), (page, "no MathJax")
        assert all("://" not in s for s in mathjax), (page, mathjax)


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_as_a_book(book, chromium, page):
    tab = chromium.new_page()
    problems: list[str] = []

    def console(message):
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    tab.on("console", console)
    tab.on("pageerror", lambda err: problems.append(f"script error: {err}"))
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

    def offline(route):
        problems.append(f"request off the machine: {route.request.url}")
        route.abort()

    tab.route(re.compile(r"^(https?|wss?)://"), offline)
    tab.goto((book / f"{page}.html").as_uri(), wait_until="load")
    math = has_math(page)
    if math:
        try:
            tab.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                timeout=20_000,
            )
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: say what the page did
            pytest.fail("MathJax did not start in 20 s:\n" + "\n".join(problems))
        tab.evaluate("() => MathJax.startup.promise")  # typesetting finished
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{Path(page).name}.png"))

    heading = tab.locator("main article h1").filter(visible=True).first  # not the print one
    title = heading.inner_text().strip().rstrip("#").strip()
    assert title and title in tab.title(), (title, tab.title())
    assert not math or tab.locator("main mjx-container").count() > 0, "no math rendered"
    prose = tab.evaluate(PROSE_JS)
    raw = [s for s in ("\\(", "\\[", "$$") if s in prose]
    assert not raw, f"raw TeX left in the text: {raw}"
    if "_executed/" in page:  # a chapter: its figures and its results
        widths = tab.evaluate(
            "() => [...document.querySelectorAll('main img')].map(i => i.naturalWidth)"
        )
        assert any(w > 0 for w in widths), f"no figure loaded: {widths}"
        assert tab.locator("main table").count() > 0, "no table"
    # everything in the page's text, collapsed code cells included (not scripts or styles)
    every_text = tab.evaluate(ALL_TEXT_JS)
    leaks = [p for p in machine_paths(book) if p in every_text]
    assert not leaks, f"build-machine paths in the page: {leaks}"
    outputs = tab.evaluate(OUTPUTS_JS)
    log = [m.group(0) for m in BUILD_LOG.finditer(outputs)]
    assert not log, f"a build log in the cells' outputs: {log[:5]}"
    tab.close()
    assert not problems, "\n".join(problems)
