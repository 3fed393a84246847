"""Chapter 3: multi-head attention (equal to PyTorch's) and positional encodings."""

import math

import pytest
import torch
from torch import nn

from course_lib import attention, measure


def pair(d_model=32, num_heads=4, bias=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, num_heads, batch_first=True, bias=bias)
    ours = attention.MultiHeadAttention(d_model, num_heads, bias=bias).load_from_torch(
        theirs
    )
    return ours, theirs


def causal(n):
    return torch.tril(torch.ones(n, n, dtype=torch.bool))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", ["none", "padding", "causal", "both", "per-batch"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_self_attention_equals_pytorch(bias, masks, need_weights):
    ours, theirs = pair(bias=bias)
    x = torch.randn(3, 6, 32)
    real = attention.padding_mask(torch.tensor([6, 4, 2]), 6)
    kwargs_ours, kwargs_theirs = {}, {}
    if masks in ("padding", "both"):
        kwargs_ours["key_padding_mask"], kwargs_theirs["key_padding_mask"] = real, ~real
    if masks in ("causal", "both"):
        kwargs_ours["attn_mask"], kwargs_theirs["attn_mask"] = causal(6), ~causal(6)
    if masks == "per-batch":
        m = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(3)) > 0.4
        m[..., 0] = True
        kwargs_ours["attn_mask"] = m
        kwargs_theirs["attn_mask"] = (~m).repeat_interleave(4, dim=0)  # (B*H, n_q, n_k)
    out, weights = ours(x, need_weights=need_weights, **kwargs_ours)
    ref, ref_weights = theirs(
        x, x, x, need_weights=True, average_attn_weights=False, **kwargs_theirs
    )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if need_weights:
        assert weights.shape == (3, 4, 6, 6)
        torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-5)
    else:
        assert weights is None


@pytest.mark.parametrize("same_key_value", [True, False])
def test_cross_attention_equals_pytorch(same_key_value):
    ours, theirs = pair()
    query, memory = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    value = memory if same_key_value else torch.randn(2, 7, 32)
    real = attention.padding_mask(torch.tensor([7, 3]), 7)
    out, _ = ours(query, memory, value, key_padding_mask=real)
    ref, _ = theirs(query, memory, value, key_padding_mask=~real)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_gradients_equal_pytorch():
    ours, theirs = pair()
    x = torch.randn(2, 5, 32)
    ours(x)[0].square().sum().backward()
    theirs(x, x, x)[0].square().sum().backward()
    torch.testing.assert_close(
        ours.in_proj.weight.grad, theirs.in_proj_weight.grad, atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        ours.out_proj.weight.grad, theirs.out_proj.weight.grad, atol=1e-5, rtol=1e-4
    )


def test_dropout_only_in_training():
    torch.manual_seed(0)
    module = attention.MultiHeadAttention(16, 2, dropout=0.5)
    x = torch.randn(1, 4, 16)
    module.eval()
    torch.testing.assert_close(module(x)[0], module(x)[0])
    module.train()
    assert not torch.allclose(module(x)[0], module(x)[0])


def test_fully_masked_query_gives_the_output_bias():
    module = attention.MultiHeadAttention(8, 2)
    x = torch.randn(1, 3, 8)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    out, weights = module(x, attn_mask=mask, need_weights=True)
    assert torch.all(weights[0, :, 1] == 0)
    # zero heads -> W_o 0 + b_o
    torch.testing.assert_close(out[0, 1], module.out_proj.bias)
    torch.testing.assert_close(module(x, attn_mask=mask)[0], out)


def test_split_and_merge_heads_are_inverse_and_contiguous_per_head():
    x = torch.randn(2, 5, 12)
    heads = attention.split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    torch.testing.assert_close(heads[:, 1], x[..., 4:8])  # head 1 = features 4..7
    torch.testing.assert_close(attention.merge_heads(heads), x)
    y = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(attention.split_heads(attention.merge_heads(y), 3), y)


def test_parameter_count_is_independent_of_the_number_of_heads():
    counts = {
        h: sum(p.numel() for p in attention.MultiHeadAttention(500, h).parameters())
        for h in (1, 5, 10)
    }
    assert len(set(counts.values())) == 1 and counts[5] == 4 * 500 * 500 + 4 * 500


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(d_model=30, num_heads=4),
            ValueError,
            r"d_model \(30\) must be divisible by num_heads \(4\)",
        ),
        (
            dict(d_model=0, num_heads=1),
            ValueError,
            "d_model must be a positive integer",
        ),
    ],
)
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        attention.MultiHeadAttention(**kwargs)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda m, x: m(x, key_padding_mask=torch.ones(2, 4, dtype=torch.bool)),
            ValueError,
            r"key_padding_mask must have shape \(batch, n_k\) = \(2, 5\)",
        ),
        (
            lambda m, x: m(x, key_padding_mask=torch.ones(2, 5)),
            TypeError,
            "key_padding_mask must be a bool tensor",
        ),
        (
            lambda m, x: m(x, attn_mask=torch.ones(5, 4, dtype=torch.bool)),
            ValueError,
            r"attn_mask must have shape \(n_q, n_k\) = \(5, 5\)",
        ),
        (
            lambda m, x: m(x, attn_mask=torch.ones(5, 5, dtype=torch.int64)),
            TypeError,
            "attn_mask must be a bool tensor",
        ),
        (
            lambda m, x: m(torch.randn(2, 5, 12)),
            ValueError,
            "query must have d_model=16 features",
        ),
        (
            lambda m, x: m(x, torch.randn(2, 3, 16), torch.randn(2, 4, 16)),
            ValueError,
            "must share",
        ),
        (lambda m, x: m(x[0]), ValueError, r"query must have 3 dimensions"),
    ],
)
def test_bad_inputs(call, error, message):
    module = attention.MultiHeadAttention(16, 4)
    with pytest.raises(error, match=message):
        call(module, torch.randn(2, 5, 16))


def test_split_heads_bad_inputs():
    with pytest.raises(
        ValueError, match="num_heads must be a positive integer dividing d_model=10"
    ):
        attention.split_heads(torch.randn(1, 2, 10), 3)
    with pytest.raises(ValueError, match=r"x must have 3 dimensions"):
        attention.split_heads(torch.randn(2, 10), 2)


def test_sinusoidal_table_matches_the_formula():
    pe = attention.sinusoidal_positional_encoding(20, 8)
    for p in range(20):
        for i in range(4):
            angle = p / 10000 ** (2 * i / 8)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_pe_of_p_plus_k_is_a_fixed_linear_map_of_pe_of_p():
    d, k = 16, 5
    pe = attention.sinusoidal_positional_encoding(100, d).double()
    # least squares: one matrix M with PE[p + k] = PE[p] M for every p
    M = torch.linalg.lstsq(pe[:-k], pe[k:]).solution
    torch.testing.assert_close(pe[:-k] @ M, pe[k:], atol=1e-5, rtol=0)  # float32 table
    # and it is the block rotation by the angle k * frequency
    frequency = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    block = torch.zeros(d, d, dtype=torch.float64)
    for i, w in enumerate(frequency):
        c, s = math.cos(k * w), math.sin(k * w)
        block[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[c, -s], [s, c]], dtype=torch.float64
        )
    torch.testing.assert_close(pe[:-k] @ block, pe[k:], atol=1e-5, rtol=0)


def test_positional_encoding_is_a_buffer_that_moves_with_the_module():
    module = attention.SinusoidalPositionalEncoding(8, max_len=10)
    assert "pe" in dict(module.named_buffers()) and not list(module.parameters())
    assert "pe" not in module.state_dict()
    module = module.to(torch.float64)
    assert module.pe.dtype == torch.float64
    x = torch.zeros(2, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(
        module(x)[0], attention.sinusoidal_positional_encoding(4, 8).double()
    )


def test_positional_encoding_bad_inputs():
    module = attention.SinusoidalPositionalEncoding(8, max_len=10)
    with pytest.raises(
        ValueError, match=r"reaches position 10 but the positional table has only 10"
    ):
        module(torch.zeros(1, 11, 8))
    with pytest.raises(ValueError, match=r"reaches position 10 .* only 10 \(max_len\)"):
        module(torch.zeros(1, 1, 8), start=10)
    with pytest.raises(ValueError, match="d_model=8"):
        module(torch.zeros(1, 3, 6))
    with pytest.raises(ValueError, match="d_model must be an even integer"):
        attention.sinusoidal_positional_encoding(4, 7)
    learned = attention.LearnedPositionalEmbedding(8, max_len=4)
    assert learned(torch.zeros(1, 4, 8)).shape == (1, 4, 8)
    with pytest.raises(ValueError, match="does not fit the table"):
        learned(torch.zeros(1, 5, 8))


def test_peak_memory_counts_what_is_alive_at_once():
    assert measure.peak_memory(lambda: torch.zeros(1000)) == 4000

    def two_in_sequence():
        a = torch.ones(1000)
        del a
        b = torch.ones(1000)
        return b

    def two_at_once():
        a, b = torch.ones(1000), torch.ones(1000)
        return a + b

    assert measure.peak_memory(two_in_sequence) == 4000
    assert measure.peak_memory(two_at_once) == 12000
    x = torch.randn(100, 100)
    assert measure.peak_memory(lambda: x.view(-1)) == 0  # a view allocates nothing
    n = 64
    q = torch.randn(1, 1, n, 8)
    explicit = measure.peak_memory(
        lambda: attention.scaled_dot_product_attention(q, q, q)
    )
    assert explicit >= 2 * n * n * 4  # scores and weights


def test_mha_vs_torch_times_both_modules_in_both_cases():
    from course_lib import measure

    rows = measure.mha_vs_torch(
        batch=2, tokens=8, d_model=16, num_heads=2, rounds=1, min_run_time=0.01
    )
    assert [r["case"] for r in rows] == ["no mask", "key padding mask"]
    for r in rows:
        assert r["course_lib_ms"] > 0 and r["torch_ms"] > 0
        assert r["ratio"] == pytest.approx(r["course_lib_ms"] / r["torch_ms"])
