"""Offline data generators."""

import pytest
import torch

from course_lib import data


def test_regression_data_is_seeded_and_held_out():
    a, b = data.make_regression_1d(seed=3), data.make_regression_1d(seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = data.make_regression_1d(seed=4)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (50,) and a.x_test.shape == (500,)
    assert not set(a.x_train.tolist()) & set(a.x_test.tolist())
    assert torch.all(a.x_train[1:] >= a.x_train[:-1])


def test_regression_noise_has_the_requested_spread():
    ds = data.make_regression_1d(n_train=20000, n_test=10, noise_std=0.5, seed=0)
    residual = ds.y_train - data.true_regression_function(ds.x_train)
    assert residual.std().item() == pytest.approx(0.5, rel=0.03)
    assert abs(residual.mean().item()) < 0.02


def test_regression_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_train"):
        data.make_regression_1d(n_train=0)
    with pytest.raises(ValueError, match="noise_std"):
        data.make_regression_1d(noise_std=-1)


def test_face_scene():
    image, face = data.make_face_scene(32, seed=0)
    assert image.shape == face.shape == (32, 32)
    assert 0 <= image.min() and image.max() <= 1
    assert image[face].mean() < image[~face].mean()  # the face is where the ink is
    with pytest.raises(ValueError, match="size"):
        data.make_face_scene(8)
