"""Exercises of chapter 7: the queue, the momentum update and the kNN monitor."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import moco
from ._core import Case, Exercise, Mistake, _describe, compare_outputs, register
from ._predictions import Prediction, predict

CHAPTER = "07_moco"

# ---------------------------------------------------------------------------
# ex-enqueue
# ---------------------------------------------------------------------------


def enqueue(queue, ptr, keys):
    """Write ``keys`` (B, D) into ``queue`` (K, D) at rows ptr, ptr+1, ... (mod K)."""
    rows = (ptr + torch.arange(len(keys))) % len(queue)
    queue[rows] = keys
    return queue, (ptr + len(keys)) % len(queue)


def _no_wrap(queue, ptr, keys):
    fits = min(len(keys), len(queue) - ptr)  # the keys past the last row are lost
    queue[ptr : ptr + fits] = keys[:fits]
    return queue, (ptr + len(keys)) % len(queue)


def _pointer_not_wrapped(queue, ptr, keys):
    rows = (ptr + torch.arange(len(keys))) % len(queue)
    queue[rows] = keys
    return queue, ptr + len(keys)


def _pointer_kept(queue, ptr, keys):
    rows = (ptr + torch.arange(len(keys))) % len(queue)
    queue[rows] = keys
    return queue, ptr


def _written_before_the_pointer(queue, ptr, keys):
    rows = (ptr - len(keys) + torch.arange(len(keys))) % len(queue)
    queue[rows] = keys
    return queue, ptr


def _reversed(queue, ptr, keys):
    rows = (ptr + torch.arange(len(keys))) % len(queue)
    queue[rows] = keys.flip(0)
    return queue, (ptr + len(keys)) % len(queue)


def _queue_case(size, dim, ptr, batch, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        queue = torch.randn(size, dim, generator=g)
        return queue, ptr, torch.randn(batch, dim, generator=g)

    return make


def _compare_enqueue(expected, got, args):
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"enqueue must return (queue, new_ptr); got {_describe(got)}"
    queue, ptr = got
    if isinstance(ptr, torch.Tensor) and ptr.numel() == 1:
        ptr = int(ptr)
    if not isinstance(ptr, int):
        return f"new_ptr must be an int; got {_describe(ptr)}"
    return compare_outputs(expected, (queue, ptr), names=("queue", "new_ptr"))


register(
    Exercise(
        id="ex-enqueue",
        chapter=CHAPTER,
        title="the queue of negative keys",
        signature=(
            "enqueue(queue, ptr, keys): (K, D), int in [0, K), (B, D) with B <= K -> "
            "(queue, new_ptr)"
        ),
        reference=enqueue,
        stands_for=("course_lib.moco.MoCo",),
        changes=(0,),  # the queue is written in place
        cases=[
            Case("K=8, ptr 0, 3 keys", _queue_case(8, 4, 0, 3, seed=0)),
            Case("K=8, ptr 2, 3 keys", _queue_case(8, 4, 2, 3, seed=1)),
            Case("K=8, ptr 6, 4 keys: wraps around", _queue_case(8, 4, 6, 4, seed=2)),
            Case(
                "K=6, ptr 3, 3 keys: ends at the last row", _queue_case(6, 2, 3, 3, 3)
            ),
            Case("K=5, ptr 4, 5 keys: replaces every row", _queue_case(5, 3, 4, 5, 4)),
        ],
        mistakes=[
            Mistake(
                "the keys do not wrap around: rows ptr, ptr+1, ... are taken modulo K "
                "(e.g. (ptr + torch.arange(B)) % K), so a batch that reaches the end "
                "continues at row 0.",
                _no_wrap,
                # queue[ptr : ptr + B] = keys fails at the end of the queue
                error="expanded size of the tensor|must match the size",
            ),
            Mistake(
                "new_ptr is not taken modulo K: it must stay in [0, K), (ptr + B) % K.",
                _pointer_not_wrapped,
            ),
            Mistake(
                "the pointer did not move: the next batch must go after this one, "
                "new_ptr = (ptr + B) % K.",
                _pointer_kept,
            ),
            Mistake(
                "the keys were written before the pointer; they go to rows ptr, ptr+1, "
                "... (the oldest keys are there).",
                _written_before_the_pointer,
            ),
            Mistake(
                "the keys are written in reverse order; key i goes to row (ptr + i) % K.",
                _reversed,
            ),
        ],
        compare=_compare_enqueue,
    )
)


# ---------------------------------------------------------------------------
# ex-knn-vote
# ---------------------------------------------------------------------------


def _knn_with(weight=lambda s, t: (s / t).exp(), largest=True, k_extra=0):
    def wrong(features, bank, bank_labels, num_classes, k, temperature):
        similarity = features @ bank.T  # (n, N)
        top, index = similarity.topk(min(k + k_extra, len(bank)), largest=largest)
        votes = torch.zeros(len(features), num_classes)
        votes.scatter_add_(1, bank_labels[index], weight(top, temperature))
        return votes.argmax(1)

    return wrong


def _knn_reference(features, bank, bank_labels, num_classes, k, temperature):
    return moco.knn_predict(features, bank, bank_labels, num_classes, k, temperature)


def _bank_case(n, size, dim, num_classes, k, temperature, seed):
    """Clustered features, so that the vote matters and the weighting too."""

    def make():
        g = torch.Generator().manual_seed(seed)
        centres = torch.randn(num_classes, dim, generator=g)
        bank_labels = torch.randint(0, num_classes, (size,), generator=g)
        bank = F.normalize(
            centres[bank_labels] + 1.2 * torch.randn(size, dim, generator=g), dim=1
        )
        labels = torch.randint(0, num_classes, (n,), generator=g)
        features = F.normalize(
            centres[labels] + 1.2 * torch.randn(n, dim, generator=g), dim=1
        )
        return features, bank, bank_labels, num_classes, k, temperature

    return make


def _weighting_decides():
    """Three queries (the unit vectors e_0, e_1, e_2) and, for each, three bank entries
    of chosen similarity: class 0 twice with a low similarity, class 1 once with a high
    one. The answer (class 1 each time) differs from a plain majority, from weights s
    and from weights exp(s) on at least one query each."""
    similarities = [(0.45, 0.45, 0.95), (0.3, 0.3, 0.55), (0.1, 0.1, 0.99)]
    bank, labels = [], []
    for query, row in enumerate(similarities):
        for s, label in zip(row, (0, 0, 1)):
            entry = torch.zeros(4)
            entry[query], entry[3] = s, (1 - s * s) ** 0.5  # unit length
            bank.append(entry)
            labels.append(label)
    features = torch.eye(4)[:3]
    return features, torch.stack(bank), torch.tensor(labels), 2, 3, 0.1


register(
    Exercise(
        id="ex-knn-vote",
        chapter=CHAPTER,
        title="the weighted kNN vote",
        signature=(
            "knn_predict(features, bank, bank_labels, num_classes, k, temperature): "
            "(n, D), (N, D), (N,) long, int, int, float -> (n,) long"
        ),
        reference=_knn_reference,
        stands_for=("course_lib.moco.knn_predict",),
        cases=[
            Case(
                "40 queries, a bank of 200, k 20, τ 0.1",
                _bank_case(40, 200, 8, 4, 20, 0.1, 0),
            ),
            Case(
                "60 queries, a bank of 300, k 10, τ 0.5",
                _bank_case(60, 300, 6, 5, 10, 0.5, 1),
            ),
            Case(
                "30 queries, a bank of 100, k 1", _bank_case(30, 100, 5, 3, 1, 0.1, 2)
            ),
            Case("three queries where the weighting decides, k 3", _weighting_decides),
        ],
        mistakes=[
            Mistake(
                "every neighbour votes with weight 1 (a plain majority); each votes with "
                "exp(similarity / temperature), so closer neighbours count more.",
                _knn_with(weight=lambda s, t: torch.ones_like(s)),
            ),
            Mistake(
                "the votes are weighted by the similarity itself; the weight is "
                "exp(similarity / temperature).",
                _knn_with(weight=lambda s, t: s),
            ),
            Mistake(
                "the votes are weighted by exp(similarity) without the temperature; "
                "divide by it first.",
                _knn_with(weight=lambda s, t: s.exp()),
            ),
            Mistake(
                "the similarity is multiplied by the temperature; it is divided by it, "
                "exp(similarity / temperature): a small temperature sharpens the vote.",
                _knn_with(weight=lambda s, t: (s * t).exp()),
            ),
            Mistake(
                "the k *least* similar bank entries vote; take the k largest "
                "similarities (topk's default, largest=True).",
                _knn_with(largest=False),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-momentum-update
# ---------------------------------------------------------------------------


def _encoders(m, seed):
    """Two encoders of the same architecture with different weights; the key encoder's
    parameters do not require gradients (as in MoCo)."""

    def make():
        torch.manual_seed(seed)
        encoder_q = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        encoder_k = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        for p in encoder_k.parameters():
            p.requires_grad = False
        return encoder_q, encoder_k, m

    return make


def _flat_weights(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _run_update(fn, args):
    """Call fn(encoder_q, encoder_k, m); return (key weights after, query weights after,
    whether the key encoder's weights now hang in an autograd graph)."""
    encoder_q, encoder_k, _ = args
    fn(*args)
    params_k = list(encoder_k.parameters())
    builds_graph = any(p.grad_fn is not None or p.requires_grad for p in params_k)
    return _flat_weights(encoder_k), _flat_weights(encoder_q), builds_graph


def _compare_update(expected, got, args):
    k_expected, q_expected, _ = expected
    k_got, q_got, builds_graph = got
    if builds_graph:
        return (
            "after your update the key encoder's weights require gradients / have a grad_fn: "
            "the update built an autograd graph. Wrap it in torch.no_grad() (or use "
            "@torch.no_grad()) so that encoder_k is never trained by back-propagation."
        )
    problem = compare_outputs(q_expected, q_got, what="encoder_q's weights")
    if problem:
        return "encoder_q must not change: " + problem
    return compare_outputs(
        k_expected, k_got, what="encoder_k's weights after the update"
    )


def _swapped(encoder_q, encoder_k, m):
    with torch.no_grad():
        for q, k in zip(encoder_q.parameters(), encoder_k.parameters()):
            k.copy_((1 - m) * k + m * q)


def _with_graph(encoder_q, encoder_k, m):
    for q, k in zip(encoder_q.parameters(), encoder_k.parameters()):
        k.mul_(m).add_(q, alpha=1 - m)  # no torch.no_grad(): q requires grad


def _query_updated(encoder_q, encoder_k, m):
    with torch.no_grad():
        for q, k in zip(encoder_q.parameters(), encoder_k.parameters()):
            q.copy_(m * q + (1 - m) * k)


def _copied(encoder_q, encoder_k, m):
    with torch.no_grad():
        for q, k in zip(encoder_q.parameters(), encoder_k.parameters()):
            k.copy_(q)


register(
    Exercise(
        id="ex-momentum-update",
        chapter=CHAPTER,
        title="the momentum update",
        signature="momentum_update(encoder_q, encoder_k, m): updates encoder_k in place, returns None",
        reference=moco.momentum_update,
        stands_for=("course_lib.moco.momentum_update",),
        cases=[
            Case("m = 0.9", _encoders(0.9, seed=0)),
            Case("m = 0.99", _encoders(0.99, seed=1)),
            Case("m = 0 (copy the query encoder)", _encoders(0.0, seed=2)),
        ],
        mistakes=[
            Mistake(
                "m and 1 - m are swapped: the key encoder keeps m of its own weights, "
                "theta_k <- m * theta_k + (1 - m) * theta_q.",
                _swapped,
            ),
            Mistake(
                "the update runs outside torch.no_grad(), so it builds an autograd graph "
                "through the key encoder.",
                _with_graph,
            ),
            Mistake(
                "the update changed encoder_q; only encoder_k moves (towards encoder_q).",
                _query_updated,
            ),
            Mistake(
                "encoder_k is a plain copy of encoder_q; that is m = 0 for every m.",
                _copied,
            ),
            Mistake(
                "encoder_k did not change. Update its parameters in place "
                "(theta_k.mul_(m).add_(...) or theta_k.copy_(...)); assigning a new tensor to "
                "the loop variable leaves the module untouched.",
                lambda q, k, m: None,
            ),
        ],
        run=_run_update,
        compare=_compare_update,
    )
)


predict(
    Prediction(
        id="pred-momentum-zero",
        chapter=CHAPTER,
        question=(
            "With m = 0 (the key encoder a copy of the query encoder at every step), "
            "how good are the features (kNN accuracy)?"
        ),
        choices={
            "a": "about as good as with m = 0.99 (within 2 points)",
            "b": "worse, but by less than 20 points",
            "c": "far worse: more than 20 points below, down where a random encoder is",
        },
        answer="c",
        why=(
            "the negatives in the queue were made by the encoders of earlier steps. "
            "With m = 0 the key encoder changes as fast as the query encoder, so old "
            "and new keys are inconsistent and the contrastive signal is noise: MoCo "
            "reports that training with m = 0 fails. Compare this run's features "
            "with m = 0.99's and with the random encoder's above."
        ),
    )
)
