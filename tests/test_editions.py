"""Editions: ``tools.notebooks pin REF`` makes every notebook install course_lib at REF."""

import shutil
from pathlib import Path

import pytest

from tools import notebooks as nbt

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def book_copy(tmp_path, monkeypatch) -> Path:
    """_config.yml, _toc.yml (the list of notebooks), the translation tables,
    book/*.ipynb and the Chinese edition's book/zh/ copied to tmp_path, which
    tools.notebooks edits."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "i18n", tmp_path / "i18n")  # the editions' Colab notebooks
    (tmp_path / "book").mkdir()
    shutil.copytree(ROOT / "book" / "zh", tmp_path / "book" / "zh")
    for path in (ROOT / "book").glob("*.ipynb"):
        shutil.copy2(path, tmp_path / "book" / path.name)
    monkeypatch.setattr(nbt, "ROOT", tmp_path)
    monkeypatch.setattr(nbt, "BOOK", tmp_path / "book")
    return tmp_path


def test_pin_installs_the_tag_everywhere_and_pinning_back_undoes_it(book_copy, capsys):
    before = {p: p.read_bytes() for p in book_copy.rglob("*") if p.is_file()}
    # the committed book installs main (an edition's commit: its tag)
    committed = nbt.repository()[1]
    assert nbt.main(["check-pinned", committed]) == 0
    other = "v1.3" if committed == "v1.2" else "v1.2"
    assert nbt.main(["pin", other]) == 0
    config = (book_copy / "_config.yml").read_text()
    assert (
        f"  branch: {other}\n" in config
        and "# The one place the repository URL" in config
    )
    url = "https://github.com/attention-hands-on/attention-hands-on"
    for path in sorted((book_copy / "book").glob("*.ipynb")):
        nb = nbt.load(path)
        setup = nbt.source(nbt.first_code_cell(nb))
        assert f'REPOSITORY = "{url}"\nBRANCH = "{other}"\n' in setup, path.name
        assert 'url = f"git+{REPOSITORY}@{BRANCH}"' in setup
        badge = nbt.source(nb["cells"][0])
        assert f"/blob/{other}/book/{path.name})" in badge, path.name
        assert f"/blob/{committed}/" not in badge
    for path in sorted((book_copy / "book" / "zh").glob("*.ipynb")):  # 中文版
        nb = nbt.load(path)
        assert f'BRANCH = "{other}"\n' in nbt.source(nbt.first_code_cell(nb))
        assert f"/blob/{other}/book/zh/{path.name})" in nbt.source(nb["cells"][0])
    assert nbt.main(["check-pinned", other]) == 0
    assert nbt.main(["check-pinned", committed]) == 1
    assert f"not pinned to {committed}" in capsys.readouterr().out
    # back to what was committed: byte for byte the committed files
    assert nbt.main(["pin", committed]) == 0
    after = {p: p.read_bytes() for p in book_copy.rglob("*") if p.is_file()}
    assert after == before


def test_a_notebook_left_behind_is_caught(book_copy, capsys):
    nbt.main(["pin", "v2.0"])
    path = sorted((book_copy / "book").glob("*.ipynb"))[0]
    nb = nbt.load(path)
    setup = nbt.first_code_cell(nb)
    nbt._set_source(
        setup, nbt.source(setup).replace('BRANCH = "v2.0"', 'BRANCH = "main"')
    )
    nbt.save(path, nb)
    assert nbt.main(["check-pinned", "v2.0"]) == 1
    assert (
        f"{path.name}: the setup cell does not install 'v2.0'"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize("ref", ["", "-rf", "v1.0; rm", "/etc"])
def test_pin_refuses_what_is_not_a_ref(book_copy, ref):
    with pytest.raises(SystemExit, match="ref must be a branch or tag name"):
        nbt.main(["pin", ref])
