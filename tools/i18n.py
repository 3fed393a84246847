"""Translation tables of the book's other editions (today: Chinese, ``zh``).

    python -m tools.i18n status zh            # what is translated, missing or stale, per page
    python -m tools.i18n template zh [pages]  # add an entry (English only) for each new text
    python -m tools.i18n check zh             # exit 1, with diffs, if anything is missing or stale
    python -m tools.i18n notebooks zh         # write book/zh/*.ipynb, the notebooks Colab opens

The code and the outputs of a chapter are the same in every language; only the prose
differs. So an edition is not a second source tree but one table per page of the table of
contents, ``i18n/<lang>/<page>.yml`` (``i18n/zh/01_attention_pooling.yml``), a list in page
order of entries::

    - key: 3f9a0c21d4        # the English text's hash (see ``key``)
      en: |                  # the English the translation was made from
        ## 1.4 Nadaraya–Watson: let the query choose its keys
      zh: |                  # the translation; ``zh: null`` keeps the English on purpose
        ## 1.4 Nadaraya–Watson：让查询选择它的键

A *text* is one markdown cell of a notebook, or one block of a ``.md`` page (a paragraph,
a list, a table, a heading, a ``$$`` or fenced ``{directive}`` block). An entry is
**missing** when a text of today's English has none, or has no ``zh`` at all;
**stale** when its key is no longer the hash of any English text, that is, the English was
edited after the translation: ``check`` shows the diff of the entry's English snapshot
against the closest text of today's English, so that the translator sees what changed.
``template`` never overwrites a translation: it adds entries for new texts, in page order,
and keeps stale ones after them until the translator moves their Chinese over.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import hashlib
import json
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools.notebooks import toc_pages

ROOT = Path(__file__).resolve().parents[1]
I18N = ROOT / "i18n"
LANGUAGES = ("zh",)
KEY_LENGTH = 10


# ---------------------------------------------------------------------------------------
# The English texts of a page, and their keys


def normalise(text: str) -> str:
    """Unicode NFC, ``\\n`` line ends, no trailing spaces, no blank lines at either end."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def key(text: str) -> str:
    """The first ``KEY_LENGTH`` hex digits of the SHA-1 of the normalised text."""
    return hashlib.sha1(normalise(text).encode()).hexdigest()[:KEY_LENGTH]


FENCE = re.compile(r"^(`{3,}|:{3,})")


def markdown_blocks(text: str) -> list[str]:
    """A MyST page cut into blocks: runs of lines between blank lines, except that a fenced
    block (```` ``` ```` or ``:::``, a directive or code) and a ``$$`` block stay whole."""
    blocks, current = [], []
    lines = normalise(text).split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line.lstrip())
        if fence or line.strip() == "$$":
            closing = fence.group(1) if fence else "$$"
            current.append(line)
            i += 1
            while i < len(lines):
                current.append(lines[i])
                i += 1
                if lines[i - 1].strip() == closing:
                    break
            continue
        if line.strip():
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
        i += 1
    if current:
        blocks.append("\n".join(current))
    return blocks


def page_source(page: str, root: Path | None = None) -> Path:
    """The source file of a table-of-contents page, e.g. 'book/glossary' -> book/glossary.md."""
    for suffix in (".ipynb", ".md"):
        path = (root or ROOT) / f"{page}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"page {page!r} of _toc.yml has no .ipynb or .md file")


# A notebook's Colab badge is not translated: the edition's points at book/<lang>/, and
# `python -m tools.notebooks pin` may change its branch without making a text stale.
COLAB_BADGE = re.compile(
    r"^\[!\[Open In Colab\]\([^)]*\)\]\(https://colab\.research\.google\.com/"
    r"github/[^)\s]+/blob/[^)\s]+/book/[^)\s/]+\.ipynb\)$"
)


def english_texts(path: Path) -> list[str]:
    """The texts to translate, in page order: a notebook's markdown cells, a page's blocks.
    The results page is written by each build (``tools/results_page.py``): its texts are
    the placeholder's and the generated page's fixed prose (``results_page.INTRO``); its
    tables of numbers stay as generated."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        sources = ("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        texts = (normalise(s) for s in sources if s.strip())
        return [t for t in texts if not COLAB_BADGE.match(t)]
    blocks = markdown_blocks(path.read_text())
    if path.name == GENERATED_PAGE:
        blocks += [b for b in markdown_blocks(_results_intro()) if b not in blocks]
    return blocks


GENERATED_PAGE = "results.md"


def _results_intro() -> str:
    from tools import results_page  # imports course_lib: only for the results page

    return results_page.INTRO


# ---------------------------------------------------------------------------------------
# The tables


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (``|``), so that a table reads like the text."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def table_path(lang: str, page: str, root: Path | None = None) -> Path:
    return (root or ROOT) / "i18n" / lang / f"{Path(page).name}.yml"


def load_table(lang: str, page: str, root: Path | None = None) -> list[dict]:
    path = table_path(lang, page, root)
    if not path.exists():
        return []
    entries = yaml.safe_load(path.read_text()) or []
    for entry in entries:
        if not isinstance(entry, dict) or not {"key", "en"} <= set(entry):
            raise ValueError(f"{path}: every entry needs a key and en; got {entry!r}")
    return entries


def save_table(
    lang: str, page: str, entries: list[dict], root: Path | None = None
) -> Path:
    path = table_path(lang, page, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# {page}: the {lang} text of each English text, in page order "
        "(python -m tools.i18n; see its docstring)\n"
    )
    body = yaml.dump(
        entries, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10_000
    )
    path.write_text(header + body)
    return path


@dataclass
class PageStatus:
    page: str
    texts: int
    translated: int = 0  # a translation, or null (the English kept on purpose)
    missing: list[str] = field(default_factory=list)  # English texts without one
    stale: list[dict] = field(default_factory=list)  # entries no English text matches

    @property
    def complete(self) -> bool:
        return not self.missing and not self.stale


def page_status(lang: str, page: str, root: Path | None = None) -> PageStatus:
    texts = english_texts(page_source(page, root))
    entries = {e["key"]: e for e in load_table(lang, page, root)}
    status = PageStatus(page, len(texts))
    for text in texts:
        entry = entries.get(key(text))
        if entry is not None and lang in entry:
            status.translated += 1
        else:
            status.missing.append(text)
    keys = {key(t) for t in texts}
    status.stale = [e for k, e in entries.items() if k not in keys]
    return status


def closest(text: str, candidates: list[str]) -> str:
    """The candidate most like ``text`` (what an edited English text became)."""
    if not candidates:
        return ""
    return max(candidates, key=lambda c: difflib.SequenceMatcher(None, text, c).ratio())


def stale_diff(entry: dict, texts: list[str]) -> str:
    """The entry's English snapshot against the closest English text of today."""
    today = closest(entry["en"], texts)
    lines = difflib.unified_diff(
        normalise(entry["en"]).split("\n"),
        today.split("\n"),
        "translated from",
        "the English today",
        lineterm="",
    )
    return "\n".join(lines)


def template(lang: str, page: str, root: Path | None = None) -> int:
    """Add an entry (English only) for every text without one; returns how many."""
    texts = english_texts(page_source(page, root))
    old = {e["key"]: e for e in load_table(lang, page, root)}
    entries, added = [], 0
    for text in texts:
        k = key(text)
        if k in old:
            entries.append(old.pop(k))
        elif k not in {e["key"] for e in entries}:
            entries.append({"key": k, "en": text})
            added += 1
    save_table(lang, page, entries + list(old.values()), root)
    return added


def translate(lang: str, page: str, text: str, root: Path | None = None) -> str:
    """The translation of one English text (the English where ``null``); KeyError if none."""
    entries = {e["key"]: e for e in load_table(lang, page, root)}
    entry = entries[key(text)]
    return normalise(text) if entry[lang] is None else entry[lang]


# ---------------------------------------------------------------------------------------
# Assembly: the English page with its prose swapped, code and outputs untouched


def _translated(lang: str, page: str, text: str, table: dict[str, dict]) -> str:
    entry = table.get(key(text))
    if entry is None or lang not in entry:
        raise KeyError(
            f"{page}: no {lang} text for [{key(text)}] {text[:60]!r}; "
            f"see python -m tools.i18n status {lang}"
        )
    return normalise(text) if entry[lang] is None else entry[lang]


def assemble_notebook(
    lang: str, page: str, notebook: dict, root: Path | None = None
) -> dict:
    """The notebook (executed or not) with every markdown cell in ``lang``; the code cells
    and their outputs are the English notebook's, untouched."""
    table = {e["key"]: e for e in load_table(lang, page, root)}
    result = copy.deepcopy(notebook)
    for cell in result["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or not source.strip():
            continue
        if COLAB_BADGE.match(normalise(source)):  # the edition's own notebook
            text = re.sub(r"/book/([^/)]+\.ipynb)\)", rf"/book/{lang}/\1)", source)
        else:
            text = _translated(lang, page, normalise(source), table)
        cell["source"] = text.splitlines(keepends=True)
    result.setdefault("metadata", {})["language"] = lang
    return result


def assemble_markdown(lang: str, page: str, text: str) -> str:
    """A ``.md`` page in ``lang``, block by block. On the generated results page a block
    with no entry (a table of this build's numbers) stays as generated."""
    table = {e["key"]: e for e in load_table(lang, page)}
    generated = Path(page).name + ".md" == GENERATED_PAGE
    blocks = [
        b if generated and key(b) not in table else _translated(lang, page, b, table)
        for b in markdown_blocks(text)
    ]
    return "\n\n".join(blocks) + "\n"


HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def headings(text: str) -> list[str]:
    """The headings of a markdown text (outside fenced blocks), as their source lines."""
    found, fence = [], None
    for line in text.split("\n"):
        match = FENCE.match(line.lstrip())
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None and HEADING.match(line):
            found.append(line)
    return found


def heading_title(line: str) -> str:
    """The text MyST makes a heading's anchor from: its text and inline code, no maths."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    tokens = MarkdownIt("commonmark").use(dollarmath_plugin).parse(line)
    children = tokens[1].children or []
    return "".join(c.content for c in children if c.type in ("text", "code_inline"))


def anchors(lang: str) -> dict[str, str]:
    """Each translated heading's title -> the English heading's anchor, so that the two
    editions share their anchors (``page.ipynb#14-nadarayawatson-...``) and a link, or the
    language switch, lands on the same section."""
    from myst_parser.mdit_to_docutils.base import default_slugify

    mapping = {}
    for page in toc_pages():
        for entry in load_table(lang, page):
            if not entry.get(lang):
                continue
            english, translated = headings(entry["en"]), headings(entry[lang])
            if len(english) != len(translated):
                raise ValueError(
                    f"{page} [{entry['key']}]: {len(english)} headings in the English, "
                    f"{len(translated)} in the {lang}"
                )
            for en, tr in zip(english, translated):
                mapping[heading_title(tr)] = default_slugify(heading_title(en))
    return mapping


def edition_notebook_path(lang: str, page: str, root: Path | None = None) -> Path:
    """Where the edition's unexecuted notebook of a page lives (what Colab opens)."""
    return (root or ROOT) / "book" / lang / f"{Path(page).name}.ipynb"


def generated_notebooks(lang: str, root: Path | None = None) -> dict[Path, bytes]:
    """book/<lang>/<stem>.ipynb: each English notebook with its prose in ``lang``."""
    files = {}
    for page in toc_pages():
        source = (root or ROOT) / f"{page}.ipynb"
        if not source.exists():  # a .md page
            continue
        notebook = assemble_notebook(lang, page, json.loads(source.read_text()), root)
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        files[edition_notebook_path(lang, page, root)] = text.encode()
    return files


# ---------------------------------------------------------------------------------------
# The glossary's terms in the translation

NOT_PROSE = re.compile(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|<[^>]*>", re.S)


def prose(text: str) -> str:
    """The words of a markdown text: no fence or directive-option lines, no maths, inline
    code, link targets or HTML tags."""
    lines = [
        line
        for line in text.split("\n")
        if not FENCE.match(line.lstrip()) and not re.match(r":[\w-]+:", line.strip())
    ]
    return NOT_PROSE.sub(" ", "\n".join(lines))


def glossary_terms(lang: str) -> list[tuple[list[str], list[str]]]:
    """(English names, accepted translations) of each term of book/glossary.md's table:
    'encoder / decoder' and 'query, key, value' give one term per word, 'positive /
    negative sample' gives 'positive sample' and 'negative sample', 'intersection over
    union (IoU)' has two English names, '实例判别（个体判别）' two accepted translations."""
    column = {"zh": 1}[lang]
    terms = []
    for line in (ROOT / "book" / "glossary.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] == "English" or set(cells[0]) <= {"-", " "}:
            continue
        english, translated = cells[0], cells[column]
        if "、" in translated:  # a list of terms: 查询、键、值
            english, translated = (
                english.replace(",", "/"),
                translated.replace("、", "/"),
            )
        if "," in english:  # 'cue, non-volitional / volitional': the noun goes last
            noun, _, rest = english.partition(",")
            english = " / ".join(f"{p.strip()} {noun}" for p in rest.split("/"))
        parts, accepted_parts = english.split("/"), translated.split("/")
        if len(parts) != len(accepted_parts):
            parts, accepted_parts = [english], [translated]
        longest = max(parts, key=lambda p: len(p.split()))
        for en, tr in zip(parts, accepted_parts):
            if len(en.split()) < len(longest.split()) and "(" not in longest:
                en = (
                    f"{en.strip()} {longest.split()[-1]}"  # positive -> positive sample
                )
            names = re.findall(r"\(([^)]*)\)", en)
            main = re.sub(r"\s*\([^)]*\)", "", en).strip()
            variants = [main] + [n for n in names if not n.islower()]  # IoU, MoCo
            accepted = [a.strip() for a in re.split(r"[（(）)]", tr) if a.strip()]
            terms.append(([v for v in variants if v], accepted))
    return terms


def glossary_misses(lang: str) -> list[str]:
    """Where an English text uses a glossary term and its translation uses none of the
    term's translations (maths, code, link targets and HTML left out of both)."""
    terms = glossary_terms(lang)
    misses = []
    for page in toc_pages():
        if Path(page).name == "glossary":
            continue
        for entry in load_table(lang, page):
            if not entry.get(lang):
                continue
            english, translated = prose(entry["en"]), prose(entry[lang])
            for names, accepted in terms:
                used = [
                    n
                    for n in names
                    # 'Attention pooling' at a sentence's start; 'mAP' but not 'map'
                    if re.search(
                        rf"\b{re.escape(n)}s?\b",
                        english,
                        re.IGNORECASE if n.islower() else 0,
                    )
                ]
                # an abbreviation or a name (MoCo, NMS, InfoNCE) may stay as it is
                kept = [n for n in used if not n.islower() and n in translated]
                if used and not kept and not any(a in translated for a in accepted):
                    misses.append(
                        f"{page} [{entry['key']}]: '{used[0]}' without "
                        f"{' / '.join(accepted)}"
                    )
    return misses


# ---------------------------------------------------------------------------------------
# The edition's book: the executed English copy, its prose swapped

EDITIONS = {
    "zh": {
        "title": "动手学注意力机制 (Attention, Hands-On)",
        "language": "zh_CN",  # Sphinx: the theme's labels in Chinese, search with jieba
        "search_language": "zh",
        "captions": {  # the parts of _toc.yml
            "Foundations": "基础",
            "The Transformer and its descendants": "Transformer 及其后继者",
            "Appendix": "附录",
        },
        # myst-nb's button on a folded cell ("Show code cell source")
        "code_prompt_show": "显示单元格内容",
        "code_prompt_hide": "隐藏单元格内容",
        # WenQuanYi first: TrueType outlines, which Chromium embeds in the PDF as a
        # named font (Noto's CFF ones become unnamed Type 3 glyphs)
        "css": (
            "/* Chinese characters (only those: unicode-range) from the first of these\n"
            "   fonts that is installed; Latin text keeps the theme's fonts */\n"
            "@font-face {\n"
            '  font-family: "Book CJK";\n'
            '  src: local("WenQuanYi Micro Hei"), local("PingFang SC"),\n'
            '    local("Microsoft YaHei"), local("Noto Sans CJK SC");\n'
            "  unicode-range: U+2E80-2FDF, U+3000-33FF, U+3400-9FFF, U+F900-FAFF,\n"
            "    U+FE30-FE4F, U+FF00-FFEF;\n"
            "}\n"
            "html {\n"
            '  --pst-font-family-base: "Book CJK", var(--pst-font-family-base-system);\n'
            "  --pst-font-family-heading: var(--pst-font-family-base);\n"
            "}\n"
        ),
    }
}
ANCHORS_MODULE = """\
\"\"\"Generated by tools/i18n.py: translated headings keep the English anchors.\"\"\"

from myst_parser.mdit_to_docutils.base import default_slugify

ANCHORS = {anchors!r}


def slug(title):
    return ANCHORS.get(title) or default_slugify(title)


def setup(app):
    return {{"parallel_read_safe": True, "parallel_write_safe": True}}
"""


def _write_if_changed(path: Path, content: bytes) -> None:
    if not path.exists() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def edition_config(lang: str, config: dict) -> dict:
    """The English ``_config.yml`` made the edition's: title, language, search, anchors,
    and the language switch pointing back at the English book (one level up)."""
    config = copy.deepcopy(config)
    edition = EDITIONS[lang]
    config["title"] = edition["title"]
    sphinx = config.setdefault("sphinx", {})
    sphinx.setdefault("local_extensions", {})["edition_anchors"] = "_ext"
    settings = sphinx.setdefault("config", {})
    settings["language"] = edition["language"]
    settings["html_search_language"] = edition["search_language"]
    settings["myst_heading_slug_func"] = "edition_anchors.slug"
    settings["edition_switch"] = {"prefix": "../", "text": "English"}
    settings["nb_code_prompt_show"] = edition["code_prompt_show"]
    settings["nb_code_prompt_hide"] = edition["code_prompt_hide"]
    return config


def edition_toc(lang: str, toc: dict) -> dict:
    """The English ``_toc.yml`` with its part captions translated (the same pages)."""
    toc = copy.deepcopy(toc)
    captions = EDITIONS[lang]["captions"]
    for part in toc.get("parts", []):
        if part["caption"] not in captions:
            raise KeyError(
                f"_toc.yml's part {part['caption']!r} has no {lang} caption: add it to "
                f"tools/i18n.py's EDITIONS[{lang!r}]['captions']"
            )
        part["caption"] = captions[part["caption"]]
    return toc


def prepare_edition(lang: str, source: Path, target: Path) -> None:
    """Write the edition's book into ``target`` from the executed English copy in
    ``source`` (``_book/exec``): every file copied, except that ``_config.yml`` is the
    edition's and each page of the table of contents has its prose in ``lang``. Nothing is
    executed: the code cells and their outputs are the English run's."""
    pages = {}
    for page in toc_pages():
        for suffix in (".ipynb", ".md"):
            if (source / f"{page}{suffix}").exists():
                pages[Path(f"{page}{suffix}")] = page
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if not path.is_file() or relative.parts[0] in ("_build", ".jupyter_cache"):
            continue
        content = path.read_bytes()
        if relative in (Path("_config.yml"), Path("_toc.yml")):
            change = edition_config if relative.stem == "_config" else edition_toc
            data = change(lang, yaml.safe_load(content))
            content = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
        elif relative in pages and relative.suffix == ".ipynb":
            notebook = assemble_notebook(lang, pages[relative], json.loads(content))
            content = json.dumps(notebook, indent=1, ensure_ascii=False).encode()
        elif relative in pages:
            content = assemble_markdown(
                lang, pages[relative], content.decode()
            ).encode()
        _write_if_changed(target / relative, content)
    module = ANCHORS_MODULE.format(anchors=anchors(lang))
    _write_if_changed(target / "_ext" / "edition_anchors.py", module.encode())
    # Jupyter Book adds every .css file of the book's _static/ to each page
    _write_if_changed(
        target / "_static" / f"{lang}.css", EDITIONS[lang]["css"].encode()
    )


# ---------------------------------------------------------------------------------------
# The command line


def status(
    lang: str, root: Path | None = None, verbose: bool = False
) -> list[PageStatus]:
    results = [page_status(lang, page, root) for page in toc_pages()]
    for s in results:
        mark = "✓" if s.complete else "✗"
        print(
            f"{mark} {s.page}: {s.translated}/{s.texts} translated, "
            f"{len(s.missing)} missing, {len(s.stale)} stale"
        )
        if verbose:
            for text in s.missing:
                print(f"    missing [{key(text)}]: {text[:70]!r}")
            texts = english_texts(page_source(s.page, root))
            for entry in s.stale:
                print(f"    stale [{entry['key']}]:")
                print("      " + stale_diff(entry, texts).replace("\n", "\n      "))
    return results


def write_notebooks(lang: str, root: Path | None = None) -> list[Path]:
    """Write book/<lang>/*.ipynb from the English notebooks and the tables."""
    files = generated_notebooks(lang, root)
    for path, content in files.items():
        _write_if_changed(path, content)
    return list(files)


def notebooks_out_of_date(lang: str) -> list[Path]:
    """The edition's committed Colab notebooks that differ from what the tables give."""
    return [
        path
        for path, content in generated_notebooks(lang).items()
        if not path.exists() or path.read_bytes() != content
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.i18n", description=__doc__)
    parser.add_argument("command", choices=("status", "template", "check", "notebooks"))
    parser.add_argument("lang", choices=LANGUAGES)
    parser.add_argument("pages", nargs="*", help="e.g. book/01_attention_pooling")
    args = parser.parse_args(argv)
    if args.command == "template":
        for page in args.pages or toc_pages():
            added = template(args.lang, page)
            print(f"{table_path(args.lang, page)}: {added} new texts")
        return 0
    if args.command == "notebooks":  # book/<lang>/*.ipynb, the notebooks Colab opens
        for path in write_notebooks(args.lang):
            print(f"wrote {path}")
        return 0
    results = status(args.lang, verbose=args.command == "check")
    if args.command == "status":
        return 0
    stale = notebooks_out_of_date(args.lang) if all(s.complete for s in results) else []
    for path in stale:
        print(
            f"✗ {path} is not what the tables give: python -m tools.i18n notebooks "
            f"{args.lang}"
        )
    return 0 if all(s.complete for s in results) and not stale else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
