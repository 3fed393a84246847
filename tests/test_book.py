"""Hygiene of the book: notebooks, table of contents, setup cells, outcome cells."""

import ast
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from course_lib import outcomes, references
from course_lib.exercises import EXERCISES, PREDICTIONS
from tools import notebooks as nbtools

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


def cells(path, kind=None):
    nb = json.loads(path.read_text())
    return [c for c in nb["cells"] if kind is None or c["cell_type"] == kind]


def text(cell):
    return nbtools.source(cell)


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ holds no notebooks"


def test_toc_and_book_folder_list_the_same_pages():
    listed = toc_files()
    for entry in listed:
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), (
            f"{entry} in _toc.yml does not exist"
        )
    pages = {f"book/{p.stem}" for p in BOOK.iterdir() if p.suffix in (".ipynb", ".md")}
    assert pages == set(listed), (
        f"only in book/: {pages - set(listed)}; only in _toc.yml: {set(listed) - pages}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
class TestNotebook:
    def test_outputs_are_stripped(self, path):
        for cell in cells(path, "code"):
            assert cell["outputs"] == [] and cell["execution_count"] is None, text(
                cell
            )[:80]

    def test_kernel_is_python3(self, path):
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        assert nb["nbformat"] == 4

    def test_colab_badge_on_top(self, path):
        first = cells(path)[0]
        assert first["cell_type"] == "markdown"
        assert text(first) == nbtools.badge_cell_source(path), (
            "run `python -m tools.notebooks set-repo` to regenerate the badge"
        )
        assert "remove-cell" in first["metadata"].get("tags", []), (
            "the book has its own launch button"
        )

    def test_title_follows(self, path):
        second = cells(path)[1]
        assert second["cell_type"] == "markdown" and text(second).startswith("# ")

    def test_first_code_cell_is_the_shared_setup_cell(self, path):
        first_code = cells(path, "code")[0]
        assert text(first_code) == nbtools.setup_cell_source(), (
            "run `python -m tools.notebooks set-repo` to regenerate the setup cell"
        )
        # folded in the book and the PDF, a form in Colab; its output stays visible
        assert "hide-input" in first_code["metadata"].get("tags", [])
        assert first_code["metadata"].get("cellView") == "form"
        assert text(first_code).startswith("# @title")

    def test_hidden_outcome_cell_records_and_checks(self, path):
        """The last cell records the chapter's numbers and checks them with
        course_lib.outcomes (strict in CI, a paragraph in a learner's run); every
        metric a check reads is among those it records."""
        outcome = cells(path, "code")[-1]
        source = text(outcome)
        assert "remove-cell" in outcome["metadata"].get("tags", [])
        assert re.search(
            rf'^recorded = course_lib\.record\(\s*"{path.stem}"', source, re.M
        ), f'the outcome cell must say recorded = course_lib.record("{path.stem}", ...)'
        assert source.rstrip().endswith("course_lib.outcomes.check(recorded);"), (
            "the outcome cell ends by checking what it recorded"
        )
        assert not re.search(r"^\s*assert ", source, re.M), (
            "checks live in course_lib/outcomes.py, where the matrix tool sees them"
        )
        recorded = set(re.findall(r"^\s+(\w+)=", source, re.M))
        for check in outcomes.CHECKS[path.stem]:
            metrics = [check.left]
            if isinstance(check.right, str) and check.op != "==":
                metrics.append(check.right)
            for metric in metrics:
                name = re.match(r"\w+", metric).group(0)
                assert name in recorded, f"{check.key}: {name} is not recorded"

    def test_no_notebook_asserts_a_wall_clock_time(self, path):
        for cell in cells(path, "code"):
            for line in text(cell).splitlines():
                if line.strip().startswith("assert"):
                    assert not re.search(r"seconds|time", line), (
                        f"a slow laptop must not fail a chapter; CI checks times from the records: {line}"
                    )

    def test_never_redefines_a_name_it_imports_from_course_lib(self, path):
        """A notebook calls the library through its modules (``attention.``, ``vit.``); a cell
        that assigns or defines a name imported from course_lib (``def patchify`` after
        ``from course_lib.vit import patchify``, or ``vit = ...``) would break every later
        cell that meant the library's."""
        imported, defined = set(), {}
        for cell in cells(path, "code"):
            tree = ast.parse(text(cell))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "course_lib"
                ):
                    imported |= {alias.asname or alias.name for alias in node.names}
                elif isinstance(node, ast.Import):
                    imported |= {
                        (a.asname or a.name).split(".")[0]
                        for a in node.names
                        if a.name.startswith("course_lib")
                    }
            for node in tree.body:
                targets = []
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    targets = [node.name]
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    for target in getattr(
                        node, "targets", [getattr(node, "target", None)]
                    ):
                        targets += [
                            n.id for n in ast.walk(target) if isinstance(n, ast.Name)
                        ]
                for name in targets:
                    defined.setdefault(name, text(cell)[:60])
        clashes = {name: defined[name] for name in imported & set(defined)}
        assert not clashes, (
            f"{path.name} redefines names it imports from course_lib: {clashes}"
        )

    def test_per_profile_sizes_live_in_one_choose_cell(self, path):
        hp = next(
            (
                text(c)
                for c in cells(path, "code")
                if text(c).startswith("HP = cfg.choose(")
            ),
            None,
        )
        assert hp is not None, (
            "one cell keeps the per-profile sizes: HP = cfg.choose(quick=..., full=...)"
        )
        assert "quick=dict(" in hp and "full=dict(" in hp

    def test_train_seconds_recorded_when_something_is_trained(self, path):
        everything = "".join(text(c) for c in cells(path, "code"))
        if "train.fit(" in everything:
            assert "train_seconds=" in text(cells(path, "code")[-1])

    def test_every_figure_has_a_caption(self, path):
        for cell in cells(path, "code"):
            if "plt.show()" in text(cell):
                assert text(cell).count("plt.show()") == 1, (
                    f"one figure per cell, so each gets its caption: {text(cell)[:80]!r}"
                )
                caption = (
                    cell["metadata"]
                    .get("mystnb", {})
                    .get("figure", {})
                    .get("caption", "")
                )
                assert len(caption) > 20, (
                    f"{path.name}: cell {cell.get('id')} draws a figure without a caption"
                )

    def test_coding_exercises_have_stub_check_and_solution(self, path):
        code = [text(c) for c in cells(path, "code")]
        used = sorted(set(re.findall(r'check\("(ex-[a-z0-9-]+)"', "".join(code))))
        for exercise_id in used:
            assert exercise_id in EXERCISES, (
                f"{exercise_id} is not a registered exercise"
            )
            stubs = [
                c
                for c in cells(path, "code")
                if f'check("{exercise_id}"' in text(c)
                and "NotImplementedError" in text(c)
            ]
            solutions = [
                c
                for c in cells(path, "code")
                if f'assert check("{exercise_id}"' in text(c)
            ]
            assert len(stubs) == 1, (
                f"{exercise_id}: one stub cell that raises NotImplementedError"
            )
            assert len(solutions) == 1, (
                f"{exercise_id}: one solution cell asserting check(...)"
            )
            solution = solutions[0]
            assert "hide-input" in solution["metadata"].get("tags", [])
            assert solution["metadata"].get("cellView") == "form"
            assert text(solution).startswith("# @title")
            labels = "".join(text(c) for c in cells(path, "markdown"))
            assert f":label: {exercise_id}" in labels, (
                f"{exercise_id}: an exercise directive with this label"
            )

    def test_every_exercise_of_the_chapter_is_in_it(self, path):
        code = "".join(text(c) for c in cells(path, "code"))
        mine = {e.id for e in EXERCISES.values() if e.chapter == path.stem}
        assert mine, "no coding exercise registered for this chapter"
        missing = {i for i in mine if f'check("{i}"' not in code}
        assert not missing, f"registered for {path.stem} but not used: {missing}"

    def test_predictions_are_asked_revealed_and_asserted(self, path):
        code = [text(c) for c in cells(path, "code")]
        reveals = [
            (i, m)
            for i, source in enumerate(code)
            for m in re.finditer(
                r'reveal\(\s*"(pred-[a-z0-9-]+)",\s*my_prediction,\s*(\w+),?\s*\)',
                source,
            )
        ]
        assert reveals, "every chapter asks the learner to predict an experiment"
        hidden = code[-1]
        for index, match in reveals:
            prediction_id, outcome = match.groups()
            prediction = PREDICTIONS[prediction_id]
            assert prediction.chapter == path.stem
            asked = [
                j for j, c in enumerate(code) if c.startswith("my_prediction = None")
            ]
            assert asked and min(asked) < index, "the guess cell comes first"
            # and checks the letter where it is set: a typo fails in its own cell
            assert (
                f'course_lib.exercises.guess("{prediction_id}", my_prediction)'
                in code[min(asked)]
            )
            # the outcome checks assert the answer the text explains, recorded by
            # the hidden cell under the variable's own name
            assert f"{outcome}={outcome}," in hidden, f"record {outcome}"
            answers = {
                c.left: c.right for c in outcomes.CHECKS[path.stem] if c.op == "=="
            }
            assert answers.get(outcome) == prediction.answer, (
                f"course_lib/outcomes.py must check {outcome} == {prediction.answer!r}"
            )

    def test_last_visible_cell_reports_the_run_and_the_exercises(self, path):
        visible = [
            c
            for c in cells(path, "code")
            if "remove-cell" not in c["metadata"].get("tags", [])
        ]
        last = text(visible[-1])
        assert f'course_lib.exercises.progress("{path.stem}")' in last
        call = re.search(r"course_lib\.on_track\(\s*\"([^\"]+)\",(.*?)\n\)", last, re.S)
        assert call and call.group(1) == path.stem, "on_track with this notebook"
        metrics = set(re.findall(r"(\w+)=", call.group(2)))
        stored = references.reference_ranges()["notebooks"][path.stem]
        assert metrics == set(stored), (metrics, set(stored))

    def test_the_prose_types_no_number_of_the_reference_runs(self, path):
        """A sentence about the reference runs quotes no number: ranges over the
        robustness matrix are printed from the committed file by
        ``course_lib.references.reading`` (or ``on_track``), so that re-measuring the
        matrix updates the book. Hidden-cell comments quote none either."""
        for cell in cells(path, "markdown"):
            prose = re.sub(r"\$[^$]*\$", "x", text(cell))  # maths is not a reading
            prose = re.sub(r"(section|chapter) [\d.]*\d", "x", prose, flags=re.I)
            for sentence in re.split(r"(?<=[.;:!?])\s+|\n\s*[-*] ", prose):
                if re.search(r"reference run|seeds? \d", sentence, re.I):
                    assert not re.search(r"\d", sentence), (
                        f"{path.stem} types a number of the reference runs: "
                        f"{' '.join(sentence.split())}"
                    )
        hidden = text(cells(path, "code")[-1])
        assert not re.search(r"#.*seeds? \d", hidden), "numbers of seeds in a comment"

    def test_readings_name_metrics_the_chapter_records(self, path):
        """Every course_lib.references.reading of a chapter reads its own notebook's
        runs, by a metric its hidden cell records."""
        hidden = text(cells(path, "code")[-1])
        for cell in cells(path, "code"):
            for call in re.finditer(
                r"references\.reading\(\s*\"(\w+)\"(.*?)\n\)", text(cell), re.S
            ):
                assert call.group(1) == path.stem
                for metric in re.findall(r'm\["(\w+)"\]|^\s+"(\w+)",?$', call.group(2)):
                    name = metric[0] or metric[1]
                    if name.islower() and "_" in name:
                        assert f"{name}=" in hidden, f"{name} is not recorded"

    def test_conceptual_exercises_have_solutions(self, path):
        markdown = "".join(text(c) for c in cells(path, "markdown"))
        labels = re.findall(r"```\{exercise\}\n:label: (\S+)", markdown)
        conceptual = [label for label in labels if label not in EXERCISES]
        assert len(conceptual) >= 2, f"only {len(conceptual)} conceptual exercise(s)"
        for label in conceptual:
            assert "```{solution} " + label in markdown, (
                f"conceptual exercise {label} has no solution"
            )


def test_set_repo_rewrites_setup_cells_and_badges_for_a_fork(tmp_path, monkeypatch):
    fork = tmp_path / "fork"
    (fork / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", fork / "_config.yml")
    shutil.copy(ROOT / "_toc.yml", fork / "_toc.yml")
    for path in NOTEBOOKS:
        shutil.copy(path, fork / "book" / path.name)
    config = (fork / "_config.yml").read_text()
    url = yaml.safe_load(config)["repository"]["url"]
    (fork / "_config.yml").write_text(
        config.replace(url, "https://github.com/someone/my-fork")
    )
    monkeypatch.setattr(nbtools, "ROOT", fork)
    monkeypatch.setattr(nbtools, "BOOK", fork / "book")
    assert nbtools.set_repo() == 0
    for path in (fork / "book").glob("*.ipynb"):
        all_text = path.read_text()
        assert url not in all_text
        setup = text(cells(path, "code")[0])
        assert 'REPOSITORY = "https://github.com/someone/my-fork"' in setup
        branch = nbtools.repository()[1]  # main, or an edition's tag
        assert f"github/someone/my-fork/blob/{branch}/book/{path.name}" in text(
            cells(path)[0]
        )


def test_no_comment_sits_on_a_lone_closing_bracket():
    """A formatter pushes a trailing comment onto the bracket that closes a split
    statement; the comment belongs above the statement (issue 28)."""
    lone = re.compile(r"^\s*[)\]}]+[,;:]?\s*#")
    sources = {p: p.read_text() for p in ROOT.glob("course_lib/**/*.py")}
    sources |= {p: p.read_text() for p in ROOT.glob("tools/*.py")}
    for path in NOTEBOOKS:
        sources[path] = "\n".join(text(c) for c in cells(path, "code"))
    found = [
        f"{path.name}: {line.strip()}"
        for path, source in sources.items()
        for line in source.splitlines()
        if lone.match(line)
    ]
    assert not found, found
