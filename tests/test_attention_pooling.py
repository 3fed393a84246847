"""Chapter 1: kernels, Nadaraya--Watson pooling, the parametric version."""

import math

import numpy as np
import pytest
import torch

from course_lib import attention


def nadaraya_watson_numpy(queries, keys, values, h, kernel):
    """Independent reference: the textbook formula, one query at a time, in NumPy."""
    out = []
    for q in queries:
        weights = np.array([kernel((q - k) / h) for k in keys])
        out.append(weights @ values / weights.sum() if weights.sum() > 0 else 0.0)
    return np.array(out)


NUMPY_KERNELS = {
    "gaussian": lambda u: math.exp(-u * u / 2),
    "boxcar": lambda u: 1.0 if abs(u) <= 1 else 0.0,
    "epanechnikov": lambda u: 0.75 * (1 - u * u) if abs(u) <= 1 else 0.0,
}


@pytest.mark.parametrize("name", sorted(NUMPY_KERNELS))
@pytest.mark.parametrize("h", [0.3, 1.0, 2.5])
def test_nadaraya_watson_matches_the_formula(name, h):
    g = torch.Generator().manual_seed(0)
    keys, values = (
        torch.rand(30, generator=g, dtype=torch.float64) * 5,
        torch.randn(30, generator=g, dtype=torch.float64),
    )
    queries = torch.rand(12, generator=g, dtype=torch.float64) * 5
    predictions, weights = attention.nadaraya_watson(
        queries, keys, values, h, kernel=name
    )
    expected = nadaraya_watson_numpy(
        queries.numpy(), keys.numpy(), values.numpy(), h, NUMPY_KERNELS[name]
    )
    np.testing.assert_allclose(predictions.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert weights.shape == (12, 30)
    assert (weights >= 0).all()
    reached = weights.sum(-1) > 0
    torch.testing.assert_close(
        weights.sum(-1)[reached], torch.ones(int(reached.sum()), dtype=torch.float64)
    )


def test_kernels_match_their_definitions():
    u = torch.linspace(-2, 2, 81, dtype=torch.float64)
    for name, fn in NUMPY_KERNELS.items():
        np.testing.assert_allclose(
            attention.KERNELS[name](u).numpy(), [fn(x) for x in u.tolist()]
        )


def test_each_kernel_integrates_to_one():
    u = torch.linspace(-10, 10, 200001, dtype=torch.float64)
    for name, kernel in attention.KERNELS.items():
        area = torch.trapezoid(kernel(u), u).item()
        target = (
            math.sqrt(2 * math.pi)
            if name == "gaussian"
            else (2.0 if name == "boxcar" else 1.0)
        )
        assert area == pytest.approx(target, rel=1e-3), name


def test_vector_values_are_pooled_per_feature():
    g = torch.Generator().manual_seed(1)
    keys, queries = torch.rand(8, generator=g), torch.rand(3, generator=g)
    values = torch.randn(8, 4, generator=g)
    predictions, weights = attention.nadaraya_watson(queries, keys, values, 0.5)
    assert predictions.shape == (3, 4)
    for j in range(4):
        torch.testing.assert_close(
            predictions[:, j],
            attention.nadaraya_watson(queries, keys, values[:, j], 0.5)[0],
        )


def test_gaussian_pooling_does_not_underflow_for_tiny_bandwidths():
    keys = torch.tensor([0.0, 1.0, 2.0])
    values = torch.tensor([10.0, 20.0, 30.0])
    predictions, weights = attention.nadaraya_watson(
        torch.tensor([0.9, 5.0]), keys, values, 1e-3
    )
    assert torch.isfinite(predictions).all()
    # the nearest key wins
    torch.testing.assert_close(predictions, torch.tensor([20.0, 30.0]))


def test_compact_kernel_with_no_key_in_reach_gives_zero_weights_not_nan():
    predictions, weights = attention.nadaraya_watson(
        torch.tensor([10.0]),
        torch.tensor([0.0, 1.0]),
        torch.tensor([1.0, 2.0]),
        0.5,
        kernel="boxcar",
    )
    assert torch.equal(weights, torch.zeros(1, 2)) and predictions.item() == 0.0


def test_large_bandwidth_is_average_pooling():
    g = torch.Generator().manual_seed(2)
    keys, values = torch.rand(20, generator=g), torch.randn(20, generator=g)
    predictions, _ = attention.nadaraya_watson(
        torch.rand(5, generator=g), keys, values, 1e6
    )
    torch.testing.assert_close(predictions, values.mean().expand(5))


def test_parametric_equals_nonparametric_with_bandwidth_one_over_w():
    g = torch.Generator().manual_seed(3)
    keys, values, queries = (
        torch.rand(15, generator=g) * 5,
        torch.randn(15, generator=g),
        torch.rand(6, generator=g) * 5,
    )
    model = attention.ParametricNadarayaWatson(init_w=2.5)
    with torch.no_grad():
        torch.testing.assert_close(
            model(queries, keys, values),
            attention.nadaraya_watson(queries, keys, values, 1 / 2.5)[0],
        )
    assert model.attention_weights.shape == (6, 15)


def test_exclude_self_gives_each_training_point_zero_weight_on_itself():
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(10, generator=g), torch.randn(10, generator=g)
    model = attention.ParametricNadarayaWatson(init_w=50.0)
    prediction = model(x, x, y, exclude_self=True)
    assert torch.equal(torch.diagonal(model.attention_weights), torch.zeros(10))
    torch.testing.assert_close(model.attention_weights.sum(-1), torch.ones(10))
    prediction.sum().backward()
    assert torch.isfinite(model.w.grad)
    with pytest.raises(ValueError, match="exclude_self"):
        model(x[:3], x, y, exclude_self=True)


@pytest.mark.parametrize(
    "args, error, message",
    [
        (
            (torch.rand(3, 1), torch.rand(4), torch.rand(4)),
            ValueError,
            r"queries must have 1 dimensions \(n_q,\)",
        ),
        (
            (torch.rand(3), torch.rand(4, 2), torch.rand(4)),
            ValueError,
            r"keys must have 1 dimensions \(n_k,\)",
        ),
        ((torch.rand(3), torch.rand(4), torch.rand(5)), ValueError, "one row per key"),
        (
            (torch.rand(3), torch.rand(4), [1, 2, 3, 4]),
            TypeError,
            "values must be a torch.Tensor",
        ),
        (
            (torch.arange(3), torch.rand(4), torch.rand(4)),
            TypeError,
            "queries must be a floating-point",
        ),
    ],
)
def test_bad_inputs_name_the_argument(args, error, message):
    with pytest.raises(error, match=message):
        attention.nadaraya_watson(*args)
    with pytest.raises(error, match=message):
        attention.ParametricNadarayaWatson()(*args)


def test_bad_bandwidth_and_kernel():
    q = torch.rand(3)
    with pytest.raises(ValueError, match="bandwidth must be one positive number"):
        attention.nadaraya_watson(q, q, q, bandwidth=0.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        attention.nadaraya_watson(q, q, q, kernel="cosine")
    with pytest.raises(TypeError, match="kernel must be a name or a function"):
        attention.nadaraya_watson(q, q, q, kernel=3)
