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
import torchvision

from course_lib import attention
from course_lib import detr as course_detr
from course_lib import moco as course_moco
from course_lib import vit as course_vit
from course_lib.detr import box_iou as detr_iou
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


def run(exercise_id, fn, capsys, **options):
    passed = check(exercise_id, fn, **options)
    return passed, capsys.readouterr().out


def test_every_exercise_accepts_its_reference(capsys):
    for exercise_id, exercise in EXERCISES.items():
        # through a wrapper: the reference itself may be the library function that a
        # learner may not call
        passed, out = run(exercise_id, lambda *a, e=exercise: e.reference(*a), capsys)
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
    passed, out = run("ex-leave-one-out", lambda x, y, w: None, capsys)
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
    assert "4 of 5 cases right" in out and "float16" in out
    assert "torch.finfo(scores.dtype).min" in out and "RuntimeError" in out


def test_a_mistake_is_named_only_if_it_explains_every_case(capsys):
    def two_bugs(u):
        if u.dim() == 1:  # like "the factor 3/4 is missing" on case 1 ...
            return (1 - u**2).clamp(min=0)
        return 0.75 * (1 - u.abs()).clamp(min=0)  # ... and "triangular" on case 2

    passed, out = run("ex-epanechnikov", two_bugs, capsys)
    assert not passed and "0 of 2 cases right" in out
    assert "Likely mistake" not in out


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


def test_numbers_may_come_as_tensors_or_numpy_scalars(capsys):
    def reference(*args):  # not the library's function itself: that one is refused
        return EXERCISES["ex-average-precision"].reference(*args)

    for wrap in (torch.tensor, np.float64):
        passed, out = run(
            "ex-average-precision",
            lambda s, t, n, w=wrap: w(reference(s, t, n)),
            capsys,
        )
        assert passed, out


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
    check("ex-epanechnikov", lambda u: EXERCISES["ex-epanechnikov"].reference(u))
    check("ex-leave-one-out", lambda x, y, w: None)
    capsys.readouterr()
    status = progress("01_attention_pooling")
    out = capsys.readouterr().out
    assert status["ex-epanechnikov"] == "passed"
    assert status["ex-leave-one-out"] == "failed"
    assert "✓ ex-epanechnikov" in out and "✗ ex-leave-one-out" in out
    assert "ex-sdpa" not in status  # another chapter
    assert all(
        s == "not attempted yet"
        for i, s in status.items()
        if i not in ("ex-epanechnikov", "ex-leave-one-out")
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


def loo_right(x, y, w):
    """With loops, independent of the checker's reference."""
    n = len(x)
    weights = torch.zeros(n, n)
    for i in range(n):
        kernel = [
            math.exp(-((w * float(x[i] - x[j])) ** 2) / 2) if j != i else 0.0
            for j in range(n)
        ]
        weights[i] = torch.tensor(kernel) / sum(kernel)
    return weights @ y, weights


def loo_naive(x, y, w):
    weights = (-((w * (x[:, None] - x[None, :])) ** 2) / 2).softmax(-1)
    return weights @ y, weights


def loo_zeroed_after(x, y, w):
    weights = (-((w * (x[:, None] - x[None, :])) ** 2) / 2).softmax(-1)
    weights = weights * (1 - torch.eye(len(x)))
    return weights @ y, weights


LEAVE_ONE_OUT_MISTAKES = [
    (loo_naive, "still sees itself"),
    (loo_zeroed_after, "zeroed after the softmax"),
    (lambda x, y, w: loo_right(x, y, 1 / w), "w divides the distance"),
    (lambda x, y, w: loo_right(x, y, w)[0], "tuple"),
]


def knn_right(queries, keys, values, k):
    weights = torch.zeros(len(queries), len(keys))
    for i, q in enumerate(queries.tolist()):
        order = sorted(range(len(keys)), key=lambda j: abs(q - keys[j].item()))
        weights[i, order[:k]] = 1 / k
    return weights @ values, weights


def knn_sorted_descending(queries, keys, values, k):
    weights = torch.zeros(len(queries), len(keys))
    for i, q in enumerate(queries.tolist()):
        order = sorted(range(len(keys)), key=lambda j: -abs(q - keys[j].item()))
        weights[i, order[:k]] = 1 / k
    return weights @ values, weights


KNN_POOLING_MISTAKES = [
    (knn_sorted_descending, "farthest"),
    (lambda q, keys, v, k: tuple(k * x for x in knn_right(q, keys, v, k)), "sum"),
    (
        lambda q, keys, v, k: knn_right(q, keys, v, min(k + 1, len(keys))),
        "k + 1 keys",
    ),
    (lambda q, keys, v, k: knn_right(q, keys, v, k)[1], "should be a tuple of 2"),
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
    (
        lambda s, m: torch.softmax(s.masked_fill(~m, torch.finfo(s.dtype).min), -1),
        "uniform weights",
    ),
    (lambda s, m: masked_softmax_right(s, ~m), "inverted"),
    (lambda s, m: masked_softmax_right(s, m)[..., 0], "has shape"),
]


def bilinear_right(queries, keys, values, W, mask=None):
    scores = torch.einsum("bqi,ij,bkj->bqk", queries, W, keys)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], -float("inf"))
    weights = scores.softmax(-1)
    return weights @ values, weights


def bilinear_variant(transpose_w=False, scale=False, invert=False, ignore=False):
    def wrong(queries, keys, values, W, mask=None):
        W = W.T if transpose_w else W
        scores = torch.einsum("bqi,ji->bqj", queries, W) @ keys.transpose(1, 2)
        scores = scores / queries.shape[-1] ** 0.5 if scale else scores
        if mask is not None and not ignore:
            keep = ~mask if invert else mask
            scores = scores.masked_fill(~keep[:, None, :], -1e9)
        weights = scores.softmax(-1)
        return weights @ values, weights

    return wrong


BILINEAR_MISTAKES = [
    # transposed: the einsum above applies W.T, so transposing gives W
    (bilinear_variant(transpose_w=False), "W is used transposed"),
    (
        lambda q, k, v, W, m=None: bilinear_variant(transpose_w=True, scale=True)(
            q, k, v, W, m
        ),
        "scaled by √d",
    ),
    (
        lambda q, k, v, W, m=None: bilinear_variant(transpose_w=True, invert=True)(
            q, k, v, W, m
        ),
        "inverted",
    ),
    (
        lambda q, k, v, W, m=None: bilinear_variant(transpose_w=True, ignore=True)(
            q, k, v, W, m
        ),
        "ignored",
    ),
]


# --- chapter 3 ------------------------------------------------------------------


def alibi_right(num_heads, size):
    """With loops, independent of the checker's reference."""
    heads = []
    for h in range(1, num_heads + 1):
        slope = 2 ** (-8 * h / num_heads)
        heads.append([[-slope * abs(i - j) for j in range(size)] for i in range(size)])
    return torch.tensor(heads)


def alibi_same_slope(num_heads, size):
    distance = (torch.arange(size)[:, None] - torch.arange(size)[None, :]).abs()
    return -distance.float().expand(num_heads, size, size)


ALIBI_MISTAKES = [
    (lambda h, t: -alibi_right(h, t), "wrong sign"),
    (lambda h, t: alibi_right(h, t).flip(0), "run the wrong way"),
    (lambda h, t: alibi_right(h, t) * 2 ** (8 / h), "start at 1"),
    (alibi_same_slope, "same slope"),
    (lambda h, t: alibi_right(h, t).transpose(0, 2), "shape"),
]


def mha_right(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, key_padding_mask=None):
    """Head by head, with a loop: independent of any reshape trick."""
    d = x_q.shape[-1]
    dh = d // num_heads
    q, k, v = x_q @ w_q, x_kv @ w_k, x_kv @ w_v
    heads = []
    for h in range(num_heads):
        part = slice(h * dh, (h + 1) * dh)
        scores = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(dh)
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask[:, None, :], -float("inf"))
        heads.append(scores.softmax(-1) @ v[..., part])
    return torch.cat(heads, -1) @ w_o


def mha_variant(**change):
    def wrong(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, key_padding_mask=None):
        if change.get("linear_layout"):
            w_q, w_k, w_v, w_o = w_q.T, w_k.T, w_v.T, w_o.T
        if change.get("invert") and key_padding_mask is not None:
            key_padding_mask = ~key_padding_mask
        if change.get("no_projection"):
            w_o = torch.eye(x_q.shape[-1])
        if change.get("sqrt_d"):
            x_q = x_q * math.sqrt(num_heads) ** -1
        return mha_right(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, key_padding_mask)

    return wrong


MHA_FORWARD_MISTAKES = [
    (mha_variant(sqrt_d=True), "divide by √(D/H)"),
    (mha_variant(invert=True), "inverted"),
    (mha_variant(no_projection=True), "output projection w_o is missing"),
    (mha_variant(linear_layout=True), "nn.Linear layout"),
]


def test_the_mha_reference_is_nn_multiheadattention():
    g = torch.Generator().manual_seed(0)
    x_q, x_kv = torch.randn(2, 3, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    w_q, w_k, w_v, w_o = (torch.randn(8, 8, generator=g) for _ in range(4))
    keep = torch.tensor([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    module = torch.nn.MultiheadAttention(8, 2, bias=False, batch_first=True)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))
        module.out_proj.weight.copy_(w_o.T)
    expected, _ = module(x_q, x_kv, x_kv, key_padding_mask=~keep)
    reference = EXERCISES["ex-mha-forward"].reference
    torch.testing.assert_close(
        reference(x_q, x_kv, w_q, w_k, w_v, w_o, 2, keep), expected
    )
    torch.testing.assert_close(
        mha_right(x_q, x_kv, w_q, w_k, w_v, w_o, 2, keep), expected
    )


# --- chapter 4 ------------------------------------------------------------------


def window_right(size, window):  # loops, independent of the checker's reference
    return torch.tensor(
        [[i - window < j <= i for j in range(size)] for i in range(size)]
    )


SLIDING_WINDOW_MISTAKES = [
    (
        lambda n, w: torch.tensor(
            [[abs(i - j) < w for j in range(n)] for i in range(n)]
        ),
        "looks both ways",
    ),
    (
        lambda n, w: torch.tensor(
            [[i - w <= j <= i for j in range(n)] for i in range(n)]
        ),
        "window + 1 keys",
    ),
    (lambda n, w: window_right(n, n), "plain causal mask"),
    (lambda n, w: window_right(n, w).T.contiguous(), "transposed"),
    (lambda n, w: ~window_right(n, w), "inverted"),
    (lambda n, w: window_right(n, w).float(), "dtype"),
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


def smoothing_right(logits, targets, epsilon, pad_id):
    """Token by token, from the smoothed target distribution."""
    v = logits.shape[-1]
    total, count = 0.0, 0
    for row_logits, row_targets in zip(logits, targets):
        for token_logits, target in zip(row_logits, row_targets.tolist()):
            if target == pad_id:
                continue
            wanted = torch.full((v,), epsilon / v)
            wanted[target] += 1 - epsilon
            total = total - (wanted * token_logits.log_softmax(-1)).sum()
            count += 1
    return total / count


def smoothing_over_others(logits, targets, epsilon, pad_id):
    v = logits.shape[-1]
    wanted = torch.full_like(logits, epsilon / (v - 1))
    wanted.scatter_(-1, targets[..., None], 1 - epsilon)
    loss = -(wanted * logits.log_softmax(-1)).sum(-1)
    return loss[targets != pad_id].mean()


LABEL_SMOOTHING_MISTAKES = [
    (smoothing_over_others, "V - 1 wrong words"),
    (
        # PyTorch's own label smoothing does the whole exercise: refused before it runs
        lambda lg, tg, e, p: torch.nn.functional.cross_entropy(
            lg.flatten(0, 1), tg.flatten(), label_smoothing=e
        ),
        "which does the whole exercise",
    ),
    (
        lambda lg, tg, e, p: (
            (1 - e)
            * torch.nn.functional.cross_entropy(
                lg.flatten(0, 1), tg.flatten(), ignore_index=p
            )
        ),
        "only the (1 - epsilon)",
    ),
]


# --- chapter 5 ------------------------------------------------------------------


def resize_right(pos_embed, new_grid):
    """Bilinear resizing written out: the sample point of new cell i is
    (i + 0.5) * g / G - 0.5 in old coordinates (align_corners=False), clamped."""
    d = pos_embed.shape[-1]
    g = round((pos_embed.shape[1] - 1) ** 0.5)
    grid = pos_embed[0, 1:].reshape(g, g, d)

    def taps(i):
        x = min(max((i + 0.5) * g / new_grid - 0.5, 0.0), g - 1)
        low = int(math.floor(x))
        high = min(low + 1, g - 1)
        return low, high, x - low

    out = torch.empty(new_grid, new_grid, d)
    for r in range(new_grid):
        r0, r1, fr = taps(r)
        for c in range(new_grid):
            c0, c1, fc = taps(c)
            top = (1 - fc) * grid[r0, c0] + fc * grid[r0, c1]
            bottom = (1 - fc) * grid[r1, c0] + fc * grid[r1, c1]
            out[r, c] = (1 - fr) * top + fr * bottom
    return torch.cat([pos_embed[:, :1], out.reshape(1, -1, d)], dim=1)


def resize_whole_sequence(pos_embed, new_grid):
    return torch.nn.functional.interpolate(
        pos_embed.transpose(1, 2), size=1 + new_grid * new_grid, mode="linear"
    ).transpose(1, 2)


def resize_with(mode, align_corners):
    def wrong(pos_embed, new_grid):
        d = pos_embed.shape[-1]
        g = round((pos_embed.shape[1] - 1) ** 0.5)
        grid = pos_embed[:, 1:].reshape(1, g, g, d).permute(0, 3, 1, 2)
        grid = torch.nn.functional.interpolate(
            grid, size=(new_grid, new_grid), mode=mode, align_corners=align_corners
        )
        return torch.cat(
            [pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, d)], dim=1
        )

    return wrong


RESIZE_POS_EMBED_MISTAKES = [
    (resize_whole_sequence, "[class] position was interpolated"),
    (resize_with("bilinear", True), "align_corners=True"),
    (resize_with("bicubic", False), "bicubic"),
    (lambda p, g: resize_right(p, g)[:, 1:], "has shape"),
]


# --- chapter 6 ------------------------------------------------------------------


def nms_right(boxes, scores, iou_threshold):
    """Pair by pair, with IoU written out: independent of the checker's reference."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        area = lambda x: (x[2] - x[0]) * (x[3] - x[1])  # noqa: E731
        return w * h / (area(a) + area(b) - w * h)

    kept = []
    for i in sorted(range(len(scores)), key=lambda i: -float(scores[i])):
        if all(
            iou(boxes[i].tolist(), boxes[j].tolist()) <= iou_threshold for j in kept
        ):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.long)


NMS_MISTAKES = [
    (
        lambda b, s, t: nms_right(b, torch.arange(len(s), 0, -1).float(), t),
        "input order",
    ),
    (lambda b, s, t: nms_right(b, s, t).sort().values, "highest score first"),
    (lambda b, s, t: nms_right(b, s, 1 - t), "wrong way round"),
    (lambda b, s, t: nms_right(b, s, t).int(), "dtype"),
]


def cost_right(pred_logits, pred_boxes, tgt_labels, tgt_boxes, **change):
    """Pair by pair, with GIoU written out; ``change`` switches on one mistake."""
    p = pred_logits.softmax(-1)
    if change.get("log"):
        p = pred_logits.log_softmax(-1)
    if change.get("no_object_left_out"):
        p = torch.cat([pred_logits[:, :-1].softmax(-1), p[:, -1:]], 1)
    class_sign = 1 if change.get("class_sign") else -1
    giou_sign = 1 if change.get("giou_sign") else -1
    cost = torch.empty(len(pred_boxes), len(tgt_boxes))
    for i, box in enumerate(pred_boxes.tolist()):
        for j, (label, target) in enumerate(
            zip(tgt_labels.tolist(), tgt_boxes.tolist())
        ):
            l1 = sum(abs(a - b) for a, b in zip(box, target))
            giou = giou_of(box, target)
            cost[i, j] = class_sign * p[i, label] + 5 * l1 + giou_sign * 2 * giou
    return cost


def giou_of(a, b):
    def corners(cx, cy, w, h):
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

    ax1, ay1, ax2, ay2 = corners(*a)
    bx1, by1, bx2, by2 = corners(*b)
    inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(
        0, min(ay2, by2) - max(ay1, by1)
    )
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    return inter / union - (hull - union) / hull


def cost_variant(**change):
    return lambda lg, pb, tl, tb: cost_right(lg, pb, tl, tb, **change)


MATCH_COST_MISTAKES = [
    (cost_variant(class_sign=True), "class term has the wrong sign"),
    (cost_variant(log=True), "log-probabilities"),
    (cost_variant(no_object_left_out=True), "leaves out the last"),
    (cost_variant(giou_sign=True), "GIoU term has the wrong sign"),
]


def ap_right(scores, is_true_positive, num_objects):
    """Loop version: precision at every rank, the envelope, the recall steps."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    precision, recall, found = [], [], 0
    for rank, i in enumerate(order, start=1):
        found += bool(is_true_positive[i])
        precision.append(found / rank)
        recall.append(found / num_objects)
    ap, previous = 0.0, 0.0
    for n in range(len(order)):
        ap += (recall[n] - previous) * max(precision[n:])
        previous = recall[n]
    return ap


def ap_raw_precision(scores, is_true_positive, num_objects):
    order = scores.argsort(descending=True)
    hits = is_true_positive[order].float()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / num_objects)


AVERAGE_PRECISION_MISTAKES = [
    (ap_raw_precision, "not replaced by its envelope"),
    (lambda s, tp, n: ap_right(-s, tp, n), "increasing score"),
    (lambda s, tp, n: ap_right(s, tp, len(s)), "divided by the number of detections"),
    (lambda s, tp, n: [ap_right(s, tp, n)], "should be a number"),
]


# --- chapter 7 ------------------------------------------------------------------


def enqueue_right(queue, ptr, keys):
    queue = queue.clone()
    for i, key in enumerate(keys):
        queue[(ptr + i) % len(queue)] = key
    return queue, (ptr + len(keys)) % len(queue)


def no_wrap_raising(queue, ptr, keys):
    queue = queue.clone()
    queue[ptr : ptr + len(keys)] = keys  # a shape error once the batch reaches the end
    return queue, (ptr + len(keys)) % len(queue)


ENQUEUE_MISTAKES = [
    (
        lambda q, p, k: (
            torch.cat([q[:p], k, q[p + len(k) :]])[: len(q)],
            (p + len(k)) % len(q),
        ),
        "do not wrap around",
    ),
    (no_wrap_raising, "do not wrap around"),
    (lambda q, p, k: (enqueue_right(q, p, k)[0], p + len(k)), "not taken modulo K"),
    (lambda q, p, k: (enqueue_right(q, p, k)[0], p), "did not move"),
    (lambda q, p, k: enqueue_right(q, p, k.flip(0)), "reverse order"),
    (lambda q, p, k: enqueue_right(q, p, k)[0], "must return (queue, new_ptr)"),
]


def knn_vote_right(features, bank, bank_labels, num_classes, k, temperature):
    predictions = []
    for feature in features:
        similarity = (bank @ feature).tolist()
        nearest = sorted(range(len(bank)), key=lambda j: -similarity[j])[:k]
        votes = [0.0] * num_classes
        for j in nearest:
            votes[int(bank_labels[j])] += math.exp(similarity[j] / temperature)
        predictions.append(max(range(num_classes), key=lambda c: votes[c]))
    return torch.tensor(predictions)


def knn_vote_least_similar(features, bank, bank_labels, num_classes, k, temperature):
    similarity = features @ bank.T
    top, index = similarity.sort(dim=1)  # ascending: the least similar first
    top, index = top[:, :k], index[:, :k]
    votes = torch.zeros(len(features), num_classes)
    votes.scatter_add_(1, bank_labels[index], (top / temperature).exp())
    return votes.argmax(1)


def knn_vote_weighted(weight):
    def wrong(features, bank, bank_labels, num_classes, k, temperature):
        similarity = features @ bank.T
        top, index = similarity.topk(k, dim=1)
        votes = torch.zeros(len(features), num_classes)
        votes.scatter_add_(1, bank_labels[index], weight(top, temperature))
        return votes.argmax(1)

    return wrong


KNN_VOTE_MISTAKES = [
    (knn_vote_weighted(lambda s, t: torch.ones_like(s)), "plain majority"),
    (knn_vote_weighted(lambda s, t: s), "weighted by the similarity itself"),
    (knn_vote_weighted(lambda s, t: s.exp()), "without the temperature"),
    (knn_vote_least_similar, "least* similar"),
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

# exercise id -> (a right answer written here, [(a wrong answer, words the feedback
# must contain), ...])
ANSWERS = {
    "ex-epanechnikov": (epanechnikov_right, EPANECHNIKOV_MISTAKES),
    "ex-leave-one-out": (loo_right, LEAVE_ONE_OUT_MISTAKES),
    "ex-knn-pooling": (knn_right, KNN_POOLING_MISTAKES),
    "ex-masked-softmax": (masked_softmax_right, MASKED_SOFTMAX_MISTAKES),
    "ex-bilinear-attention": (bilinear_right, BILINEAR_MISTAKES),
    "ex-alibi-bias": (alibi_right, ALIBI_MISTAKES),
    "ex-mha-forward": (mha_right, MHA_FORWARD_MISTAKES),
    "ex-sliding-window-mask": (window_right, SLIDING_WINDOW_MISTAKES),
    "ex-padding-mask": (padding_right, PADDING_MASK_MISTAKES),
    "ex-label-smoothing": (smoothing_right, LABEL_SMOOTHING_MISTAKES),
    "ex-resize-pos-embed": (resize_right, RESIZE_POS_EMBED_MISTAKES),
    "ex-nms": (nms_right, NMS_MISTAKES),
    "ex-match-cost": (cost_right, MATCH_COST_MISTAKES),
    "ex-average-precision": (ap_right, AVERAGE_PRECISION_MISTAKES),
    "ex-enqueue": (enqueue_right, ENQUEUE_MISTAKES),
    "ex-knn-vote": (knn_vote_right, KNN_VOTE_MISTAKES),
    "ex-momentum-update": (momentum_right, MOMENTUM_UPDATE_MISTAKES),
}
CASES = [
    (exercise_id, right, wrong, message)
    for exercise_id, (right, mistakes) in ANSWERS.items()
    for wrong, message in mistakes
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
    assert set(ANSWERS) == set(EXERCISES), "add the new exercise's answers to ANSWERS"


# -- no exercise is passed by calling the library --------------------------------------


def _mha_through_torch(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, mask=None):
    mha = torch.nn.MultiheadAttention(x_q.shape[-1], num_heads, bias=False)
    return mha(x_q, x_kv, x_kv, key_padding_mask=mask)[0]


def _cost_through_the_matcher(pred_logits, pred_boxes, tgt_labels, tgt_boxes):
    target = {"labels": tgt_labels, "boxes": tgt_boxes}
    return course_detr.HungarianMatcher().cost_matrix(pred_logits, pred_boxes, target)


def _enqueue_through_moco(queue, ptr, keys):
    model = course_moco.MoCo(torch.nn.Identity(), queue_size=len(queue))
    model.queue.copy_(queue)
    model.enqueue(keys)
    return model.queue, ptr


LIBRARY_CALLS = {
    "ex-epanechnikov": lambda u: attention.epanechnikov_kernel(u),
    "ex-leave-one-out": lambda x, y, w: attention.ParametricNadarayaWatson(init_w=w)(
        x, x, y, exclude_self=True
    ),
    "ex-masked-softmax": attention.masked_softmax,
    "ex-mha-forward": _mha_through_torch,
    "ex-padding-mask": lambda lengths, max_len: attention.padding_mask(
        lengths, max_len
    ),
    "ex-label-smoothing": lambda lg, tg, e, p: torch.nn.functional.cross_entropy(
        lg.flatten(0, 1), tg.flatten(), ignore_index=p, label_smoothing=e
    ),
    "ex-resize-pos-embed": lambda pos, grid: course_vit.resize_position_embedding(
        pos, grid
    ),
    "ex-nms": lambda boxes, scores, t: torchvision.ops.nms(boxes, scores, t),
    "ex-match-cost": _cost_through_the_matcher,
    "ex-average-precision": course_detr.average_precision,
    "ex-enqueue": _enqueue_through_moco,
    "ex-knn-vote": course_moco.knn_predict,
    "ex-momentum-update": course_moco.momentum_update,
}
# nothing in course_lib, PyTorch or torchvision computes these two: the chapter's code
# is the building block, the exercise a variant of it
NO_LIBRARY_EQUIVALENT = {
    "ex-knn-pooling",
    "ex-alibi-bias",
    "ex-bilinear-attention",
    "ex-sliding-window-mask",
}


def test_every_exercise_is_tried_with_the_library_call():
    assert set(LIBRARY_CALLS) | NO_LIBRARY_EQUIVALENT == set(EXERCISES)


@pytest.mark.parametrize("exercise_id", sorted(LIBRARY_CALLS))
def test_the_library_call_does_not_pass(exercise_id, capsys):
    passed, out = run(exercise_id, LIBRARY_CALLS[exercise_id], capsys)
    assert not passed
    assert "which does the whole exercise" in out, out
    assert RESULTS[exercise_id] == "failed"


def test_a_library_call_imported_inside_the_function_does_not_pass(capsys):
    def nms(boxes, scores, iou_threshold):
        import torchvision

        return torchvision.ops.nms(boxes, scores, iou_threshold)

    def nms_from(boxes, scores, iou_threshold):
        from torchvision.ops import nms as library_nms

        return library_nms(boxes, scores, iou_threshold)

    for fn in (nms, nms_from):
        passed, out = run("ex-nms", fn, capsys)
        assert not passed
        assert "which does the whole exercise" in out, out


def test_a_building_block_the_exercise_allows_is_allowed(capsys):
    def matching_cost(pred_logits, pred_boxes, tgt_labels, tgt_boxes):
        probability = pred_logits.softmax(-1)[:, tgt_labels]
        l1 = torch.cdist(pred_boxes, tgt_boxes, p=1)
        giou = course_detr.generalized_box_iou(
            _corners(pred_boxes), _corners(tgt_boxes)
        )
        return -probability + 5 * l1 - 2 * giou

    passed, out = run("ex-match-cost", matching_cost, capsys)
    assert passed, out


def _corners(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def test_a_function_that_changes_its_input_in_place_is_told_so(capsys):
    def in_place(boxes, scores, iou_threshold):
        kept = []
        while scores.max() > -1:
            i = int(scores.argmax())
            kept.append(i)
            overlap = detr_iou(boxes[i : i + 1], boxes)[0] > iou_threshold
            scores[overlap] = -2.0  # changes the caller's scores
        return torch.tensor(kept)

    passed, out = run("ex-nms", in_place, capsys)
    assert not passed
    assert "changed its argument `scores` in place" in out, out

    def clamping(u):
        u.clamp_(-1, 1)  # changes the caller's tensor
        return 0.75 * (1 - u**2)

    passed, out = run("ex-epanechnikov", clamping, capsys)
    assert not passed and "changed its argument `u` in place" in out, out


def test_an_exercise_that_writes_in_place_may(capsys):
    def enqueue(queue, ptr, keys):
        rows = (ptr + torch.arange(len(keys))) % len(queue)
        queue[rows] = keys  # the exercise: write the keys into the queue
        return queue, (ptr + len(keys)) % len(queue)

    passed, out = run("ex-enqueue", enqueue, capsys)
    assert passed, out


# -- the attempts quoted in issue 27: a correct diagnosis, or none ---------------------


def test_a_function_without_the_mask_parameter_is_not_told_the_mask_is_inverted(capsys):
    def no_mask_parameter(queries, keys, values, W):
        scores = queries @ W @ keys.transpose(1, 2)
        weights = scores.softmax(-1)
        return weights @ values, weights

    passed, out = run("ex-bilinear-attention", no_mask_parameter, capsys)
    assert not passed and "cannot take 5 arguments" in out
    assert "Likely mistake" not in out  # the mask cases never ran


def test_an_endless_loop_is_not_put_down_to_a_mistake(capsys):
    def endless(queue, ptr, keys):
        i, j = ptr, 0
        while i != ptr + len(keys):  # never true once i wraps around
            queue[i] = keys[j % len(keys)]
            i, j = (i + 1) % len(queue), j + 1
        return queue, (ptr + len(keys)) % len(queue)

    passed, out = run("ex-enqueue", endless, capsys, time_limit=0.5)
    assert not passed and "took longer than" in out
    assert "Likely mistake" not in out


@pytest.mark.parametrize("fused", [True, False])
def test_pytorchs_mask_convention_is_named_whichever_attention_runs(fused, capsys):
    """True = ignore (PyTorch's key_padding_mask) fed where True = attend: named on any
    torch version, through the fused kernel or written out."""

    def multi_head_attention(x_q, x_kv, w_q, w_k, w_v, w_o, num_heads, mask=None):
        b, t_q, d = x_q.shape

        def heads(x):
            return x.view(b, -1, num_heads, d // num_heads).transpose(1, 2)

        q, k, v = heads(x_q @ w_q), heads(x_kv @ w_k), heads(x_kv @ w_v)
        attend = None if mask is None else ~mask[:, None, None, :]  # the trap
        if fused:
            out = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=attend
            )
        else:
            scores = q @ k.transpose(-2, -1) / (d // num_heads) ** 0.5
            if attend is not None:
                scores = scores.masked_fill(~attend, float("-inf"))
            out = scores.softmax(-1) @ v
        return out.transpose(1, 2).reshape(b, t_q, d) @ w_o

    passed, out = run("ex-mha-forward", multi_head_attention, capsys)
    assert not passed and "2 of 4 cases right" in out
    assert "Likely mistake: the key padding mask is inverted" in out, out


def test_a_fixed_fill_of_minus_a_billion_is_named(capsys):
    def masked_softmax(scores, mask):
        return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)

    passed, out = run("ex-masked-softmax", masked_softmax, capsys)
    assert not passed
    assert "Likely mistake: a fixed fill such as -1e9 does not fit in float16" in out
    assert "uniform weights" in out


def test_two_mistakes_at_once_get_no_wrong_diagnosis(capsys):
    def masked_softmax(scores, mask):  # -1e4, and the masked weights not zeroed
        return torch.softmax(scores.masked_fill(~mask, -1e4), dim=-1)

    passed, out = run("ex-masked-softmax", masked_softmax, capsys)
    assert not passed and "Likely mistake" not in out
    assert "expected 0, got 0.25" in out  # the first wrong case, honestly


def test_a_fixed_fill_of_minus_ten_thousand_fails_and_is_named(capsys):
    def masked_softmax(scores, mask):  # fits float16, and zeroes the masked weights
        weights = torch.softmax(scores.masked_fill(~mask, -1e4), dim=-1)
        return weights.masked_fill(~mask, 0.0)

    passed, out = run("ex-masked-softmax", masked_softmax, capsys)
    assert not passed and "4 of 5 cases right" in out
    assert "Likely mistake: a fixed fill such as -1e4 is not below every score" in out


def test_raw_logits_in_the_matching_cost_are_named(capsys):
    def matching_cost(pred_logits, pred_boxes, tgt_labels, tgt_boxes):
        l1 = torch.cdist(pred_boxes, tgt_boxes, p=1)
        giou = torchvision.ops.generalized_box_iou(
            _corners(pred_boxes), _corners(tgt_boxes)
        )
        return -pred_logits[:, tgt_labels] + 5 * l1 - 2 * giou

    passed, out = run("ex-match-cost", matching_cost, capsys)
    assert not passed and "Likely mistake: the class term uses the raw logits" in out


def test_a_temperature_multiplied_in_the_knn_vote_is_named(capsys):
    def knn_predict(features, bank, bank_labels, num_classes, k, temperature):
        similarity, index = (features @ bank.T).topk(k)
        votes = torch.zeros(len(features), num_classes)
        votes.scatter_add_(1, bank_labels[index], (similarity * temperature).exp())
        return votes.argmax(1)

    passed, out = run("ex-knn-vote", knn_predict, capsys)
    assert not passed
    assert "Likely mistake: the similarity is multiplied by the temperature" in out, out


def test_the_label_smoothing_denominator_is_named(capsys):
    def label_smoothed_loss(logits, targets, epsilon, pad_id):
        log_probs = logits.log_softmax(-1)
        nll = -log_probs.gather(-1, targets[..., None]).squeeze(-1)
        per_token = (1 - epsilon) * nll - epsilon * log_probs.mean(-1)
        return (per_token * (targets != pad_id)).sum() / targets.numel()

    passed, out = run("ex-label-smoothing", label_smoothed_loss, capsys)
    assert not passed
    assert "Likely mistake: the sum over the real tokens is divided by every" in out


def test_a_prediction_is_checked_where_it_is_set(capsys):
    from course_lib.exercises import guess

    with pytest.raises(ValueError, match=r"one of \['a', 'b', 'c'\].*'bb'"):
        guess("pred-naive-loss", "bb")
    guess("pred-naive-loss", "(B)")  # brackets and case are forgiven
    assert capsys.readouterr().out.startswith("Noted: (b)")
    guess("pred-naive-loss", None)
    assert "no prediction yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown prediction_id"):
        guess("pred-nothing", "a")


def test_a_matching_cost_that_converts_the_boxes_in_place_is_told_so(capsys):
    """Issue 27: converting pred_boxes in place before the L1 distance was told 'the L1
    distance is taken between corners', which its code did not do."""

    def to_corners_in_place(boxes):
        boxes[:, :2] -= boxes[:, 2:] / 2
        boxes[:, 2:] += boxes[:, :2]
        return boxes

    def matching_cost(pred_logits, pred_boxes, tgt_labels, tgt_boxes):
        probability = pred_logits.softmax(-1)[:, tgt_labels]
        giou = course_detr.generalized_box_iou(
            to_corners_in_place(pred_boxes), _corners(tgt_boxes)
        )
        l1 = torch.cdist(pred_boxes, tgt_boxes, p=1)  # pred_boxes are corners now
        return -probability + 5 * l1 - 2 * giou

    passed, out = run("ex-match-cost", matching_cost, capsys)
    assert not passed and "Likely mistake" not in out
    assert "changed its argument `pred_boxes` in place" in out, out
