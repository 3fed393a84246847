"""Chapter 2: padding masks, masked softmax, additive and scaled dot-product attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import attention


def reference_masked_softmax(scores, mask):
    """Independent reference: a softmax over the kept entries only, row by row, in float64."""
    scores, mask = scores.double(), mask.expand_as(scores)
    out = torch.zeros_like(scores)
    flat_s, flat_m, flat_o = (
        scores.reshape(-1, scores.shape[-1]),
        mask.reshape(-1, mask.shape[-1]),
        out.view(-1, scores.shape[-1]),
    )
    for row in range(flat_s.shape[0]):
        keep = flat_m[row]
        if keep.any():
            e = torch.exp(flat_s[row][keep] - flat_s[row][keep].max())
            flat_o[row][keep] = e / e.sum()
    return out


@pytest.mark.parametrize("seed", range(5))
def test_masked_softmax_matches_reference_on_random_masks(seed):
    g = torch.Generator().manual_seed(seed)
    scores = 4 * torch.randn(3, 4, 7, generator=g)
    mask = torch.rand(3, 4, 7, generator=g) > 0.5
    weights = attention.masked_softmax(scores, mask)
    torch.testing.assert_close(weights.double(), reference_masked_softmax(scores, mask))
    assert torch.all(weights[~mask] == 0)


def test_masked_softmax_without_mask_is_softmax():
    scores = torch.randn(2, 3, 4)
    torch.testing.assert_close(
        attention.masked_softmax(scores), torch.softmax(scores, -1)
    )


def test_broadcast_padding_mask():
    scores = torch.randn(2, 5, 6)
    mask = attention.padding_mask(torch.tensor([3, 6]), 6)[:, None, :]  # (2, 1, 6)
    weights = attention.masked_softmax(scores, mask)
    assert weights.shape == (2, 5, 6)
    assert torch.all(weights[0, :, 3:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fully_masked_rows_are_zero_and_everything_is_finite(dtype):
    scores = (30 * torch.randn(4, 6)).to(dtype)
    mask = torch.rand(4, 6) > 0.5
    mask[0] = False
    mask[1] = True
    weights = attention.masked_softmax(scores, mask)
    assert weights.dtype == dtype
    assert torch.isfinite(weights).all()
    assert torch.all(weights[0] == 0)
    kept = mask.any(-1)
    torch.testing.assert_close(
        weights[kept].float().sum(-1),
        torch.ones(int(kept.sum())),
        atol=1e-2 if dtype != torch.float32 else 1e-6,
        rtol=0,
    )
    expected = reference_masked_softmax(scores.float(), mask)
    torch.testing.assert_close(
        weights.double(),
        expected,
        atol=1e-2 if dtype != torch.float32 else 1e-6,
        rtol=0,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_masked_softmax_gradients_are_finite(dtype):
    scores = (10 * torch.randn(3, 5)).to(dtype).requires_grad_()
    mask = torch.tensor([[True, False, True, False, False], [False] * 5, [True] * 5])
    weights = attention.masked_softmax(scores, mask)
    (weights * torch.arange(5).to(dtype)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[1] == 0) and torch.all(scores.grad[0, ~mask[0]] == 0)


def test_padding_mask():
    mask = attention.padding_mask(torch.tensor([0, 2, 4]), 4)
    assert mask.tolist() == [[False] * 4, [True, True, False, False], [True] * 4]
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, max_len=3\]"):
        attention.padding_mask(torch.tensor([4]), 3)
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        attention.padding_mask(torch.tensor([1.0]), 3)


@pytest.mark.parametrize("bias", [False, True])
def test_additive_attention_with_queries_and_keys_of_different_sizes(bias):
    torch.manual_seed(0)
    module = attention.AdditiveAttention(
        query_size=20, key_size=2, num_hiddens=8, bias=bias
    )
    b = module.W_q.bias if bias else torch.zeros(8)
    queries, keys, values = (
        torch.randn(2, 3, 20),
        torch.randn(2, 10, 2),
        torch.randn(2, 10, 4),
    )
    mask = attention.padding_mask(torch.tensor([2, 6]), 10)[:, None, :]
    out = module(queries, keys, values, mask)
    assert out.shape == (2, 3, 4) and module.attention_weights.shape == (2, 3, 10)
    # independent reference: the formula, one (query, key) pair at a time
    for n in range(2):
        for i in range(3):
            scores = torch.stack(
                [
                    module.w_v.weight[0]
                    @ torch.tanh(
                        module.W_q.weight @ queries[n, i]
                        + module.W_k.weight @ keys[n, j]
                        + b
                    )
                    for j in range(10)
                ]
            )
            expected = reference_masked_softmax(scores, mask[n, 0]).float()
            torch.testing.assert_close(
                module.attention_weights[n, i], expected, atol=1e-6, rtol=1e-5
            )
    torch.testing.assert_close(out, module.attention_weights @ values)


def test_additive_attention_without_bias_is_odd():
    torch.manual_seed(1)
    module = attention.AdditiveAttention(4, 4, 16)
    q, k, v = torch.randn(1, 2, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 3)
    module(q, k, v)
    weights = module.attention_weights
    module(-q, -k, v)
    # negated scores: the softmax of -s is the reversed ranking; check through the logits
    torch.testing.assert_close(
        torch.log(weights) - torch.log(weights).mean(-1, keepdim=True),
        -(
            torch.log(module.attention_weights)
            - torch.log(module.attention_weights).mean(-1, keepdim=True)
        ),
    )


def test_additive_attention_bad_sizes():
    module = attention.AdditiveAttention(3, 4, 8)
    with pytest.raises(ValueError, match="queries must have 3 features"):
        module(torch.randn(1, 2, 5), torch.randn(1, 3, 4), torch.randn(1, 3, 2))
    with pytest.raises(ValueError, match="keys and values must come in pairs"):
        module(torch.randn(1, 2, 3), torch.randn(1, 3, 4), torch.randn(1, 4, 2))


def random_qkv(seed, q_shape=(2, 2, 5, 16), n_k=7, d_v=8):
    g = torch.Generator().manual_seed(seed)
    *batch, n_q, d = q_shape
    q = torch.randn(*batch, n_q, d, generator=g)
    k = torch.randn(*batch, n_k, d, generator=g)
    v = torch.randn(*batch, n_k, d_v, generator=g)
    return q, k, v, g


@pytest.mark.parametrize("use_mask", [False, True])
def test_explicit_equals_fused_and_pytorch(use_mask):
    q, k, v, g = random_qkv(0)
    mask = None
    if use_mask:
        mask = torch.rand(2, 1, 5, 7, generator=g) > 0.3
        mask[..., 0] = True
    output, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(
        output,
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        atol=1e-5,
        rtol=1e-5,
    )
    torch.testing.assert_close(
        output, attention.fused_attention(q, k, v, mask), atol=1e-5, rtol=1e-5
    )
    # and the weights are the formula
    expected = reference_masked_softmax(
        q @ k.transpose(-2, -1) / math.sqrt(16),
        mask if mask is not None else torch.ones(1, dtype=torch.bool),
    )
    torch.testing.assert_close(weights.double(), expected, atol=1e-6, rtol=1e-6)


def test_fully_masked_query_gives_zero_output_in_both_paths():
    q, k, v, _ = random_qkv(1, q_shape=(1, 3, 4), n_k=5, d_v=2)
    mask = torch.ones(1, 3, 5, dtype=torch.bool)
    mask[0, 1] = False
    output, weights = attention.scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(output[0, 1] == 0) and torch.all(weights[0, 1] == 0)
    assert torch.all(attention.fused_attention(q, k, v, mask)[0, 1] == 0)


def test_explicit_gradients_match_pytorch():
    q, k, v, _ = random_qkv(2)
    grads = []
    for fn in (
        lambda a, b, c: attention.scaled_dot_product_attention(a, b, c)[0],
        F.scaled_dot_product_attention,
    ):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        fn(qq, kk, vv).square().sum().backward()
        grads.append((qq.grad, kk.grad, vv.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "fn", [attention.scaled_dot_product_attention, attention.fused_attention]
)
@pytest.mark.parametrize(
    "args, error, message",
    [
        (
            (torch.randn(2, 3, 4), torch.randn(2, 5, 6), torch.randn(2, 5, 2)),
            ValueError,
            "same feature size d",
        ),
        (
            (torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 6, 2)),
            ValueError,
            "come in pairs",
        ),
        (
            (torch.randn(2, 3, 4), torch.randn(3, 5, 4), torch.randn(3, 5, 2)),
            ValueError,
            "batch dimensions",
        ),
        (
            (torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2), torch.ones(3, 5)),
            TypeError,
            "mask must be a bool tensor",
        ),
        (
            (
                torch.randn(3, 4),
                torch.randn(5, 4),
                torch.randn(5, 2),
                torch.ones(3, 4, dtype=torch.bool),
            ),
            ValueError,
            r"mask of shape \(3, 4\) does not broadcast",
        ),
        (
            (
                torch.randn(3, 4),
                torch.randn(5, 4),
                torch.randn(5, 2),
                torch.ones(2, 3, 5, dtype=torch.bool),
            ),
            ValueError,
            "does not broadcast",
        ),
        (
            (torch.randn(4), torch.randn(5, 4), torch.randn(5, 2)),
            ValueError,
            r"queries must have at least 2 dimensions",
        ),
        (
            (torch.arange(12).reshape(3, 4), torch.randn(5, 4), torch.randn(5, 2)),
            TypeError,
            "queries must be a floating-point",
        ),
    ],
)
def test_bad_inputs_give_clear_errors(fn, args, error, message):
    with pytest.raises(error, match=message):
        fn(*args)


def test_masked_softmax_bad_inputs():
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        attention.masked_softmax(torch.randn(2, 3), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="does not broadcast"):
        attention.masked_softmax(torch.randn(2, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="scores must be a floating-point"):
        attention.masked_softmax(
            torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)
        )
