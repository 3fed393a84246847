"""Exercises of chapter 1: attention pooling (Nadaraya--Watson)."""

from __future__ import annotations

import torch

from .. import attention
from ._core import Case, Exercise, Mistake, register
from ._predictions import Prediction, predict

CHAPTER = "01_attention_pooling"


def _random(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


register(
    Exercise(
        id="ex-epanechnikov",
        chapter=CHAPTER,
        title="the Epanechnikov kernel",
        signature="epanechnikov_kernel(u) -> tensor shaped like u",
        reference=attention.epanechnikov_kernel,
        stands_for=("course_lib.attention.epanechnikov_kernel",),
        cases=[
            Case("u = -2, -1.5, ..., 2", lambda: (torch.linspace(-2, 2, 9),)),
            Case(
                "a (3, 5) tensor of random u",
                lambda: (_random(3, 5, seed=1, scale=1.5),),
            ),
        ],
        mistakes=[
            Mistake(
                "the kernel is negative for |u| > 1: clip 1 - u² at zero "
                "(a kernel weight can never be negative).",
                lambda u: 0.75 * (1 - u**2),
            ),
            Mistake(
                "the factor 3/4 is missing (it makes the kernel integrate to 1).",
                lambda u: (1 - u**2).clamp(min=0),
            ),
            Mistake(
                "that is the triangular kernel: the Epanechnikov kernel uses u², not |u|.",
                lambda u: 0.75 * (1 - u.abs()).clamp(min=0),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-leave-one-out: each training point predicted from the others
# ---------------------------------------------------------------------------


def leave_one_out(x, y, w):
    """The parametric Nadaraya-Watson prediction of every training target from the
    other pairs: (n,), (n,), float -> (predictions (n,), weights (n, n))."""
    scores = -((w * (x[:, None] - x[None, :])) ** 2) / 2  # (n, n)
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), float("-inf"))
    weights = scores.softmax(dim=-1)  # each row: the other keys
    return weights @ y, weights


def _loo_with(exclude="before", width=lambda w, d: w * d, half=True, dim=-1):
    def wrong(x, y, w):
        scores = -(width(w, x[:, None] - x[None, :]) ** 2) / (2 if half else 1)
        self_key = torch.eye(len(x), dtype=torch.bool)
        if exclude == "before":
            scores = scores.masked_fill(self_key, float("-inf"))
        weights = scores.softmax(dim=dim)
        if exclude == "after":
            weights = weights.masked_fill(self_key, 0.0)
        return weights @ y, weights

    return wrong


def _loo_case(n: int, w: float, seed: int):
    def make():
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n, generator=g) * 5
        return x, 2 * torch.sin(x) + torch.randn(n, generator=g) * 0.5, w

    return make


register(
    Exercise(
        id="ex-leave-one-out",
        chapter=CHAPTER,
        title="leave-one-out predictions",
        signature=(
            "leave_one_out(x, y, w): (n,), (n,), float -> (predictions (n,), "
            "weights (n, n)), each point predicted from the others"
        ),
        reference=leave_one_out,
        stands_for=("course_lib.attention.ParametricNadarayaWatson",),
        cases=[
            Case("5 points, w = 1", _loo_case(5, 1.0, seed=0)),
            Case("8 points, w = 2.5", _loo_case(8, 2.5, seed=1)),
            Case("12 points, w = 0.7", _loo_case(12, 0.7, seed=2)),
        ],
        mistakes=[
            Mistake(
                "each point still sees itself: that is the naive loss's prediction, "
                "which w -> infinity makes perfect. Give the score of key i for query "
                "i the value -inf before the softmax.",
                _loo_with(exclude="never"),
            ),
            Mistake(
                "the point's own weight is zeroed after the softmax, so each row sums "
                "to less than 1: exclude it before the softmax (a score of -inf), so "
                "that the softmax shares the whole weight among the others.",
                _loo_with(exclude="after"),
            ),
            Mistake(
                "w divides the distance: here w is the learned *inverse* width, "
                "score = -(w (x_i - x_j))^2 / 2.",
                _loo_with(width=lambda w, d: d / w),
            ),
            Mistake(
                "the score is -(w (x_i - x_j))^2 without the 1/2.",
                _loo_with(half=False),
            ),
            Mistake(
                "the softmax runs over the queries (dim 0): each query's weights over "
                "the keys must sum to 1, along the last dimension.",
                _loo_with(dim=0),
            ),
        ],
        output_names=("predictions", "weights"),
    )
)


# ---------------------------------------------------------------------------
# ex-knn-pooling: k-nearest-neighbour regression as attention pooling
# ---------------------------------------------------------------------------


def knn_pooling(queries, keys, values, k):
    """Weight 1/k on each query's k nearest keys, 0 elsewhere -> (predictions, weights)."""
    distance = (queries[:, None] - keys[None, :]).abs()  # (n_q, n_k)
    nearest = distance.topk(k, dim=-1, largest=False).indices  # (n_q, k)
    weights = torch.zeros_like(distance).scatter_(-1, nearest, 1.0 / k)
    return weights @ values, weights


def _knn_weights(distance, k, largest=False, dim=-1, weight=None):
    nearest = distance.topk(k, dim=dim, largest=largest).indices
    return torch.zeros_like(distance).scatter_(dim, nearest, weight or 1.0 / k)


def _knn_farthest(queries, keys, values, k):
    weights = _knn_weights((queries[:, None] - keys[None, :]).abs(), k, largest=True)
    return weights @ values, weights


def _knn_unnormalised(queries, keys, values, k):
    weights = _knn_weights((queries[:, None] - keys[None, :]).abs(), k, weight=1.0)
    return weights @ values, weights


def _knn_over_queries(queries, keys, values, k):
    distance = (queries[:, None] - keys[None, :]).abs()
    weights = _knn_weights(distance, min(k, len(queries)), dim=0)
    return weights @ values, weights


def _knn_one_too_many(queries, keys, values, k):
    k = min(k + 1, len(keys))
    weights = _knn_weights((queries[:, None] - keys[None, :]).abs(), k)
    return weights @ values, weights


def _knn_case(n_q: int, n_k: int, k: int, seed: int):
    def make():
        g = torch.Generator().manual_seed(seed)
        keys = torch.rand(n_k, generator=g) * 5
        return torch.rand(n_q, generator=g) * 5, keys, torch.randn(n_k, generator=g), k

    return make


register(
    Exercise(
        id="ex-knn-pooling",
        chapter=CHAPTER,
        title="k-nearest neighbours as attention pooling",
        signature="knn_pooling(queries, keys, values, k) -> (predictions, weights)",
        reference=knn_pooling,
        cases=[
            Case("3 queries, 6 keys, k = 2", _knn_case(3, 6, 2, seed=0)),
            Case("5 queries, 8 keys, k = 3", _knn_case(5, 8, 3, seed=1)),
            Case("4 queries, 5 keys, k = 1 (nearest neighbour)", _knn_case(4, 5, 1, 2)),
            Case("2 queries, 4 keys, k = 4 (average pooling)", _knn_case(2, 4, 4, 3)),
        ],
        mistakes=[
            Mistake(
                "the weights go to the k *farthest* keys: topk picks the largest values "
                "unless you pass largest=False (or take the top k of minus the distance).",
                _knn_farthest,
            ),
            Mistake(
                "the k chosen keys get weight 1 each, so the prediction is their sum; "
                "give each 1/k, so that the weights sum to 1 and it is their mean.",
                _knn_unnormalised,
            ),
            Mistake(
                "the nearest neighbours are picked along the queries (dim 0); each query "
                "picks its k nearest keys, along the last dimension.",
                _knn_over_queries,
            ),
            Mistake(
                "k + 1 keys get a weight; exactly k should.",
                _knn_one_too_many,
            ),
        ],
        output_names=("predictions", "weights"),
    )
)


predict(
    Prediction(
        id="pred-naive-loss",
        chapter=CHAPTER,
        question=(
            "As the width w grows, what does the naive training loss (every key "
            "visible, the query's own key included) do?"
        ),
        choices={
            "a": "it has its minimum near the best held-out w",
            "b": "it keeps falling, towards zero",
            "c": "it rises",
        },
        answer="b",
        why=(
            "each training input is also a key, at distance 0 from itself; as w grows, "
            "its own key takes all the weight and the model predicts y_i from y_i. "
            "Zero training loss, pure memorisation of the noise: the naive loss cannot "
            "choose w, and leave-one-out can."
        ),
    )
)
