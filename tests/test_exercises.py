"""The exercise checkers: accept right answers, reject typical wrong ones by name.

The wrong answers here are written independently of the library's list of typical
mistakes: a checker passes these tests only if it recognises the mistake from the
learner's *output*.
"""

import math
import random
import time

import numpy as np
import pytest
import torch

from course_lib.exercises import (
    EXERCISES,
    PREDICTIONS,
    Prediction,
    check,
    predict,
    progress,
    reveal,
)
from course_lib.exercises._core import RESULTS


def run(exercise_id, fn, capsys):
    passed = check(exercise_id, fn)
    return passed, capsys.readouterr().out


def test_every_exercise_accepts_its_reference(capsys):
    for exercise_id, exercise in EXERCISES.items():
        passed, out = run(exercise_id, exercise.reference, capsys)
        assert passed, out
        assert out.startswith("✓")


@pytest.fixture(autouse=True)
def fresh_results():
    """check() and reveal() remember results for progress(); tests start afresh."""
    saved = dict(RESULTS)
    RESULTS.clear()
    yield
    RESULTS.clear()
    RESULTS.update(saved)


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_only_the_untouched_stub_is_not_attempted(exercise_id, capsys):
    def stub(*args):
        raise NotImplementedError

    passed, out = run(exercise_id, stub, capsys)
    assert not passed and "not attempted yet" in out


def test_a_function_that_returns_none_is_an_attempt(capsys):
    passed, out = run("ex-nadaraya-watson", lambda q, k, v, h: None, capsys)
    assert not passed and "not attempted" not in out
    assert "0 of 3 cases right" in out and "return" in out


def test_a_partial_answer_says_which_cases_passed(capsys):
    def only_1d(u):
        if u.dim() > 1:
            raise NotImplementedError("only 1-D input for now")
        return 0.75 * (1 - u**2).clamp(min=0)

    passed, out = run("ex-epanechnikov", only_1d, capsys)
    assert not passed and "not attempted" not in out
    assert "1 of 2 cases right" in out
    assert "Case 2 (a (3, 5) tensor of random u)" in out
    assert "only 1-D input for now" in out


def test_a_crash_is_reported_with_the_exception_and_the_learners_line(capsys):
    def broken(u):
        return u.no_such_method()

    passed, out = run("ex-epanechnikov", broken, capsys)
    assert not passed
    assert "AttributeError" in out and "return u.no_such_method()" in out
    assert "Case 1" in out


def test_a_wrong_signature_is_the_learners_error_not_the_checkers(capsys):
    passed, out = run("ex-epanechnikov", lambda u, h: u, capsys)
    assert not passed
    assert "(u, h) cannot take 1 arguments" in out
    assert "epanechnikov_kernel(u)" in out  # the expected signature
    assert "_core.py" not in out and "exercise.run" not in out


def test_an_error_is_put_down_to_the_typical_mistake_that_makes_it(capsys):
    def minus_a_million(scores, mask):  # the classic fill, fine in float32
        weights = torch.softmax(scores.masked_fill(~mask, -1e6), dim=-1)
        return weights * mask

    passed, out = run("ex-masked-softmax", minus_a_million, capsys)
    assert not passed
    assert "3 of 4 cases right" in out and "float16" in out
    assert "torch.finfo(scores.dtype).min" in out and "RuntimeError" in out


WEIRD_RETURNS = {
    "a tuple holding None": lambda *a: (None, torch.zeros(2)),
    "a dict": lambda *a: {"output": torch.zeros(2)},
    "a meta tensor": lambda *a: torch.empty(3, 5, device="meta"),
    "a numpy array": lambda *a: np.zeros((3, 5)),
    "a complex tensor": lambda *a: torch.zeros(3, 5, dtype=torch.complex64),
    "an int64 tensor": lambda *a: torch.zeros(3, 5, dtype=torch.long),
    "a string": lambda *a: "weights",
    "a list of lists": lambda *a: [[0.0]],
    "an object whose comparison raises": lambda *a: Unequal(),
}


class Unequal:
    def __eq__(self, other):
        raise RuntimeError("cannot compare")

    __hash__ = None


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_check_never_raises_on_what_a_function_returns(exercise_id, capsys):
    for name, weird in WEIRD_RETURNS.items():
        passed, out = run(exercise_id, weird, capsys)
        assert not passed, name
        assert out.startswith("✗"), (name, out)


def test_the_output_dtype_is_named(capsys):
    passed, out = run("ex-epanechnikov", lambda u: (u > 0).long(), capsys)
    assert not passed and "torch.int64" in out


def test_an_endless_loop_is_stopped_after_the_time_limit(capsys):
    def endless(u):
        while True:
            pass

    start = time.perf_counter()
    passed = check("ex-epanechnikov", endless, time_limit=0.3)
    out = capsys.readouterr().out
    assert not passed and "took longer than 0.3 s" in out and "time_limit" in out
    assert time.perf_counter() - start < 5
    # the alarm is off again: a slow computation afterwards is not interrupted
    time.sleep(0.5)


def test_check_leaves_the_callers_random_state_alone(capsys):
    def draws():
        return torch.rand(3), np.random.rand(3), random.random()

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    expected = draws()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)

    def uses_randomness(u):
        torch.rand(5), np.random.rand(5), random.random()
        return 0.75 * (1 - u**2).clamp(min=0)

    assert check("ex-epanechnikov", uses_randomness)
    got = draws()
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_progress_lists_this_chapters_results(capsys):
    check("ex-epanechnikov", EXERCISES["ex-epanechnikov"].reference)
    check("ex-nadaraya-watson", lambda q, k, v, h: None)
    capsys.readouterr()
    status = progress("01_attention_pooling")
    out = capsys.readouterr().out
    assert status["ex-epanechnikov"] == "passed"
    assert status["ex-nadaraya-watson"] == "failed"
    assert "✓ ex-epanechnikov" in out and "✗ ex-nadaraya-watson" in out
    assert "ex-sdpa" not in status  # another chapter
    assert all(
        s == "not attempted yet"
        for i, s in status.items()
        if i not in ("ex-epanechnikov", "ex-nadaraya-watson")
    )
    with pytest.raises(ValueError, match="chapter must be one of"):
        progress("01_pooling")


@pytest.fixture
def prediction():
    p = predict(
        Prediction(
            id="pred-test",
            chapter="01_attention_pooling",
            question="?",
            choices={"a": "up", "b": "down"},
            answer="b",
            why="because.",
        )
    )
    yield p
    del PREDICTIONS[p.id]


def test_reveal_compares_the_prediction_with_the_measured_outcome(prediction, capsys):
    assert reveal("pred-test", "b", "b")
    out = capsys.readouterr().out
    assert out.startswith("✓") and "(b) down" in out and "because." in out
    assert not reveal("pred-test", "A", "b")
    out = capsys.readouterr().out
    assert out.startswith("✗") and "you predicted (a) up" in out
    assert not reveal("pred-test", None, "b")
    assert "no prediction made" in capsys.readouterr().out
    # a run that does not show what the text explains says so instead of explaining
    reveal("pred-test", "a", "a")
    out = capsys.readouterr().out
    assert "because." not in out and "differs from what the text explains" in out
    assert RESULTS["pred-test"] == "passed"


def test_reveal_refuses_letters_that_are_not_choices(prediction):
    with pytest.raises(ValueError, match="my_prediction must be one of"):
        reveal("pred-test", "c", "b")
    with pytest.raises(ValueError, match="outcome must be one of"):
        reveal("pred-test", "a", "z")
    with pytest.raises(ValueError, match="unknown prediction_id"):
        reveal("pred-nope", "a", "a")
    with pytest.raises(ValueError, match="start with 'pred-'"):
        predict(Prediction("guess", "01_attention_pooling", "?", {"a": ""}, "a", ""))


def test_every_prediction_has_an_answer_among_its_choices():
    for p in PREDICTIONS.values():
        assert p.answer in p.choices and p.why and p.question


def test_unknown_exercise_and_non_callables(capsys):
    with pytest.raises(
        ValueError, match="unknown exercise_id 'ex-nope'.*ex-epanechnikov"
    ):
        check("ex-nope", lambda u: u)
    passed, out = run("ex-epanechnikov", 42, capsys)
    assert not passed and "pass the function itself" in out


# --- chapter 1 ------------------------------------------------------------------


def epanechnikov_right(u):
    return torch.where(u.abs() <= 1, 0.75 * (1 - u * u), torch.zeros_like(u))


EPANECHNIKOV_MISTAKES = [
    (lambda u: 0.75 * (1 - u * u), "negative for |u| > 1"),
    (
        lambda u: torch.where(u.abs() <= 1, 1 - u * u, torch.zeros_like(u)),
        "factor 3/4 is missing",
    ),
    (
        lambda u: torch.where(u.abs() <= 1, 0.75 * (1 - u.abs()), torch.zeros_like(u)),
        "triangular",
    ),
    (lambda u: epanechnikov_right(u)[..., :1], "has shape"),
]


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


NADARAYA_WATSON_MISTAKES = [
    (nw_normalised_over_queries, "normalised over the queries"),
    (nw_unnormalised, "not normalised"),
    (nw_times_bandwidth, "bandwidth multiplies"),
    (nw_weights_only, "should be a tuple of 2"),
]


# --- chapter 2 ------------------------------------------------------------------


def masked_softmax_right(scores, mask):
    filled = torch.where(
        mask, scores, torch.full_like(scores, torch.finfo(scores.dtype).min)
    )
    weights = torch.exp(filled - filled.amax(-1, keepdim=True)) * mask
    return weights / weights.sum(-1, keepdim=True).clamp_min(
        torch.finfo(scores.dtype).tiny
    )


MASKED_SOFTMAX_MISTAKES = [
    (
        lambda s, m: masked_softmax_right(
            s.transpose(-2, -1), m.expand_as(s).transpose(-2, -1)
        ).transpose(-2, -1),
        "over the queries",
    ),
    (lambda s, m: torch.softmax(s, -1) * m, "applied after the softmax"),
    (lambda s, m: torch.softmax(s.masked_fill(~m, -float("inf")), -1), "gives NaN"),
    (lambda s, m: torch.softmax(s.masked_fill(~m, -1e4), -1), "uniform weights"),
    (lambda s, m: masked_softmax_right(s, ~m), "inverted"),
    (lambda s, m: masked_softmax_right(s, m)[..., 0], "has shape"),
]


def sdpa_right(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    weights = masked_softmax_right(
        scores,
        torch.ones_like(scores, dtype=torch.bool)
        if mask is None
        else mask.expand_as(scores),
    )
    return weights @ v, weights


def sdpa_scaled_by(scale):
    def wrong(q, k, v, mask=None):
        scores = q @ k.transpose(-1, -2) * scale(q.shape[-1])
        m = (
            torch.ones_like(scores, dtype=torch.bool)
            if mask is None
            else mask.expand_as(scores)
        )
        weights = masked_softmax_right(scores, m)
        return weights @ v, weights

    return wrong


def sdpa_mask_after(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights


def sdpa_nan_rows(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    return weights @ v, weights


def sdpa_transposed_weights(q, k, v, mask=None):
    output, weights = sdpa_right(q, k, v, mask)
    return output, weights.transpose(-1, -2)


SDPA_MISTAKES = [
    (sdpa_scaled_by(lambda d: 1.0), "not scaled"),
    (sdpa_scaled_by(lambda d: 1.0 / d), "divided by d"),
    (sdpa_mask_after, "applied after the softmax"),
    (sdpa_nan_rows, "gives NaN"),
    (sdpa_transposed_weights, "weights has shape"),
]


# --- chapter 3 ------------------------------------------------------------------


def split_heads_right(x, num_heads):
    b, t, d = x.shape
    return torch.stack(x.split(d // num_heads, dim=-1), dim=1)  # (B, H, T, D/H)


SPLIT_HEADS_MISTAKES = [
    (
        lambda x, h: x.reshape(x.shape[0], h, x.shape[1], x.shape[2] // h),
        "plain reshape",
    ),
    (lambda x, h: torch.stack([x[..., i::h] for i in range(h)], dim=1), "interleaved"),
    (
        lambda x, h: split_heads_right(x, h).transpose(1, 2),
        "transpose the token and head",
    ),
]


def pe_right(num_positions, d_model):
    pe = torch.zeros(num_positions, d_model)
    for p in range(num_positions):
        for i in range(d_model // 2):
            pe[p, 2 * i] = math.sin(p / 10000 ** (2 * i / d_model))
            pe[p, 2 * i + 1] = math.cos(p / 10000 ** (2 * i / d_model))
    return pe


def pe_variant(angle_fn, even=math.sin, odd=math.cos):
    def wrong(num_positions, d_model):
        pe = torch.zeros(num_positions, d_model)
        for p in range(num_positions):
            for i in range(d_model // 2):
                pe[p, 2 * i], pe[p, 2 * i + 1] = (
                    even(angle_fn(p, i, d_model)),
                    odd(angle_fn(p, i, d_model)),
                )
        return pe

    return wrong


POSITIONAL_ENCODING_MISTAKES = [
    (
        pe_variant(lambda p, i, d: p / 10000 ** (2 * i / d), math.cos, math.sin),
        "swapped",
    ),
    (pe_variant(lambda p, i, d: p / 10000 ** (i / d)), "off by a factor of 2"),
    (pe_variant(lambda p, i, d: p / 10000 ** (4 * i / d)), "off by a factor of 2"),
    (lambda n, d: pe_right(n, d).T, "has shape"),
]


# --- chapter 4 ------------------------------------------------------------------


def causal_right(size):
    return torch.tensor([[j <= i for j in range(size)] for i in range(size)])


CAUSAL_MASK_MISTAKES = [
    (lambda n: causal_right(n).T.contiguous(), "transposed"),
    (
        lambda n: torch.tensor([[j < i for j in range(n)] for i in range(n)]),
        "diagonal is excluded",
    ),
    (lambda n: ~causal_right(n), "inverted"),
    (lambda n: causal_right(n).float(), "dtype"),
]


def padding_right(lengths, max_len):
    return torch.tensor(
        [[position < int(length) for position in range(max_len)] for length in lengths]
    )


PADDING_MASK_MISTAKES = [
    (
        lambda l, m: torch.tensor([[p <= int(n) for p in range(m)] for n in l]),
        "off by one",
    ),
    (lambda l, m: ~padding_right(l, m), "inverted"),
    (lambda l, m: padding_right(l, m).T, "transposed"),
]


# --- chapter 5 ------------------------------------------------------------------


def patchify_right(images, p):
    b, c, h, w = images.shape
    if h % p or w % p:
        raise ValueError("H and W must be divisible by P")
    patches = []
    for row in range(h // p):
        for col in range(w // p):
            block = images[
                :, :, row * p : (row + 1) * p, col * p : (col + 1) * p
            ]  # (B, C, P, P)
            patches.append(block.permute(0, 2, 3, 1).reshape(b, -1))  # (P, P, C) order
    return torch.stack(patches, dim=1)


def patchify_column_major(images, p):
    b, c, h, w = images.shape
    patches = [
        images[:, :, r * p : (r + 1) * p, q * p : (q + 1) * p]
        .permute(0, 2, 3, 1)
        .reshape(b, -1)
        for q in range(w // p)
        for r in range(h // p)
    ]
    return torch.stack(patches, dim=1)


def patchify_channels_first(images, p):
    b, c, h, w = images.shape
    patches = [
        images[:, :, r * p : (r + 1) * p, q * p : (q + 1) * p].reshape(b, -1)
        for r in range(h // p)
        for q in range(w // p)
    ]
    return torch.stack(patches, dim=1)


def patchify_cropping(images, p):
    h, w = images.shape[-2:]
    return patchify_right(images[..., : h // p * p, : w // p * p], p)


PATCHIFY_MISTAKES = [
    (patchify_column_major, "column-major"),
    (patchify_channels_first, "channels are flattened in the wrong place"),
    (patchify_cropping, "silently cropped"),
    (lambda images, p: patchify_right(images, p).transpose(1, 2), "has shape"),
]


# --- chapter 6 ------------------------------------------------------------------


def cxcywh_right(b):
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], dim=-1)


BOX_CONVERT_MISTAKES = [
    (
        lambda b: torch.cat([b[..., :2] - b[..., 2:], b[..., :2] + b[..., 2:]], -1),
        "not halved",
    ),
    (
        lambda b: torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:]], -1),
        "halved in the wrong place",
    ),
    (
        lambda b: torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., 2:]], -1),
        "(x1, y1, w, h)",
    ),
]


def giou_right(a, b):
    out = torch.zeros(len(a), len(b))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a.tolist()):
        for j, (bx1, by1, bx2, by2) in enumerate(b.tolist()):
            inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(
                0, min(ay2, by2) - max(ay1, by1)
            )
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
            out[i, j] = inter / union - (hull - union) / hull
    return out


def iou_only(a, b):
    return torch.tensor(
        [
            [
                max(0, min(ax2, bx2) - max(ax1, bx1))
                * max(0, min(ay2, by2) - max(ay1, by1))
                / (
                    (ax2 - ax1) * (ay2 - ay1)
                    + (bx2 - bx1) * (by2 - by1)
                    - max(0, min(ax2, bx2) - max(ax1, bx1))
                    * max(0, min(ay2, by2) - max(ay1, by1))
                )
                for bx1, by1, bx2, by2 in b.tolist()
            ]
            for ax1, ay1, ax2, ay2 in a.tolist()
        ]
    )


GIOU_MISTAKES = [
    (iou_only, "plain IoU"),
    (lambda a, b: giou_right(b, a), "transposed"),
]


def greedy(cost):
    cost = cost.clone()
    pairs = []
    for _ in range(min(cost.shape)):
        r, c = divmod(int(cost.argmin()), cost.shape[1])
        pairs.append((r, c))
        cost[r], cost[:, c] = float("inf"), float("inf")
    pairs.sort()
    return torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])


def scipy_match(cost):
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost.numpy())
    return torch.tensor(rows), torch.tensor(cols)


HUNGARIAN_MISTAKES = [
    (greedy, "greedy"),
    (lambda cost: (torch.tensor([0, 0]), torch.tensor([0, 1])), "one-to-one"),
    (lambda cost: scipy_match(cost)[0][:1], "tuple (rows, cols)"),
]


# --- chapter 7 ------------------------------------------------------------------


def infonce_right(q, k, queue, temperature):
    q, k = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    keys = torch.cat(
        [k[:, None, :], queue[None].expand(len(q), -1, -1)], dim=1
    )  # (B, 1 + K, D)
    return torch.einsum("bd,bjd->bj", q, keys) / temperature


def infonce_unnormalised(q, k, queue, temperature):
    return (
        torch.cat([torch.einsum("bd,bd->b", q, k)[:, None], q @ queue.T], 1)
        / temperature
    )


def infonce_positive_last(q, k, queue, temperature):
    logits = infonce_right(q, k, queue, temperature)
    return torch.cat([logits[:, 1:], logits[:, :1]], 1)


INFONCE_MISTAKES = [
    (infonce_unnormalised, "not L2-normalised"),
    (infonce_positive_last, "last column"),
    (lambda q, k, queue, t: infonce_right(q, k, queue, t) * t * t, "multiplies"),
]


def momentum_right(encoder_q, encoder_k, m):
    with torch.no_grad():
        for q, k in zip(encoder_q.parameters(), encoder_k.parameters()):
            k.copy_(m * k + (1 - m) * q)


def momentum_rebinding(encoder_q, encoder_k, m):
    for q, k in zip(encoder_q.parameters(), encoder_k.parameters()):
        k = m * k + (1 - m) * q  # noqa: F841 -- rebinds the loop variable, changes nothing


def momentum_swapped(encoder_q, encoder_k, m):
    momentum_right(encoder_q, encoder_k, 1 - m)


MOMENTUM_UPDATE_MISTAKES = [
    (momentum_swapped, "swapped"),
    (momentum_rebinding, "did not change"),
]

# --- every checker against its right answer and its typical mistakes ------------

CASES = [
    *[
        ("ex-epanechnikov", epanechnikov_right, wrong, message)
        for wrong, message in EPANECHNIKOV_MISTAKES
    ],
    *[
        ("ex-nadaraya-watson", nw_right, wrong, message)
        for wrong, message in NADARAYA_WATSON_MISTAKES
    ],
    *[
        ("ex-masked-softmax", masked_softmax_right, wrong, message)
        for wrong, message in MASKED_SOFTMAX_MISTAKES
    ],
    *[("ex-sdpa", sdpa_right, wrong, message) for wrong, message in SDPA_MISTAKES],
    *[
        ("ex-split-heads", split_heads_right, wrong, message)
        for wrong, message in SPLIT_HEADS_MISTAKES
    ],
    *[
        ("ex-positional-encoding", pe_right, wrong, message)
        for wrong, message in POSITIONAL_ENCODING_MISTAKES
    ],
    *[
        ("ex-causal-mask", causal_right, wrong, message)
        for wrong, message in CAUSAL_MASK_MISTAKES
    ],
    *[
        ("ex-padding-mask", padding_right, wrong, message)
        for wrong, message in PADDING_MASK_MISTAKES
    ],
    *[
        ("ex-patchify", patchify_right, wrong, message)
        for wrong, message in PATCHIFY_MISTAKES
    ],
    *[
        ("ex-box-convert", cxcywh_right, wrong, message)
        for wrong, message in BOX_CONVERT_MISTAKES
    ],
    *[("ex-giou", giou_right, wrong, message) for wrong, message in GIOU_MISTAKES],
    *[
        ("ex-hungarian", scipy_match, wrong, message)
        for wrong, message in HUNGARIAN_MISTAKES
    ],
    *[
        ("ex-infonce", infonce_right, wrong, message)
        for wrong, message in INFONCE_MISTAKES
    ],
    *[
        ("ex-momentum-update", momentum_right, wrong, message)
        for wrong, message in MOMENTUM_UPDATE_MISTAKES
    ],
]


@pytest.mark.parametrize(
    "exercise_id, right, wrong, message",
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_checker_accepts_the_right_answer_and_names_the_mistake(
    exercise_id, right, wrong, message, capsys
):
    passed, out = run(exercise_id, right, capsys)
    assert passed, out
    passed, out = run(exercise_id, wrong, capsys)
    assert not passed
    assert message in out, out


def test_every_exercise_has_typical_mistakes_in_the_table():
    assert {c[0] for c in CASES} == set(EXERCISES), (
        "add the new exercise's mistakes to CASES"
    )
