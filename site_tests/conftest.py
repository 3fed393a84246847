"""Fixtures for checking the built book in a real browser.

Run after the book is built (``make test`` does both): a local HTTP server serves
``_book/html`` (or ``$SITE_DIR``) and Playwright drives the Chromium that
``python -m tools.browser`` found or installed (``$CHROMIUM``, Debian's ``chromium``,
or Playwright's own); ``make test`` runs that first.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools import browser as browser_tool
from tools.pdf import toc_pages  # every page, in table-of-contents order

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("SITE_DIR", ROOT / "_book" / "html"))
EXECUTED = ROOT / "_book" / "exec" / "book"  # the notebooks as executed for this build
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "_book" / "screenshots"))


def chapter_pages() -> list[str]:
    return [p for p in toc_pages() if (ROOT / f"{p}.ipynb").exists()]


def executed_notebook(page: str) -> dict:
    return json.loads((EXECUTED / f"{Path(page).name}.ipynb").read_text())


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book in {SITE}; build it first (make book)")
    return SITE


@pytest.fixture(scope="session")
def base_url(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def chromium_path() -> str:
    path = browser_tool.find_chromium()
    if not path:
        pytest.fail(browser_tool.HOW_TO)
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def new_page(browser):
    """A fresh tab that records script errors and failed requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.failed_requests = []

    def on_response(response):
        if response.status >= 400:
            page.failed_requests.append(f"{response.status} {response.url}")

    page.on("requestfailed", lambda request: page.failed_requests.append(request.url))
    page.on("response", on_response)
    return page


def open_page(page, base_url: str, path: str):
    """Load a page with every non-local request blocked (and recorded), wait for MathJax."""
    page.external = []

    def route(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            page.external.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.goto(f"{base_url}/{path}", wait_until="load")
    if page.locator("span.math, div.math").count():
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
            timeout=30_000,
        )
        page.evaluate("() => MathJax.startup.promise")
    return page


@pytest.fixture
def page(browser):
    """A fresh tab, for a test that navigates."""
    page = new_page(browser)
    yield page
    page.context.close()


@pytest.fixture(scope="session")
def loaded(browser, base_url):
    """loaded(path): the page at ``path``, loaded once per session and shared by the
    tests that only read it (a chapter takes seconds to load and typeset)."""
    pages = {}

    def load(path: str):
        if path not in pages:
            pages[path] = open_page(new_page(browser), base_url, path)
        return pages[path]

    yield load
    for page in pages.values():
        page.context.close()
