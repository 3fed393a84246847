"""The Chinese edition (中文版), served under zh/ beside the English book, in a browser.

Every page loads offline with its maths typeset; its Chinese text is drawn in a real CJK
font (no empty boxes); the 中文 / English button opens the same page in the other
edition; the search finds 注意力; the Chinese PDF embeds a CJK font under its name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SCREENSHOTS, open_page, toc_pages

from tools import pdf

CJK = ("WenQuanYi", "Noto Sans CJK", "Noto Serif CJK", "PingFang", "Microsoft YaHei")


def rendering_fonts(page, selector: str) -> list[str]:
    """The fonts Chromium actually drew an element's text with (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    return [f["familyName"] for f in fonts["fonts"]]


@pytest.mark.parametrize("page_name", toc_pages())
def test_chinese_page_renders_in_a_cjk_font(loaded, site, page_name):
    assert (site / "zh" / f"{page_name}.html").exists(), "no Chinese page"
    page = loaded(f"zh/{page_name}.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"zh-{Path(page_name).name}.png"))
    assert page.errors == [], f"script errors: {page.errors}"
    assert page.external == [], f"requests leaving localhost: {page.external}"
    assert page.failed_requests == [], f"failed requests: {page.failed_requests}"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    untypeset = page.locator("span.math:not(:has(mjx-container))").count()
    assert untypeset == 0, f"{untypeset} formulas left as TeX"
    title = page.locator("article h1").first
    assert any("\u4e00" <= ch <= "\u9fff" for ch in title.inner_text()) or (
        page_name.endswith(("04_transformer", "05_vision_transformer"))
    ), title.inner_text()  # a chapter named after its model keeps the name
    page.evaluate(
        """() => {
        const cjk = /[\u4e00-\u9fff]/;
        const first = [...document.querySelectorAll("article p, article h1")]
            .find(e => cjk.test(e.textContent));
        first.setAttribute("data-cjk-probe", "");
    }"""
    )
    fonts = rendering_fonts(page, "[data-cjk-probe]")
    assert any(f.startswith(CJK) for f in fonts), f"Chinese text drawn with {fonts}"


@pytest.mark.parametrize("page_name", ["book/04_transformer", "book/glossary"])
def test_the_language_switch_opens_the_same_page(page, base_url, page_name):
    for start, other in [
        (f"{page_name}.html", f"/zh/{page_name}.html"),
        (f"zh/{page_name}.html", f"/{page_name}.html"),
    ]:
        open_page(page, base_url, start)
        switch = page.locator("a.btn[href$='.html']").filter(
            has_text="中文" if other.startswith("/zh/") else "English"
        )
        assert switch.count() == 1
        target = switch.evaluate("a => new URL(a.getAttribute('href'), location).href")
        assert target == base_url + other
        assert page.goto(target).ok


def test_chinese_search_finds_the_chapters(page, base_url):
    open_page(page, base_url, "zh/search.html?q=注意力")
    page.locator("#search-results li").first.wait_for(timeout=30_000)
    links = [
        a.get_attribute("href") for a in page.locator("#search-results li a").all()
    ]
    chapters = {h.split("book/")[1].split(".html")[0] for h in links if "book/0" in h}
    assert {"01_attention_pooling", "02_scoring_functions"} <= chapters, links[:10]


def test_the_chinese_pdf_embeds_a_cjk_font():
    from pypdf import PdfReader

    path = pdf.edition_output("zh")
    assert path.exists(), f"no Chinese PDF; build it first (make book): {path}"
    names = set()
    for page in PdfReader(path).pages[:20]:
        fonts = page.get("/Resources", {}).get("/Font", {})
        for font in fonts.values():
            names.add(str(font.get_object().get("/BaseFont", "")))
    assert any(any(c.replace(" ", "") in n for c in CJK) for n in names), names
