"""The built book, checked the way a reader sees it: in a browser.

Every page loads without script errors and without any request leaving localhost (so
the HTML folder also works offline), every image loads, every figure an executed
notebook produced is on its page with a caption, the maths is typeset by the local
MathJax, the Colab and download buttons point at the right notebook, solutions start
collapsed, no printed output is wider than the page, internal links and anchors
resolve, and the search finds "attention".
Full-page screenshots of every page go to ``_book/screenshots``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup
from conftest import (
    ROOT,
    SCREENSHOTS,
    chapter_pages,
    executed_notebook,
    open_page,
    toc_pages,
)

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def figure_outputs(notebook: dict) -> int:
    """How many images the executed notebook's visible cells produced."""
    count = 0
    for cell in notebook["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or {"remove-cell", "remove-output"} & set(tags):
            continue
        count += sum(
            "image/png" in output.get("data", {}) for output in cell.get("outputs", [])
        )
    return count


@pytest.mark.parametrize("page_name", toc_pages())
def test_page_renders_completely(loaded, page_name):
    page = loaded(f"{page_name}.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SCREENSHOTS / f"{Path(page_name).name}.png"), full_page=True
    )

    assert page.errors == [], f"script errors: {page.errors}"
    assert page.external == [], (
        f"requests leaving localhost (the book must work offline): {page.external}"
    )
    assert page.failed_requests == [], f"failed requests: {page.failed_requests}"
    broken = page.evaluate(
        "() => Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert broken == [], f"images that did not load: {broken}"

    maths = page.locator("span.math, div.math").count()
    untypeset = page.evaluate(
        "() => Array.from(document.querySelectorAll('span.math, div.math'))"
        ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent)"
    )
    assert untypeset == [], (
        f"{len(untypeset)} of {maths} formulas not typeset, e.g. {untypeset[:3]}"
    )
    errors = page.evaluate(
        "() => Array.from(document.querySelectorAll('mjx-merror'))"
        ".map(e => e.getAttribute('data-mjx-error') || e.textContent)"
    )
    assert errors == [], f"TeX errors: {errors}"

    if page_name in chapter_pages():
        assert maths > 0, "every chapter has maths"
        expected = figure_outputs(executed_notebook(page_name))
        assert expected > 0, "the executed notebook has no figures: was it executed?"
        shown = page.locator("div.cell_output img").count()
        assert shown == expected, (
            f"{expected} figures in the executed notebook, {shown} on the page"
        )
        uncaptioned = page.evaluate(
            "() => Array.from(document.querySelectorAll('div.cell_output img'))"
            ".filter(i => !(i.closest('figure') && i.closest('figure').querySelector('figcaption')"
            " && i.closest('figure').querySelector('figcaption').textContent.trim().length > 10)).length"
        )
        assert uncaptioned == 0, f"{uncaptioned} figures without a caption"


@pytest.mark.parametrize("page_name", chapter_pages())
def test_printed_output_fits_the_page(loaded, page_name):
    """No output block scrolls sideways: a reader sees every printed line whole."""
    page = loaded(f"{page_name}.html")
    too_wide = page.evaluate(
        "() => Array.from(document.querySelectorAll('div.cell_output pre'))"
        ".filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.textContent.split('\\n')"
        ".reduce((a, b) => (b.length > a.length ? b : a), ''))"
    )
    assert too_wide == [], (
        f"{len(too_wide)} output blocks wider than the page; their longest lines: "
        f"{too_wide}"
    )


@pytest.mark.parametrize("page_name", chapter_pages())
def test_launch_and_download_buttons(loaded, site, page_name):
    page = loaded(f"{page_name}.html")
    repository = urlsplit(CONFIG["repository"]["url"]).path.strip("/")
    branch = CONFIG["repository"]["branch"]
    expected = (
        f"{CONFIG['launch_buttons']['colab_url']}/github/{repository}/blob/{branch}/"
        f"{page_name}.ipynb"
    )
    colab = [
        a.get_attribute("href")
        for a in page.locator("a[href*='colab.research.google.com']").all()
    ]
    assert colab == [expected], (
        f"Colab launch buttons {colab}; expected exactly {expected}"
    )
    assert (ROOT / f"{page_name}.ipynb").exists()

    download = page.locator("a.btn-download-source-button")
    assert download.count() == 1, "no 'download notebook' button"
    target = (site / Path(page_name).parent / download.get_attribute("href")).resolve()
    assert target.name == f"{Path(page_name).name}.ipynb", target
    notebook = json.loads(target.read_text())
    assert notebook["cells"], "the downloadable notebook is empty"


@pytest.mark.parametrize("page_name", chapter_pages())
def test_solutions_start_collapsed_and_open_on_click(loaded, page_name):
    page = loaded(f"{page_name}.html")
    solutions = page.locator("div.solution.dropdown")
    assert solutions.count() > 0, "no conceptual solutions found"
    first = solutions.first
    body = first.locator("section, p").last
    assert body.is_hidden(), "a solution is visible before the reader asks for it"
    first.locator(".admonition-title, button.toggle-button").first.click()
    body.wait_for(state="visible", timeout=5_000)

    code_solutions = page.locator("div.tag_hide-input details")
    assert code_solutions.count() > 0, "no collapsed code solutions found"
    assert not any(d.get_attribute("open") is not None for d in code_solutions.all()), (
        "a code solution is expanded by default"
    )


@pytest.mark.parametrize("page_name", chapter_pages())
def test_the_setup_cell_is_folded_and_its_output_shown(loaded, page_name):
    """The first screen of a chapter is what the setup chose, not install code."""
    page = loaded(f"{page_name}.html")
    setup = page.locator("div.cell").first
    assert "tag_hide-input" in (setup.get_attribute("class") or ""), (
        "the setup cell is not folded"
    )
    assert setup.locator("details").first.get_attribute("open") is None
    assert setup.locator(".cell_input pre").first.is_hidden(), "its code shows"
    output = setup.locator(".cell_output")
    assert output.is_visible() and "course_lib" in output.inner_text()
    assert "profile" in output.inner_text(), output.inner_text()


def test_search_finds_attention(page, base_url):
    open_page(page, base_url, "search.html?q=attention")
    results = page.locator("#search-results li")
    results.first.wait_for(timeout=30_000)
    links = [
        a.get_attribute("href") for a in page.locator("#search-results li a").all()
    ]
    assert any("02_scoring_functions" in href for href in links), links[:10]


def test_internal_links_and_anchors_resolve(site):
    pages = [
        p for p in site.rglob("*.html") if not {"_static", "_sources"} & set(p.parts)
    ]
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            soup = BeautifulSoup(path.read_text(), "html.parser")
            ids[path] = {tag["id"] for tag in soup.find_all(id=True)} | {
                tag["name"] for tag in soup.find_all("a", attrs={"name": True})
            }
        return ids[path]

    broken = []
    checked = 0
    for path in pages:
        soup = BeautifulSoup(path.read_text(), "html.parser")
        for tag in soup.find_all(["a", "link", "img", "script"]):
            url = tag.get("href") or tag.get("src")
            if not url or urlsplit(url).scheme or url.startswith("//"):
                continue
            parts = urlsplit(url)
            target = (
                (path.parent / unquote(parts.path)).resolve() if parts.path else path
            )
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{path.relative_to(site)} -> {url} (missing file)")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in anchors(target)
            ):
                broken.append(f"{path.relative_to(site)} -> {url} (missing anchor)")
    assert checked > 100
    assert broken == [], "\n".join(broken[:30])


def test_glossary_and_references_resolve(page, base_url):
    open_page(page, base_url, "book/glossary.html")
    rows = page.locator("table tbody tr")
    assert rows.count() >= 30
    assert "注意力汇聚" in page.content() and "动量编码器" in page.content()
    assert page.locator("table tbody a[href*='.html#']").count() >= rows.count()
    open_page(page, base_url, "book/references.html")
    cited = {
        line.split("{", 1)[1].split(",", 1)[0]
        for line in (ROOT / "references.bib").read_text().splitlines()
        if line.startswith("@")
    }
    entries = page.locator("div.citation")  # sphinxcontrib-bibtex: one per entry
    assert entries.count() == len(cited), (
        f"{entries.count()} references shown, {len(cited)} in references.bib"
    )
