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


def _nw_reference(queries, keys, values, bandwidth):
    return attention.nadaraya_watson(
        queries, keys, values, bandwidth, kernel="gaussian"
    )


def _nw_wrong_axis(queries, keys, values, bandwidth):
    w = torch.softmax(
        -(((queries[:, None] - keys[None, :]) / bandwidth) ** 2) / 2, dim=0
    )
    return w @ values, w


def _nw_unnormalised(queries, keys, values, bandwidth):
    w = torch.exp(-(((queries[:, None] - keys[None, :]) / bandwidth) ** 2) / 2)
    return w @ values, w


def _nw_bandwidth_multiplied(queries, keys, values, bandwidth):
    w = torch.softmax(
        -(((queries[:, None] - keys[None, :]) * bandwidth) ** 2) / 2, dim=-1
    )
    return w @ values, w


def _nw_abs_distance(queries, keys, values, bandwidth):
    w = torch.softmax(
        -((queries[:, None] - keys[None, :]) / bandwidth).abs() / 2, dim=-1
    )
    return w @ values, w


def _nw_no_half(queries, keys, values, bandwidth):
    w = torch.softmax(-(((queries[:, None] - keys[None, :]) / bandwidth) ** 2), dim=-1)
    return w @ values, w


def _nw_case(n_q: int, n_k: int, bandwidth: float, seed: int):
    def make():
        g = torch.Generator().manual_seed(seed)
        keys = torch.rand(n_k, generator=g) * 5
        values = torch.randn(n_k, generator=g)
        queries = torch.rand(n_q, generator=g) * 5
        return queries, keys, values, bandwidth

    return make


register(
    Exercise(
        id="ex-nadaraya-watson",
        chapter=CHAPTER,
        title="Gaussian Nadaraya–Watson attention pooling",
        signature="nadaraya_watson_gaussian(queries, keys, values, bandwidth) -> (predictions, weights)",
        reference=_nw_reference,
        stands_for=("course_lib.attention.nadaraya_watson",),
        cases=[
            Case("3 queries, 5 keys, bandwidth 1", _nw_case(3, 5, 1.0, seed=0)),
            Case("6 queries, 4 keys, bandwidth 0.5", _nw_case(6, 4, 0.5, seed=1)),
            Case("4 queries, 4 keys, bandwidth 2", _nw_case(4, 4, 2.0, seed=2)),
        ],
        mistakes=[
            Mistake(
                "the weights are normalised over the queries (dim 0). Each *query's* weights over "
                "the keys must sum to 1: normalise along the last dimension.",
                _nw_wrong_axis,
            ),
            Mistake(
                "the kernel values are not normalised: divide by their sum over the keys "
                "(or use a softmax of -u²/2).",
                _nw_unnormalised,
            ),
            Mistake(
                "the bandwidth multiplies the distance; divide by it: u = (q - k) / h.",
                _nw_bandwidth_multiplied,
            ),
            Mistake(
                "the score uses |q - k|; the Gaussian kernel squares the distance.",
                _nw_abs_distance,
            ),
            Mistake(
                "the score is -u² instead of -u²/2 (that is a Gaussian of bandwidth h/√2).",
                _nw_no_half,
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
