"""The PDF edition (``tools/pdf.py``, built by ``make book``): every chapter with its
figures and typeset maths, the solutions at the end of their chapters, linked from the
site's header."""

from __future__ import annotations

import concurrent.futures
import json
import re

import pytest
from conftest import ROOT, chapter_pages, executed_notebook, toc_pages
from pypdf import PdfReader
from test_site import figure_outputs

from tools import pdf as pdf_tool

PDF = pdf_tool.OUTPUT


@pytest.fixture(scope="module")
def reader() -> PdfReader:
    if not PDF.exists():
        pytest.fail(f"no {PDF}; `make book` builds it (or `make pdf` on a built site)")
    return PdfReader(str(PDF))


@pytest.fixture(scope="module")
def text(reader) -> list[str]:
    """The text of each PDF page."""
    return [page.extract_text() or "" for page in reader.pages]


def _title(page: str) -> str:
    """A page's title: the first heading of its notebook or Markdown file."""
    path = ROOT / f"{page}.ipynb"
    if path.exists():
        cells = json.loads(path.read_text())["cells"]
        source = "".join(
            next(c for c in cells if "# " in "".join(c["source"]))["source"]
        )
    else:
        source = (ROOT / f"{page}.md").read_text()
    heading = next(line for line in source.splitlines() if line.startswith("# "))
    return heading[2:].strip()


def _images(reader: PdfReader) -> int:
    count = 0
    for page in reader.pages:
        resources = page.get("/Resources") or {}
        objects = resources.get("/XObject") or {}
        count += sum(
            1 for o in objects.values() if o.get_object().get("/Subtype") == "/Image"
        )
    return count


def test_every_page_is_there_in_order_with_a_bookmark(reader, text):
    titles = [_title(page) for page in toc_pages()]
    bookmarks = [item.title for item in reader.outline if not isinstance(item, list)]
    assert bookmarks == titles
    assert len(reader.pages) >= 10 * len(chapter_pages()), len(reader.pages)
    joined = "\n".join(text)
    for title in titles:  # each title is printed, in the book's order
        assert re.sub(r"\s+", " ", title) in re.sub(r"\s+", " ", joined), title
    starts = [reader.get_destination_page_number(item) for item in reader.outline]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_figures_are_embedded(reader):
    expected = sum(figure_outputs(executed_notebook(page)) for page in chapter_pages())
    assert expected > 0
    assert _images(reader) >= expected, (_images(reader), expected)


def test_no_raw_tex_leaked(text):
    joined = "\n".join(text)
    for raw in ("$$", "\\frac", "\\mathbf", "\\begin{", "\\sqrt"):
        assert raw not in joined, f"untypeset maths in the PDF: {raw!r}"


def test_solutions_are_at_the_end_of_their_chapter(reader, text):
    starts = [reader.get_destination_page_number(item) for item in reader.outline]
    ends = starts[1:] + [len(reader.pages)]
    for page, start, end in zip(toc_pages(), starts, ends):
        if page not in chapter_pages():
            continue
        pages = text[start:end]
        heading = [i for i, t in enumerate(pages) if re.search(r"^Solutions$", t, re.M)]
        assert heading, f"{page}: no Solutions section"
        before, after = "\n".join(pages[: heading[-1]]), "\n".join(pages[heading[-1] :])
        assert "Solution to" in after, page
        assert "Solution to" not in before, (
            f"{page}: a solution before the exercises end"
        )
        assert "# @title Solution" in after, f"{page}: no coding solution at the end"


def test_the_header_links_the_pdf(loaded, site):
    page = loaded(f"{chapter_pages()[0]}.html")
    link = page.locator("a.btn-download-book-pdf-button")
    assert link.count() == 1, "no 'whole book (PDF)' entry in the download menu"
    target = (site / chapter_pages()[0]).parent / link.get_attribute("href")
    assert target.resolve() == (site / pdf_tool.NAME).resolve()
    assert target.read_bytes() == PDF.read_bytes()


@pytest.mark.parametrize("path", [PDF, pdf_tool.edition_output("zh")], ids=["en", "zh"])
def test_no_page_holds_an_empty_code_frame(path):
    """A code cell that does not fit at the bottom of a page moves whole to the next;
    Chromium used to print its grey frame there, empty, filling the rest of the page."""
    found = pdf_tool.empty_frames(path)
    assert not found, f"empty code frames (page, share of the page): {found}"


def test_the_frame_check_sees_what_the_print_rule_prevents(site):
    """Chapter 1 printed without the rule that keeps a cell whole has empty frames:
    the check above would see them."""
    from tools import browser as browser_tool

    chromium = browser_tool.find_chromium()
    page = ["book/01_attention_pooling"]
    # in a thread of its own: the session's browser keeps Playwright's loop running in
    # this one, and a second sync_playwright cannot start beside it
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        ((_, without, _),) = thread.submit(
            pdf_tool.print_pages, site, chromium, page, pdf_tool.PRINT_STYLE
        ).result()
        ((_, with_rule, _),) = thread.submit(
            pdf_tool.print_pages, site, chromium, page
        ).result()
    assert pdf_tool.empty_frames(without), "the check no longer sees an empty frame"
    assert not pdf_tool.empty_frames(with_rule)
