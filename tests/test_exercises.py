"""The exercise checkers: accept right answers, reject typical wrong ones by name.

The wrong answers here are written independently of the library's list of typical
mistakes: a checker passes these tests only if it recognises the mistake from the
learner's *output*.
"""

import pytest
import torch

from course_lib.exercises import EXERCISES, check


def run(exercise_id, fn, capsys):
    passed = check(exercise_id, fn)
    return passed, capsys.readouterr().out


def test_every_exercise_accepts_its_reference(capsys):
    for exercise_id, exercise in EXERCISES.items():
        passed, out = run(exercise_id, exercise.reference, capsys)
        assert passed, out
        assert out.startswith("✓")


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_unattempted_stubs_are_reported_not_raised(exercise_id, capsys):
    def stub(*args):
        raise NotImplementedError

    passed, out = run(exercise_id, stub, capsys)
    assert not passed and "not attempted yet" in out
    if EXERCISES[exercise_id].none_means_unattempted:
        passed, out = run(exercise_id, lambda *args: None, capsys)
        assert not passed and "not attempted yet" in out


def test_a_crash_is_reported_with_the_exception_and_line(capsys):
    def broken(u):
        return u.no_such_method()

    passed, out = run("ex-epanechnikov", broken, capsys)
    assert not passed
    assert "AttributeError" in out and "no_such_method" in out and "case 1" in out


def test_unknown_exercise_and_non_callables(capsys):
    with pytest.raises(ValueError, match="unknown exercise_id 'ex-nope'.*ex-epanechnikov"):
        check("ex-nope", lambda u: u)
    passed, out = run("ex-epanechnikov", 42, capsys)
    assert not passed and "pass the function itself" in out


# --- chapter 1 ------------------------------------------------------------------

def epanechnikov_right(u):
    return torch.where(u.abs() <= 1, 0.75 * (1 - u * u), torch.zeros_like(u))


@pytest.mark.parametrize("wrong, message", [
    (lambda u: 0.75 * (1 - u * u), "negative for |u| > 1"),
    (lambda u: torch.where(u.abs() <= 1, 1 - u * u, torch.zeros_like(u)), "factor 3/4 is missing"),
    (lambda u: torch.where(u.abs() <= 1, 0.75 * (1 - u.abs()), torch.zeros_like(u)), "triangular"),
    (lambda u: epanechnikov_right(u)[..., :1], "has shape"),
])
def test_epanechnikov_checker(wrong, message, capsys):
    assert run("ex-epanechnikov", epanechnikov_right, capsys)[0]
    passed, out = run("ex-epanechnikov", wrong, capsys)
    assert not passed
    assert message in out, out


def nw_right(queries, keys, values, bandwidth):
    distance = queries.unsqueeze(1) - keys.unsqueeze(0)
    kernel = torch.exp(-0.5 * (distance / bandwidth) ** 2)
    weights = kernel / kernel.sum(dim=1, keepdim=True)
    return (weights * values).sum(dim=1), weights


def nw_normalised_over_queries(queries, keys, values, bandwidth):
    distance = queries.unsqueeze(1) - keys.unsqueeze(0)
    kernel = torch.exp(-0.5 * (distance / bandwidth) ** 2)
    weights = kernel / kernel.sum(dim=0, keepdim=True)
    return (weights * values).sum(dim=1), weights


def nw_unnormalised(queries, keys, values, bandwidth):
    distance = queries.unsqueeze(1) - keys.unsqueeze(0)
    weights = torch.exp(-0.5 * (distance / bandwidth) ** 2)
    return (weights * values).sum(dim=1), weights


def nw_times_bandwidth(queries, keys, values, bandwidth):
    distance = queries.unsqueeze(1) - keys.unsqueeze(0)
    weights = torch.softmax(-0.5 * (distance * bandwidth) ** 2, dim=1)
    return (weights * values).sum(dim=1), weights


def nw_weights_only(queries, keys, values, bandwidth):
    return nw_right(queries, keys, values, bandwidth)[1]


@pytest.mark.parametrize("wrong, message", [
    (nw_normalised_over_queries, "normalised over the queries"),
    (nw_unnormalised, "not normalised"),
    (nw_times_bandwidth, "bandwidth multiplies"),
    (nw_weights_only, "should be a tuple of 2"),
])
def test_nadaraya_watson_checker(wrong, message, capsys):
    assert run("ex-nadaraya-watson", nw_right, capsys)[0]
    passed, out = run("ex-nadaraya-watson", wrong, capsys)
    assert not passed
    assert message in out, out
