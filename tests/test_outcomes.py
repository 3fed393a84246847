"""course_lib.outcomes: the chapters' checks, strict and learner runs, and the rule
every committed check meets on the robustness matrix (tools.matrix)."""

import json
import math

import pytest

from course_lib import outcomes, references
from tools import matrix


def recorded(notebook="06_detr", profile="quick", **metrics):
    return {"notebook": notebook, "profile": profile, "metrics": metrics}


def test_margins_say_how_far_a_run_is_on_the_right_side():
    floor = outcomes.at_least("acc", quick=0.9, full=0.5, why="learns")
    assert floor.margin({"acc": 0.95}, "quick") == pytest.approx(0.05)
    assert floor.margin({"acc": 0.6}, "full") == pytest.approx(0.1)
    assert floor.holds({"acc": 0.9}, "quick") and not floor.holds(
        {"acc": 0.89}, "quick"
    )
    assert floor.key == "acc >= 0.9 (quick) / 0.5 (full)"
    assert floor.describe("quick") == "acc >= 0.9"

    behind = outcomes.below("a", "b", why="a is behind")
    assert behind.margin({"a": 0.5, "b": 0.6}, "quick") == pytest.approx(0.1)
    assert not behind.holds({"a": 0.6, "b": 0.6}, "quick")  # strictly below
    ratio = outcomes.below("a", "b", times=1.1, strictly=False, why="within 10 %")
    assert ratio.holds({"a": 1.1, "b": 1.0}, "quick")
    assert ratio.key == "a <= 1.1 × b"
    ahead = outcomes.above("a", "b", plus=0.08, strictly=False, why="well ahead")
    assert ahead.margin({"a": 0.9, "b": 0.8}, "quick") == pytest.approx(0.02)
    assert ahead.key == "a >= b + 0.08"

    near = outcomes.close("a", "b", 1e-3, why="the same")
    assert near.margin({"a": 0.5, "b": 0.5004}, "quick") == pytest.approx(6e-4)
    assert not near.holds({"a": 0.5, "b": 0.502}, "quick")

    element = outcomes.below("r[0]", "r[2]", why="small below large")
    assert element.margin({"r": [0.8, 0.9, 0.95]}, "quick") == pytest.approx(0.15)

    answer = outcomes.equals("outcome", "a", why="pred")
    assert answer.holds({"outcome": "a"}, "quick")
    assert answer.margin({"outcome": "a"}, "quick") is None


def test_a_check_applies_to_its_profiles_only():
    quick_only = outcomes.above("a", "b", profiles=("quick",), why="measured in quick")
    assert quick_only.applies_to("quick") and not quick_only.applies_to("full")
    floor = outcomes.at_least("acc", quick=0.9, why="learns")
    assert not floor.applies_to("full")
    with pytest.raises(ValueError, match="per profile"):
        outcomes.at_least("acc", fast=0.9, why="?")


def test_a_missing_or_non_finite_number_is_an_error_of_the_code():
    floor = outcomes.at_least("acc", quick=0.9, why="learns")
    with pytest.raises(KeyError, match="needs the recorded metric 'acc'"):
        floor.margin({"loss": 0.1}, "quick")
    with pytest.raises(KeyError, match="needs the recorded metric 'acc'"):
        floor.margin({"acc": None}, "quick")  # a section the profile skipped
    with pytest.raises(ValueError, match="diverged"):
        floor.margin({"acc": math.nan}, "quick")


PASSING = dict(
    test_map50=0.93,
    map50_101_points=0.9301,
    map50_all_points=0.935,
    duplicates_after=1,
    duplicates_before=9,
    map50_at_budget_pretrained=0.66,
    map50_at_budget_scratch=0.03,
    outcome_pretrained="a",
    map50_noobject_weight_1=0.58,
    recall_by_size=[0.9, 0.95, 0.97],
    cross_attention_in_box=0.5,
    cross_attention_in_box_uniform=0.05,
)


@pytest.fixture
def detr_checks(monkeypatch):
    """Chapter 6's checks as the tests below expect them, whatever the table says."""
    monkeypatch.setitem(
        outcomes.CHECKS,
        "06_detr",
        [
            outcomes.at_least("test_map50", quick=0.9, full=0.5, why="DETR learns"),
            outcomes.equals("outcome_pretrained", "a", why="pred-pretrained"),
            outcomes.below("recall_by_size[0]", "recall_by_size[2]", why="small"),
        ],
    )


def test_a_learners_run_prints_what_differs_and_carries_on(detr_checks, capsys):
    assert outcomes.check(recorded(**PASSING), strict=False)
    assert "All 3 outcome checks of 06_detr hold" in capsys.readouterr().out
    failing = {**PASSING, "test_map50": 0.85, "outcome_pretrained": "b"}
    assert outcomes.check(recorded(**failing), strict=False) is False
    out = capsys.readouterr().out
    assert out.startswith("2 of 3 outcome checks of 06_detr failed:")
    assert "✗ DETR learns: test_map50 >= 0.9 did not hold (0.85 against 0.9)" in out
    assert "outcome_pretrained == a did not hold (b against a)" in out
    assert "Restart and run all" in out and "COURSE_SEED" in out
    assert all(len(line) <= 78 for line in out.splitlines())


def test_a_strict_run_raises(detr_checks, monkeypatch, capsys):
    failing = {**PASSING, "recall_by_size": [0.97, 0.9, 0.9]}
    with pytest.raises(AssertionError, match=r"recall_by_size\[0\] < recall_by_size"):
        outcomes.check(recorded(**failing), strict=True)
    monkeypatch.setenv("COURSE_STRICT", "1")
    with pytest.raises(AssertionError, match="1 of 3 outcome checks"):
        outcomes.check(recorded(**failing))
    monkeypatch.setenv("COURSE_STRICT", "0")
    assert outcomes.check(recorded(**failing)) is False
    monkeypatch.setenv("COURSE_STRICT", "maybe")
    with pytest.raises(ValueError, match="COURSE_STRICT"):
        outcomes.check(recorded(**failing))


def test_errors_of_the_code_raise_in_a_learners_run_too(detr_checks):
    missing = {k: v for k, v in PASSING.items() if k != "test_map50"}
    with pytest.raises(KeyError, match="test_map50"):
        outcomes.check(recorded(**missing), strict=False)


def test_capped_and_smoke_runs_check_nothing(detr_checks, capsys):
    nonsense = {**PASSING, "test_map50": 0.01}
    assert outcomes.check({**recorded(**nonsense), "smoke": True}, strict=True)
    assert outcomes.check({**recorded(**nonsense), "max_steps": 2}, strict=True)
    assert "capped" in capsys.readouterr().out


def test_the_failure_message_quotes_the_reference_runs(
    detr_checks, monkeypatch, capsys
):
    runs = [
        {"notebook": "06_detr", "profile": "quick", **k, "metrics": PASSING}
        for k in ({"seed": 0}, {"seed": 1})
    ]
    runs[1] = {**runs[1], "metrics": {**PASSING, "test_map50": 0.95}}
    monkeypatch.setattr(references, "reference_runs", lambda: runs)
    outcomes.check(recorded(**{**PASSING, "test_map50": 0.8}), strict=False)
    out = " ".join(capsys.readouterr().out.split())
    assert "in the reference runs its margin was 0.03 to 0.05 over 2 runs" in out


def test_every_notebook_has_checks_with_distinct_keys():
    for stem, checks in outcomes.CHECKS.items():
        keys = [c.key for c in checks]
        assert len(keys) == len(set(keys)), stem
        assert any(c.applies_to("full") for c in checks), f"{stem}: nothing for full"
        assert all(c.why for c in checks)


def test_the_rule_wants_every_run_to_hold_with_a_margin():
    assert outcomes.passes_the_rule([0.05, 0.06, 0.08], [True] * 3)
    assert not outcomes.passes_the_rule([0.001, 0.08], [True, True])  # luck
    assert not outcomes.passes_the_rule([-0.02, 0.08], [False, True])
    assert outcomes.passes_the_rule([None, None], [True, True])
    assert not outcomes.passes_the_rule([None], [False])
    assert not outcomes.passes_the_rule([], [])


def test_every_committed_check_passes_the_rule_on_the_committed_matrix():
    """The heart of the robustness matrix: what a chapter asserts held in every run
    (seeds x kernel sets x threads) with a margin of at least a third of its spread.
    If this fails after a change, run ``python -m tools.matrix report``."""
    problems = []
    for stem in outcomes.CHECKS:
        runs = references.runs_of(stem)
        assert len({(r["seed"], r["cpu_capability"], r["threads"]) for r in runs}) >= 9
        for entry in matrix.margins(stem, runs).values():
            if entry["missing"] or not outcomes.passes_the_rule(
                entry["margins"], entry["holds"]
            ):
                problems.append(f"{stem}: {entry['shown']}")
    assert not problems, problems


def test_the_matrix_tool_stores_one_row_per_run(tmp_path, monkeypatch, capsys, request):
    monkeypatch.setattr(matrix, "OUTPUT", tmp_path / "runs.json")
    monkeypatch.setattr(references, "REFERENCE_FILE", tmp_path / "runs.json")
    references.reference_runs.cache_clear()
    request.addfinalizer(references.reference_runs.cache_clear)
    folder = tmp_path / "records"
    for seed, value in [(0, 0.93), (1, 0.95)]:
        (folder / f"seed-{seed}").mkdir(parents=True)
        record = {
            "notebook": "06_detr",
            "profile": "quick",
            "seed": seed,
            "finished": "2026-12-04T00:00:00+00:00",
            "seconds_since_setup": 300.0,
            "machine": {"torch_threads": 2, "cpu_capability": "AVX2", "torch": "2.x"},
            "metrics": {**PASSING, "test_map50": value},
        }
        (folder / f"seed-{seed}" / "06_detr.json").write_text(json.dumps(record))
    smoke = {**record, "seed": 5, "smoke": True}
    (folder / "smoke.json").write_text(json.dumps({**smoke, "notebook": "06_detr"}))
    assert matrix.main(["import", str(folder)]) == 0
    assert matrix.main(["import", str(folder / "seed-1")]) == 0  # replaces, not adds
    rows = matrix.load()
    assert [(r["seed"], r["metrics"]["test_map50"]) for r in rows] == [
        (0, 0.93),
        (1, 0.95),
    ]
    assert all(r["cpu_capability"] == "AVX2" and r["threads"] == 2 for r in rows)
    # one run per line: a re-measured run is a one-line diff
    lines = (tmp_path / "runs.json").read_text().splitlines()
    assert sum(line.strip().startswith('{"notebook"') for line in lines) == 2
    capsys.readouterr()
    assert matrix.report(["06_detr"]) is False  # 2 runs of 9 checks: some fail the rule
    out = capsys.readouterr().out
    assert "06_detr: 2 reference runs (seeds 0–1; AVX2 kernels; 2 threads)" in out
    assert "test_map50 >= 0.9" in out and "2/2" in out
    assert "FAILS" in out  # e.g. recorded nothing a check needs: counted missing


def test_the_matrix_tool_refuses_unknown_notebooks(capsys):
    with pytest.raises(SystemExit):
        matrix.main(["report", "99_nothing"])
    assert "unknown notebooks" in capsys.readouterr().err


def test_the_standard_matrix_has_seeds_kernels_and_threads(monkeypatch):
    monkeypatch.setattr(matrix, "capability", lambda kernels: "AVX512")
    plan = matrix.standard_matrix()
    assert [p for p in plan if p[1:] == ("native", 2)] == [
        (s, "native", 2) for s in range(5)
    ]
    assert [p for p in plan if p[1] == "avx2"] == [(s, "avx2", 2) for s in range(3)]
    assert (0, "native", 1) in plan and len(plan) == 9
    monkeypatch.setattr(matrix, "capability", lambda kernels: "AVX2")
    assert {p[1] for p in matrix.standard_matrix()} == {"native", "default"}
