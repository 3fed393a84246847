"""Exercises of chapter 4: a sliding-window mask, the padding mask, label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import transformer
from ._core import Case, Exercise, Mistake, register
from ._predictions import Prediction, predict

CHAPTER = "04_transformer"


def sliding_window_mask(size: int, window: int) -> torch.Tensor:
    """bool (size, size): query i may attend key j when i - window < j <= i."""
    i = torch.arange(size)[:, None]  # (size, 1) queries
    j = torch.arange(size)[None, :]  # (1, size) keys
    return (j <= i) & (i - j < window)


def _band(size, window, keep):
    i, j = torch.arange(size)[:, None], torch.arange(size)[None, :]
    return keep(i, j, window)


register(
    Exercise(
        id="ex-sliding-window-mask",
        chapter=CHAPTER,
        title="a sliding-window causal mask",
        signature=(
            "sliding_window_mask(size, window) -> bool (size, size), True where "
            "i - window < j <= i"
        ),
        reference=sliding_window_mask,
        cases=[
            Case("size 5, window 2", lambda: (5, 2)),
            Case("size 6, window 1: each position sees itself only", lambda: (6, 1)),
            Case("size 7, window 3", lambda: (7, 3)),
            Case("size 4, window 10: the causal mask", lambda: (4, 10)),
        ],
        mistakes=[
            Mistake(
                "the window looks both ways, |i - j| < window: a causal model may not see "
                "later positions, so also require j <= i.",
                lambda size, w: _band(size, w, lambda i, j, w: (i - j).abs() < w),
            ),
            Mistake(
                "the window holds window + 1 keys: i - j <= window. With the query itself "
                "counted, the keys are j = i - window + 1, ..., i (i - j < window).",
                lambda size, w: _band(size, w, lambda i, j, w: (j <= i) & (i - j <= w)),
            ),
            Mistake(
                "the window is missing: that is the plain causal mask, where every "
                "earlier key is seen.",
                lambda size, w: _band(size, w, lambda i, j, w: j <= i),
            ),
            Mistake(
                "the mask is transposed: row i is the query, so its keys are the earlier "
                "positions j <= i (below the diagonal), not the later ones.",
                lambda size, w: _band(size, w, lambda i, j, w: (j >= i) & (j - i < w)),
            ),
            Mistake(
                "the diagonal is excluded: a position must be allowed to attend to "
                "itself.",
                lambda size, w: _band(size, w, lambda i, j, w: (j < i) & (i - j <= w)),
            ),
            Mistake(
                "the mask is inverted: True must mean 'may attend'.",
                lambda size, w: ~sliding_window_mask(size, w),
            ),
        ],
    )
)


def _lengths_case(lengths, max_len):
    return lambda: (torch.tensor(lengths), max_len)


register(
    Exercise(
        id="ex-padding-mask",
        chapter=CHAPTER,
        title="the padding mask",
        signature="padding_mask(lengths, max_len) -> bool (batch, max_len), True at real tokens",
        reference=transformer.padding_mask,
        stands_for=("course_lib.attention.padding_mask",),
        cases=[
            Case("lengths [2, 5, 3], max_len 5", _lengths_case([2, 5, 3], 5)),
            Case("lengths [1, 4], max_len 6", _lengths_case([1, 4], 6)),
            Case(
                "lengths [0, 3], max_len 3 (an empty sequence)",
                _lengths_case([0, 3], 3),
            ),
        ],
        mistakes=[
            Mistake(
                "off by one: a sequence of length L has real tokens at positions 0 ... L-1 "
                "(use position < length, not <=).",
                lambda lengths, max_len: (
                    torch.arange(max_len)[None, :] <= lengths[:, None]
                ),
            ),
            Mistake(
                "off by one: a sequence of length L has real tokens at positions 0 ... L-1, "
                "so position L-1 is real too.",
                lambda lengths, max_len: (
                    torch.arange(max_len)[None, :] < lengths[:, None] - 1
                ),
            ),
            Mistake(
                "the mask is inverted: True must mark the real tokens (may be attended), "
                "False the padding.",
                lambda lengths, max_len: (
                    torch.arange(max_len)[None, :] >= lengths[:, None]
                ),
            ),
            Mistake(
                "the result is transposed: it must be (batch, max_len).",
                lambda lengths, max_len: (
                    torch.arange(max_len)[:, None] < lengths[None, :]
                ),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-label-smoothing
# ---------------------------------------------------------------------------


def _pytorch_smoothed(logits, targets, epsilon, pad_id):
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=epsilon,
    )


def _smoothed(
    logits, targets, epsilon, pad_id, *, spread, real=None, denominator="real tokens"
):
    """Cross-entropy against a smoothed target: 1 - epsilon on the target, plus
    ``spread(log_probs)`` -- the per-token penalty of the other epsilon -- summed over
    the ``real`` tokens (default: the non-pad ones) and divided by ``denominator``."""
    log_probs = logits.log_softmax(-1)  # (B, T, V)
    nll = -log_probs.gather(-1, targets[..., None]).squeeze(-1)  # (B, T)
    per_token = (1 - epsilon) * nll + epsilon * spread(log_probs, targets)
    real = (targets != pad_id) if real is None else real(targets)
    total = (per_token * real).sum()
    count = {
        "real tokens": real.sum(),
        "batch size": targets.shape[0],
        "every position": targets.numel(),
    }[denominator]
    return total / count


def _uniform_over_all(log_probs, targets):
    return -log_probs.mean(-1)


def _uniform_over_others(log_probs, targets):
    others = torch.ones_like(log_probs).scatter_(-1, targets[..., None], 0.0)
    return -(log_probs * others).sum(-1) / (log_probs.shape[-1] - 1)


def _smoothing_case(b, t, v, epsilon, pad_id, seed, pads=True):
    def make():
        g = torch.Generator().manual_seed(seed)
        logits = 2 * torch.randn(b, t, v, generator=g)
        targets = torch.randint(0, v, (b, t), generator=g)
        targets[targets == pad_id] = (pad_id + 1) % v  # real tokens are not <pad> ...
        if pads:  # ... and each sentence but the first ends with some <pad>
            lengths = torch.randint(1, t + 1, (b,), generator=g)
            lengths[0] = t
            targets[torch.arange(t)[None, :] >= lengths[:, None]] = pad_id
        return logits, targets, epsilon, pad_id

    return make


register(
    Exercise(
        id="ex-label-smoothing",
        chapter=CHAPTER,
        title="the label-smoothed loss",
        signature=(
            "label_smoothed_loss(logits, targets, epsilon, pad_id): (B, T, V), (B, T) "
            "long, float, int -> a scalar tensor"
        ),
        reference=_pytorch_smoothed,
        stands_for=("torch.nn.functional.cross_entropy:label_smoothing",),
        cases=[
            Case(
                "B=2, T=5, V=7, epsilon 0.1, no padding",
                _smoothing_case(2, 5, 7, 0.1, 0, seed=0, pads=False),
            ),
            Case(
                "B=4, T=6, V=9, epsilon 0.1, padded sentences",
                _smoothing_case(4, 6, 9, 0.1, 0, seed=1),
            ),
            Case(
                "epsilon 0: plain cross-entropy",
                _smoothing_case(3, 4, 5, 0.0, 0, seed=2),
            ),
            Case("epsilon 0.3, pad_id 3", _smoothing_case(5, 6, 8, 0.3, 3, seed=3)),
        ],
        mistakes=[
            Mistake(
                "epsilon is spread over the V - 1 wrong words only; PyTorch (and this "
                "exercise) spreads it over all V words, so the target gets "
                "1 - epsilon + epsilon/V: the smoothing term is -epsilon * mean over V of "
                "log p.",
                lambda lg, tg, e, p: _smoothed(
                    lg, tg, e, p, spread=_uniform_over_others
                ),
            ),
            Mistake(
                "<pad> positions count in the loss: average over the real tokens only "
                "(targets != pad_id).",
                lambda lg, tg, e, p: _smoothed(
                    lg, tg, e, p, spread=_uniform_over_all, real=torch.ones_like
                ),
            ),
            Mistake(
                "the loss is summed over tokens and divided by the batch size; average it "
                "over the real (non-pad) tokens.",
                lambda lg, tg, e, p: _smoothed(
                    lg, tg, e, p, spread=_uniform_over_all, denominator="batch size"
                ),
            ),
            Mistake(
                "the sum over the real tokens is divided by every position, <pad> "
                "included: divide by the number of real tokens, (targets != pad_id).sum().",
                lambda lg, tg, e, p: _smoothed(
                    lg, tg, e, p, spread=_uniform_over_all, denominator="every position"
                ),
            ),
            Mistake(
                "only the (1 - epsilon) * cross-entropy term is there: add epsilon times "
                "the mean over the V words of -log p.",
                lambda lg, tg, e, p: _smoothed(lg, tg, e, p, spread=lambda lp, t: 0.0),
            ),
            Mistake(
                "the smoothing term uses -log of the mean probability; it is the mean of "
                "-log p over the V words (the cross-entropy with the uniform distribution).",
                lambda lg, tg, e, p: _smoothed(
                    lg, tg, e, p, spread=lambda lp, t: -lp.exp().mean(-1).log()
                ),
            ),
        ],
    )
)


predict(
    Prediction(
        id="pred-no-causal-mask",
        chapter=CHAPTER,
        question="Trained without the causal mask, what does the model do?",
        choices={
            "a": "it trains and translates as well as the masked model",
            "b": "its training loss collapses, but it cannot translate",
            "c": "it cannot even fit the training data",
        },
        answer="b",
        why=(
            "in teacher forcing the decoder input at position t+1 is the label at "
            "position t, so a decoder that may look ahead copies it: the training loss "
            "collapses. When generating, the future has not been written yet, and the "
            "model never learned to predict it."
        ),
    )
)
