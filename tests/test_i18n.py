"""The translation tables of tools.i18n: keys, blocks, missing and stale entries."""

import json

import pytest

from tools import i18n


def test_the_key_ignores_line_ends_trailing_spaces_and_unicode_forms():
    text = "## 1.4 Nadaraya–Watson\n\nThe query café."
    assert i18n.key(text) == i18n.key("\n" + text.replace("\n", "  \r\n") + "\n\n")
    assert i18n.key(text) == i18n.key(text.replace("é", "e\u0301"))  # NFD -> NFC
    assert i18n.key(text) != i18n.key(text.replace("query", "key"))
    assert len(i18n.key(text)) == i18n.KEY_LENGTH


def test_a_page_is_cut_into_blocks_and_a_fenced_block_stays_whole():
    page = (
        "# Title\n\nA paragraph\non two lines.\n\n"
        "```{bibliography}\n:all:\n\nstill inside\n```\n\n"
        "$$\nx\n\ny\n$$\n\n- a list\n- of two"
    )
    assert i18n.markdown_blocks(page) == [
        "# Title",
        "A paragraph\non two lines.",
        "```{bibliography}\n:all:\n\nstill inside\n```",
        "$$\nx\n\ny\n$$",
        "- a list\n- of two",
    ]


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A book of one notebook and one page, and tools.i18n pointed at it."""
    (tmp_path / "book").mkdir()
    cells = [
        {"cell_type": "markdown", "source": ["# 1. Pooling\n", "\n", "Attention."]},
        {"cell_type": "code", "source": ["x = 1  # code is not translated"]},
        {"cell_type": "markdown", "source": ["The weights sum to one."]},
    ]
    (tmp_path / "book" / "01_pooling.ipynb").write_text(json.dumps({"cells": cells}))
    (tmp_path / "book" / "glossary.md").write_text("# Glossary\n\nA term.\n")
    monkeypatch.setattr(i18n, "toc_pages", lambda: ["book/01_pooling", "book/glossary"])
    return tmp_path


def translate_all(book, page, translations):
    entries = i18n.load_table("zh", page, book)
    for entry in entries:
        entry["zh"] = translations[entry["en"]]
    i18n.save_table("zh", page, entries, book)


def test_template_then_translation_then_an_english_edit_makes_it_stale(book):
    assert i18n.template("zh", "book/01_pooling", book) == 2
    status = i18n.page_status("zh", "book/01_pooling", book)
    assert (status.translated, len(status.missing)) == (0, 2)  # English only: missing
    translate_all(
        book,
        "book/01_pooling",
        {
            "# 1. Pooling\n\nAttention.": "# 1. 汇聚\n\n注意力。",
            "The weights sum to one.": None,
        },
    )
    assert i18n.page_status("zh", "book/01_pooling", book).complete
    assert i18n.translate("zh", "book/01_pooling", "The weights sum to one.", book) == (
        "The weights sum to one."  # null: the English, on purpose
    )
    assert i18n.translate(
        "zh", "book/01_pooling", "# 1. Pooling\n\nAttention.", book
    ) == ("# 1. 汇聚\n\n注意力。")
    # the English is edited: the old entry is stale, the new text missing
    notebook = book / "book" / "01_pooling.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"][2]["source"] = ["The weights always sum to one."]
    notebook.write_text(json.dumps(nb))
    status = i18n.page_status("zh", "book/01_pooling", book)
    assert status.missing == ["The weights always sum to one."]
    assert [e["en"] for e in status.stale] == ["The weights sum to one."]
    diff = i18n.stale_diff(status.stale[0], i18n.english_texts(notebook))
    assert (
        "-The weights sum to one." in diff and "+The weights always sum to one." in diff
    )
    # template adds the new text and keeps the stale translation after it
    assert i18n.template("zh", "book/01_pooling", book) == 1
    keys = [e["key"] for e in i18n.load_table("zh", "book/01_pooling", book)]
    assert keys[-1] == status.stale[0]["key"]


def test_check_fails_naming_the_page_until_every_page_is_translated(
    book, capsys, monkeypatch
):
    monkeypatch.setattr(i18n, "ROOT", book)
    assert i18n.main(["template", "zh"]) == 0
    assert i18n.main(["check", "zh"]) == 1
    out = capsys.readouterr().out
    assert "✗ book/01_pooling: 0/2 translated, 2 missing" in out
    assert "missing [" in out
    translate_all(
        book,
        "book/01_pooling",
        {
            "# 1. Pooling\n\nAttention.": "# 1. 汇聚\n\n注意力。",
            "The weights sum to one.": "权重之和为一。",
        },
    )
    translate_all(
        book, "book/glossary", {"# Glossary": "# 术语表", "A term.": "一个术语。"}
    )
    capsys.readouterr()
    assert i18n.main(["check", "zh"]) == 1  # the Colab notebooks are not written yet
    assert (
        "book/zh/01_pooling.ipynb is not what the tables give"
        in capsys.readouterr().out
    )
    assert i18n.main(["notebooks", "zh"]) == 0
    assert i18n.main(["check", "zh"]) == 0
    colab = json.loads((book / "book" / "zh" / "01_pooling.ipynb").read_text())
    assert [c["source"] for c in colab["cells"]] == [
        ["# 1. 汇聚\n", "\n", "注意力。"],
        ["x = 1  # code is not translated"],
        ["权重之和为一。"],
    ]
    (book / "book" / "zh" / "01_pooling.ipynb").write_text("{}")  # edited by hand
    assert i18n.main(["check", "zh"]) == 1


def test_a_table_entry_without_its_english_is_an_error(book):
    path = i18n.table_path("zh", "book/glossary", book)
    path.parent.mkdir(parents=True)
    path.write_text("- key: abc\n  zh: 术语\n")
    with pytest.raises(ValueError, match="needs a key and en"):
        i18n.load_table("zh", "book/glossary", book)


def test_the_glossary_gives_each_term_its_english_names_and_translations():
    terms = dict((tuple(en), tuple(zh)) for en, zh in i18n.glossary_terms("zh"))
    assert terms[("attention pooling",)] == ("注意力汇聚",)
    assert terms[("positive sample",)] == ("正样本",)
    assert terms[("negative sample",)] == ("负样本",)
    assert terms[("encoder",)] == ("编码器",) and terms[("value",)] == ("值",)
    assert terms[("volitional cue",)] == ("自主性提示",)
    assert terms[("intersection over union", "IoU")] == ("交并比",)
    assert terms[("instance discrimination",)] == ("实例判别", "个体判别")


def test_a_translation_without_the_glossary_term_is_named(monkeypatch):
    entry = {
        "key": "k",
        "en": "The **attention pooling** of `x`, $a$.",
        "zh": "x 的注意力池化。",
    }
    monkeypatch.setattr(i18n, "toc_pages", lambda: ["book/01_pooling"])
    monkeypatch.setattr(i18n, "load_table", lambda lang, page: [entry])
    assert i18n.glossary_misses("zh") == [
        "book/01_pooling [k]: 'attention pooling' without 注意力汇聚"
    ]
    entry["zh"] = "`x` 的注意力汇聚，$a$。"
    assert i18n.glossary_misses("zh") == []
    entry.update(en="Only code: `keys`, `attention pooling`.", zh="只有代码。")
    assert i18n.glossary_misses("zh") == []


def test_every_page_has_its_chinese_and_uses_the_glossary(capsys):
    """The committed edition: every text of every page translated, nothing stale, the
    Colab notebooks (book/zh/) what the tables give, the glossary's terms used. After an
    English edit: python -m tools.i18n check zh shows what to update."""
    assert i18n.main(["check", "zh"]) == 0, capsys.readouterr().out
    assert i18n.glossary_misses("zh") == []


def test_an_english_edit_fails_the_check_naming_page_and_change(
    tmp_path, monkeypatch, capsys
):
    """One English cell of the real book edited: check fails, naming the page, with the
    diff of the translated snapshot against today's English."""
    import shutil

    for name in ("_toc.yml", "_config.yml"):
        shutil.copy2(i18n.ROOT / name, tmp_path / name)
    shutil.copytree(i18n.ROOT / "book", tmp_path / "book")
    shutil.copytree(i18n.ROOT / "i18n", tmp_path / "i18n")
    monkeypatch.setattr(i18n, "ROOT", tmp_path)
    notebook = tmp_path / "book" / "02_scoring_functions.ipynb"
    nb = json.loads(notebook.read_text())
    cell = next(
        c for c in nb["cells"] if c["cell_type"] == "markdown" and len(c["source"]) > 3
    )
    cell["source"][1] = cell["source"][1].rstrip("\n") + " (edited)\n"
    notebook.write_text(json.dumps(nb))
    assert i18n.main(["check", "zh"]) == 1
    out = capsys.readouterr().out
    assert "✗ book/02_scoring_functions:" in out and "1 missing, 1 stale" in out
    assert "+" + cell["source"][1].rstrip("\n") in out  # the diff shows the edit
