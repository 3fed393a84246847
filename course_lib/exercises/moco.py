"""Exercises of chapter 7: the InfoNCE logits and the momentum update."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import moco
from ._core import Case, Exercise, Mistake, compare_outputs, register

# ---------------------------------------------------------------------------
# ex-infonce
# ---------------------------------------------------------------------------


CHAPTER = "07_moco"


def _features(batch, dim, queue_size, temperature, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        q = 3 * torch.randn(
            batch, dim, generator=g
        )  # raw, deliberately not unit length
        k = q + 2 * torch.randn(batch, dim, generator=g)
        queue = F.normalize(torch.randn(queue_size, dim, generator=g), dim=1)
        return q, k, queue, temperature

    return make


def _not_normalised(q, k, queue, temperature):
    return torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / temperature


def _query_not_normalised(q, k, queue, temperature):
    k = F.normalize(k, dim=1)
    return torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / temperature


def _positive_last(q, k, queue, temperature):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return torch.cat([q @ queue.T, (q * k).sum(1, keepdim=True)], 1) / temperature


def _temperature_multiplied(q, k, queue, temperature):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) * temperature


def _all_pairs_positive(q, k, queue, temperature):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return torch.cat([q @ k.T, q @ queue.T], 1) / temperature


register(
    Exercise(
        id="ex-infonce",
        chapter=CHAPTER,
        title="the InfoNCE logits",
        signature="info_nce_logits(q, k, queue, temperature): (B, D), (B, D), (K, D), float -> (B, 1 + K)",
        reference=moco.info_nce_logits,
        cases=[
            Case("B=4, D=8, K=16, temperature 0.1", _features(4, 8, 16, 0.1, seed=0)),
            Case("B=6, D=5, K=12, temperature 0.5", _features(6, 5, 12, 0.5, seed=1)),
            Case("B=1, D=3, K=2, temperature 1.0", _features(1, 3, 2, 1.0, seed=2)),
        ],
        mistakes=[
            Mistake(
                "q and k are not L2-normalised: the logits must be cosine similarities "
                "(F.normalize(q, dim=1), same for k) before dividing by the temperature.",
                _not_normalised,
            ),
            Mistake(
                "only k is normalised; normalise q too, or the logits grow with the length of q.",
                _query_not_normalised,
            ),
            Mistake(
                "the positive is in the last column; InfoNCE here puts it in column 0 "
                "(the label of the cross-entropy is 0), negatives after it.",
                _positive_last,
            ),
            Mistake(
                "the temperature multiplies the logits; it divides them (a small temperature "
                "makes the softmax sharper).",
                _temperature_multiplied,
            ),
            Mistake(
                "column block q @ k.T pairs every query with every key; the positive is only "
                "the matching pair, (q * k).sum(dim=1), one column.",
                _all_pairs_positive,
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
