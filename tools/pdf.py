"""Print the built book to one PDF: ``_book/pdf/attention-hands-on.pdf``.

    python -m tools.pdf [--site DIR] [--output FILE]

``make book`` (``tools/build_book.py``) runs this after the HTML build; ``make pdf`` runs
it alone, on an already built ``_book/html``. No LaTeX: each page of the table of
contents, as built, is loaded in the Chromium the browser test uses
(``python -m tools.browser``), its maths typeset by the book's own offline MathJax, and
printed with the theme's print style sheet; ``pypdf`` joins the pages into one file with
a bookmark per page. Before a chapter is printed, its solutions (folded on the web: the
conceptual exercises' dropdowns and the coding exercises' solution cells) are moved,
opened, to a "Solutions" section at the end of the chapter, so that the exercises can be
tried on paper first. The other folded code (plotting-only cells) stays folded; its
figures are printed. A copy of the PDF is put in the site (``_book/html/``), where the
book's header links to it.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import shutil
import sys
import threading
from pathlib import Path

from tools import browser as browser_tool
from tools.notebooks import toc_pages

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_book" / "html"
OUTPUT = ROOT / "_book" / "pdf" / "attention-hands-on.pdf"
NAME = OUTPUT.name  # the copy in the site, next to index.html


def edition_output(lang: str) -> Path:
    """Where an edition's PDF goes (``_book/pdf/attention-hands-on-zh.pdf``); its copy in
    the edition's site is ``NAME`` too, so each book's download menu finds its own."""
    return OUTPUT.with_name(f"{OUTPUT.stem}-{lang}.pdf")


# Moves a chapter's solutions, opened, to a "Solutions" section at the end of its article.
GATHER_SOLUTIONS = """
() => {
  const article = document.querySelector("article") || document.querySelector("main");
  const moved = [];
  for (const box of document.querySelectorAll("div.solution")) {
    box.classList.remove("dropdown", "toggle-hidden");
    box.querySelectorAll(".toggle-hidden").forEach(e => e.classList.remove("toggle-hidden"));
    box.querySelectorAll("button.toggle-button").forEach(e => e.remove());
    moved.push(box);
  }
  for (const cell of document.querySelectorAll("div.cell.tag_hide-input")) {
    const code = cell.querySelector(".cell_input pre");
    if (code && code.textContent.trimStart().startsWith("# @title Solution")) {
      cell.querySelectorAll("details").forEach(d => { d.open = true; });
      const label = document.createElement("p");
      label.className = "pdf-solution-label";
      const exercise = cell.previousElementSibling && cell.previousElementSibling
        .previousElementSibling;
      const title = exercise && exercise.matches(".exercise")
        && exercise.querySelector(".admonition-title");
      label.textContent = "Solution to " + (title ? title.textContent.trim() : "an exercise");
      moved.push(label, cell);
    }
  }
  if (!moved.length) return 0;
  const section = document.createElement("section");
  section.className = "pdf-solutions";
  const heading = document.createElement("h2");
  heading.textContent = "Solutions";
  section.appendChild(heading);
  moved.forEach(e => section.appendChild(e));
  article.appendChild(section);
  return moved.filter(e => !e.classList.contains("pdf-solution-label")).length;
}
"""

PRINT_STYLE = """
*, *::before, *::after { animation: none !important; transition: none !important; }
details[open] > *:not(summary) { opacity: 1 !important; visibility: visible !important; }
.pdf-solutions { break-before: page; }
.pdf-solution-label { font-weight: bold; margin-top: 1em; }
details.hide.above-input:not([open]) > summary { display: none; }
div.cell_output pre, div.cell_input pre { white-space: pre-wrap; overflow-wrap: anywhere; }
"""
# A code cell moves whole to the next page when it does not fit. Without this, the
# theme's "break-inside: avoid" on the highlighted block inside the cell moved only the
# code, and left the cell's grey frame, empty, at the bottom of the page (42 of 244
# pages). A cell longer than a page breaks inside its code; its output follows its code.
WHOLE_CELLS = """
div.cell_input { break-inside: avoid; }
div.cell_input div.highlight, div.cell_input div[class*="highlight-"] {
  break-inside: auto; display: block;
}
div.cell_output { break-before: avoid; }
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def print_pages(
    site: Path,
    chromium: str,
    pages: list[str] | None = None,
    style: str = PRINT_STYLE + WHOLE_CELLS,
) -> list[tuple[str, bytes, int]]:
    """(title, PDF bytes, solutions moved) for each page of the table of contents (or
    of ``pages``), printed with ``style`` added to the theme's print style sheet."""
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    printed = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page()
            # the book is offline: nothing may leave localhost
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith(base)
                    else route.abort()
                ),
            )
            for name in pages or toc_pages():
                page.goto(f"{base}/{name}.html", wait_until="load")
                page.wait_for_function(
                    "() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)"
                )
                page.evaluate("() => window.MathJax && MathJax.startup.promise")
                moved = page.evaluate(GATHER_SOLUTIONS)
                # no fade-in: a just-opened solution would print blank (seen once)
                page.add_style_tag(content=style)
                page.wait_for_timeout(300)
                title = page.evaluate(
                    "() => (document.querySelector('article h1') || {}).textContent"
                    " || document.title"
                )
                pdf = page.pdf(
                    format="A4",
                    print_background=True,
                    margin={
                        "top": "15mm",
                        "bottom": "15mm",
                        "left": "12mm",
                        "right": "12mm",
                    },
                )
                printed.append((title.replace("#", "").strip(), pdf, moved))
            browser.close()
    finally:
        server.shutdown()
    return printed


CODE_FRAME_GREYS = ((246, 246, 246), (242, 244, 245))  # a cell's frame, its code block


def empty_frames(pdf: bytes | Path, dpi: int = 40) -> list[tuple[int, float]]:
    """(page number, height as a share of the page) of every code-cell frame taller than
    a fifth of its page with no ink in it: the grey box Chromium leaves when a cell's
    code moves to the next page without its frame."""
    import numpy as np
    import pymupdf

    document = pymupdf.open(stream=pdf) if isinstance(pdf, bytes) else pymupdf.open(pdf)
    found = []
    for number, page in enumerate(document, start=1):
        pixmap = page.get_pixmap(dpi=dpi)
        rgb = (
            np.frombuffer(pixmap.samples, dtype=np.uint8)
            .reshape(pixmap.height, pixmap.width, pixmap.n)[..., :3]
            .astype(int)
        )
        grey = np.zeros(rgb.shape[:2], dtype=bool)
        for colour in CODE_FRAME_GREYS:
            grey |= np.abs(rgb - colour).sum(-1) <= 3
        ink = rgb.min(-1) < 160
        framed = np.append(grey.mean(1) > 0.5, False)  # rows that are mostly frame
        start = None
        for y, inside in enumerate(framed):
            if inside and start is None:
                start = y
            elif not inside and start is not None:
                height, columns = y - start, grey[start:y].any(0)
                if height > pixmap.height / 5 and ink[start:y][:, columns].sum() < 5:
                    found.append((number, round(height / pixmap.height, 2)))
                start = None
    return found


def join(printed: list[tuple[str, bytes, int]], output: Path) -> int:
    """One PDF with a bookmark per page; returns its number of pages."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for title, pdf, _ in printed:
        start = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(pdf)))
        writer.add_outline_item(title=title, page_number=start)
    writer.add_metadata(
        {"/Title": "Attention, Hands-On", "/Author": "The Attention, Hands-On authors"}
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as f:
        writer.write(f)
    return len(writer.pages)


def build(site: Path = SITE, output: Path = OUTPUT) -> int:
    if not (site / "index.html").exists():
        print(f"no built book in {site}; build it first (make book)")
        return 1
    chromium = browser_tool.find_chromium()
    if not chromium:
        print(browser_tool.HOW_TO)
        return 1
    printed = print_pages(site, chromium)
    pages = join(printed, output)
    shutil.copy2(output, site / NAME)
    solutions = sum(moved for _, _, moved in printed)
    size = output.stat().st_size / 1e6
    print(
        f"wrote {output} ({pages} pages, {size:.1f} MB, {len(printed)} book pages, "
        f"{solutions} solutions at the ends of their chapters)"
    )
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tools.pdf", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--site", type=Path, default=SITE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    return build(args.site, args.output)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
