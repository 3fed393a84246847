"""Chapter 7: MoCo's pieces against manual formulas, scikit-learn and brute force."""

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from course_lib import cnn, data, moco
from course_lib.cnn import SmallCNN


def tiny_moco(queue_size=6, dim=4, **kwargs):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, dim))
    return moco.MoCo(encoder, dim=dim, queue_size=queue_size, **kwargs)


# -- the loss ---------------------------------------------------------------


def test_info_nce_logits_match_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    queue = F.normalize(torch.randn(7, 5, generator=g), dim=1)
    logits = moco.info_nce_logits(q, k, queue, temperature=0.2)
    assert logits.shape == (3, 8)
    for i in range(3):
        qi = q[i] / q[i].norm()
        assert torch.isclose(logits[i, 0], qi @ (k[i] / k[i].norm()) / 0.2, atol=1e-6)
        for j in range(7):
            assert torch.isclose(logits[i, 1 + j], qi @ queue[j] / 0.2, atol=1e-6)


def test_info_nce_loss_is_minus_log_softmax_of_the_positive():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    queue = F.normalize(torch.randn(10, 6, generator=g), dim=1)
    logits = moco.info_nce_logits(q, k, queue, 0.1)
    loss = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    manual = -(logits[:, 0].exp() / logits.exp().sum(1)).log().mean()
    assert torch.isclose(loss, manual, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(queue=torch.randn(7, 3)), "queue's feature dimension"),
        (dict(k=torch.randn(2, 5)), "same shape"),
        (dict(temperature=0.0), "temperature"),
        (dict(q=torch.randn(3, 5, 1)), "q"),
    ],
)
def test_info_nce_bad_inputs_name_the_argument(kwargs, message):
    args = dict(
        q=torch.randn(3, 5),
        k=torch.randn(3, 5),
        queue=torch.randn(7, 5),
        temperature=0.1,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        moco.info_nce_logits(**args)


# -- momentum and the queue --------------------------------------------------


@pytest.mark.parametrize("m", [0.0, 0.9, 0.999, 1.0])
def test_momentum_update_matches_the_formula(m):
    torch.manual_seed(0)
    encoder_q, encoder_k = nn.Linear(3, 2), nn.Linear(3, 2)
    before_q = [p.detach().clone() for p in encoder_q.parameters()]
    before_k = [p.detach().clone() for p in encoder_k.parameters()]
    moco.momentum_update(encoder_q, encoder_k, m)
    for pq, pk, q0, k0 in zip(
        encoder_q.parameters(), encoder_k.parameters(), before_q, before_k
    ):
        assert torch.allclose(pk, m * k0 + (1 - m) * q0, atol=1e-7)
        assert torch.equal(pq.detach(), q0)
        assert pk.grad_fn is None


def test_momentum_update_rejects_different_architectures_and_bad_m():
    with pytest.raises(ValueError, match="same architecture"):
        moco.momentum_update(nn.Linear(3, 2), nn.Linear(3, 4), 0.9)
    with pytest.raises(ValueError, match="m must be in"):
        moco.momentum_update(nn.Linear(3, 2), nn.Linear(3, 2), 1.5)


def test_queue_wraps_around_and_keeps_the_newest_keys():
    model = tiny_moco(queue_size=6)
    batches = [F.normalize(torch.randn(4, 4), dim=1) for _ in range(3)]
    model.enqueue(batches[0])
    assert torch.equal(model.queue[:4], batches[0]) and int(model.queue_pointer) == 4
    model.enqueue(batches[1])  # slots 4, 5, then wraps to 0, 1
    assert torch.equal(model.queue[4:], batches[1][:2])
    assert torch.equal(model.queue[:2], batches[1][2:])
    assert torch.equal(model.queue[2:4], batches[0][2:])
    assert int(model.queue_pointer) == 2
    # more keys than slots: the newest 6 stay
    big = F.normalize(torch.randn(8, 4), dim=1)
    model.enqueue(big)
    assert {tuple(r) for r in model.queue.tolist()} == {
        tuple(r) for r in big[2:].tolist()
    }
    assert int(model.queue_pointer) == (2 + 8) % 6


def test_enqueue_rejects_keys_of_the_wrong_dimension():
    model = tiny_moco(dim=4)
    with pytest.raises(ValueError, match="dimension 4"):
        model.enqueue(torch.randn(2, 3))


def test_moco_rejects_an_encoder_whose_output_does_not_fit_the_queue():
    torch.manual_seed(0)
    model = moco.MoCo(
        nn.Sequential(nn.Flatten(), nn.Linear(16, 5)), dim=4, queue_size=8
    )
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="queue's feature dimension"):
        model(x, x)


def test_one_moco_step_trains_only_the_query_encoder_and_fills_the_queue():
    model = tiny_moco(queue_size=8, momentum=0.9)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.1)
    x = torch.rand(4, 1, 4, 4)
    k_before = [p.clone() for p in model.encoder_k.parameters()]
    q_before = [p.detach().clone() for p in model.encoder_q.parameters()]
    loss, info = model(x, x + 0.01)
    loss.backward()
    assert all(p.grad is None for p in model.encoder_k.parameters())
    optimizer.step()
    assert 0 <= info["pretext_accuracy"] <= 1
    assert int(model.queue_pointer) == 0  # symmetric: 2 x 4 keys in a queue of 8
    assert torch.allclose(model.queue.norm(dim=1), torch.ones(8), atol=1e-5)
    # the first momentum step moved encoder_k 10 % of the way to encoder_q's old weights
    for pk, k0, q0 in zip(model.encoder_k.parameters(), k_before, q_before):
        assert torch.allclose(pk, 0.9 * k0 + 0.1 * q0, atol=1e-6)


# -- BatchNorm on one device --------------------------------------------------


def test_batch_shuffle_and_unshuffle_are_inverses():
    x = torch.arange(10.0)[:, None].repeat(1, 3)
    shuffled, undo = moco.batch_shuffle(x, torch.Generator().manual_seed(0))
    assert not torch.equal(shuffled, x)
    assert torch.equal(moco.batch_unshuffle(shuffled, undo), x)


def test_split_batchnorm_normalises_each_sub_batch_with_its_own_statistics():
    torch.manual_seed(0)
    bn = moco.SplitBatchNorm(3, num_splits=4)
    x = torch.randn(8, 3, 5, 5) * torch.arange(1.0, 9.0).view(8, 1, 1, 1)
    out = bn(x)
    sub_batches = [x[2 * j : 2 * j + 2] for j in range(4)]  # consecutive slices
    for j, sub_batch in enumerate(sub_batches):
        reference = F.batch_norm(sub_batch, None, None, training=True, eps=bn.eps)
        assert torch.allclose(out[2 * j : 2 * j + 2], reference, atol=1e-5)
    # running statistics: the average over sub-batches of what one BatchNorm would track
    # (momentum 0.1 from mean 0 and variance 1; the variance unbiased, as BatchNorm's)
    expected_mean = 0.1 * torch.stack(
        [s.mean(dim=(0, 2, 3)) for s in sub_batches]
    ).mean(0)
    expected_var = 0.9 + 0.1 * torch.stack(
        [s.transpose(0, 1).flatten(1).var(dim=1) for s in sub_batches]
    ).mean(0)
    assert torch.allclose(bn.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(bn.running_var, expected_var, atol=1e-5)
    bn.eval()
    assert torch.allclose(
        bn(x),
        F.batch_norm(
            x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
        ),
        atol=1e-6,
    )


def test_split_batchnorm_gives_the_same_in_channels_last_memory_and_keeps_it():
    torch.manual_seed(0)
    bn = moco.SplitBatchNorm(6, num_splits=4)
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    bn_last = copy.deepcopy(bn).to(memory_format=torch.channels_last)
    x = torch.randn(8, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    x_last = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    bn, bn_last = bn.double(), bn_last.double()
    out, out_last = bn(x), bn_last(x_last)
    assert out_last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_last, out)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_last.backward(grad)
    torch.testing.assert_close(x_last.grad, x.grad)
    torch.testing.assert_close(bn_last.weight.grad, bn.weight.grad)
    torch.testing.assert_close(bn_last.running_var, bn.running_var)


# -- judging features -----------------------------------------------------------


def test_knn_predict_agrees_with_scikit_learn_when_the_weights_cannot_change_the_vote():
    # three well-separated clusters: all k neighbours of a test point share its cluster's label,
    # so the exp(sim / T) weighting cannot change the majority
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, 8, generator=g), dim=1) * 10
    bank = torch.cat([c + 0.3 * torch.randn(20, 8, generator=g) for c in centres])
    labels = torch.arange(3).repeat_interleave(20)
    queries = torch.cat([c + 0.3 * torch.randn(5, 8, generator=g) for c in centres])
    bank, queries = F.normalize(bank, dim=1), F.normalize(queries, dim=1)
    ours = moco.knn_predict(queries, bank, labels, num_classes=3, k=7)
    sklearn = KNeighborsClassifier(n_neighbors=7, metric="cosine").fit(
        bank.numpy(), labels.numpy()
    )
    assert np.array_equal(ours.numpy(), sklearn.predict(queries.numpy()))


def test_knn_weighting_follows_exp_similarity_over_temperature():
    # one neighbour of class 0 very close, two of class 1 further: the weights decide
    bank = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    # e^10 vs 2 e^6
    sharp = moco.knn_predict(query, bank, labels, 2, k=3, temperature=0.1)
    flat = moco.knn_predict(query, bank, labels, 2, k=3, temperature=10.0)  # ~1 vs ~2
    assert sharp.item() == 0 and flat.item() == 1


def test_knn_predict_bad_inputs():
    with pytest.raises(ValueError, match="same dimension"):
        moco.knn_predict(
            torch.randn(2, 3), torch.randn(5, 4), torch.zeros(5, dtype=torch.long), 2
        )
    with pytest.raises(ValueError, match="one label per bank feature"):
        moco.knn_predict(
            torch.randn(2, 3), torch.randn(5, 3), torch.zeros(4, dtype=torch.long), 2
        )


def test_extract_features_are_normalised_and_restore_training_mode():
    encoder = moco.EncoderWithHead(SmallCNN(1, 0, widths=(4, 8)), feature_dim=8, dim=5)
    encoder.train()
    feats = moco.extract_features(encoder, torch.rand(7, 1, 8, 8), batch_size=3)
    assert feats.shape == (7, 5) and encoder.training
    assert torch.allclose(feats.norm(dim=1), torch.ones(7), atol=1e-5)


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2).repeat(50)
    x = torch.randn(100, 4, generator=g) + 4 * y[:, None]
    assert moco.linear_probe(x, y, x, y) == 1.0


# -- views and data ----------------------------------------------------------------


def test_augment_keeps_shape_and_range_and_is_random():
    images = data.load_digits_images(16).x_train[:8]
    g = torch.Generator().manual_seed(0)
    a, b = moco.augment(images, g), moco.augment(images, g)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="images"):
        moco.augment(images[0])


def test_shifted_digits_move_the_ink_around():
    split = data.shifted_digits(n_train=200, n_test=50, seed=0)
    assert split.x_train.shape == (200, 1, 32, 32) and split.y_test.shape == (50,)
    centres = []
    for image in split.x_train[:50, 0]:
        ink = (image > 0.5).nonzero().float()
        centres.append(ink.mean(0))
    assert torch.stack(centres).std(0).min() > 2  # digits are not all in one place


def test_cifar10_loader_reads_the_python_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        with open(folder / name, "wb") as file:
            pickle.dump(batch, file)
    split = data.load_cifar10(str(tmp_path))
    assert split.x_train.shape == (20, 3, 32, 32) and split.x_test.shape == (
        3,
        3,
        32,
        32,
    )
    with open(folder / "test_batch", "rb") as file:
        raw = pickle.load(file)
    # channel-major rows: the first 1024 bytes are the red plane
    assert torch.allclose(
        split.x_test[0, 0].flatten() * 255,
        torch.as_tensor(raw[b"data"][0, :1024]).float(),
    )
    assert split.y_test.tolist() == raw[b"labels"]
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_cifar10(str(tmp_path / "missing"))


# -- the full profile's colour views (MoCo v2's CIFAR-10 recipe) --------------------------


def test_colour_views_with_every_random_part_switched_off_are_the_images():
    images = torch.rand(6, 3, 16, 16)
    plain = dict(scale=(1, 1), ratio=(1, 1), flip=0.0, grayscale=0.0)
    assert torch.allclose(
        moco.augment_colour(images, jitter=0.0, **plain), images, atol=1e-6
    )
    no_strength = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    assert torch.allclose(
        moco.augment_colour(images, jitter=1.0, **plain, **no_strength),
        images,
        atol=1e-5,
    )
    flipped = moco.augment_colour(images, jitter=0.0, **{**plain, "flip": 1.0})
    assert torch.allclose(flipped, images.flip(-1), atol=1e-6)


def test_colour_jitter_matches_torchvision_at_a_fixed_strength():
    """brightness, contrast and saturation with the range pinned to one factor (1 + s)."""
    from torchvision.transforms.v2 import functional as TF

    images = torch.rand(4, 3, 16, 16)
    plain = dict(
        scale=(1, 1), ratio=(1, 1), flip=0.0, grayscale=0.0, jitter=1.0, hue=0.0
    )
    for name, adjust in [
        ("brightness", TF.adjust_brightness),
        ("contrast", TF.adjust_contrast),
        ("saturation", TF.adjust_saturation),
    ]:
        others = {k: 0.0 for k in ("brightness", "contrast", "saturation") if k != name}
        ours = moco.augment_colour(images, **plain, **others, **{name: 0.0})
        assert torch.allclose(ours, images, atol=1e-5)
        # strength s draws a factor from [1 - s, 1 + s]: compare each image with its own factor
        g = torch.Generator().manual_seed(3)
        ours = moco.augment_colour(images, g, **plain, **others, **{name: 0.5})
        factors = []
        for image, view in zip(images, ours):
            candidates = torch.linspace(0.5, 1.5, 1001)
            errors = torch.stack(
                [(adjust(image, float(f)) - view).abs().max() for f in candidates]
            )
            factors.append(float(candidates[errors.argmin()]))
            assert errors.min() < 2e-3, (name, errors.min())
        assert len(set(round(f, 2) for f in factors)) > 1, (
            "each image draws its own factor"
        )


def test_hue_shift_per_image_equals_torchvisions_adjust_hue():
    from torchvision.transforms.v2 import functional as TF

    images = torch.rand(6, 3, 8, 8)
    images[0] = 0.5  # grey: no hue at all
    turns = torch.tensor([0.05, -0.1, 0.5, 0.0, 0.3, -0.45])
    ours = moco._shift_hue(images, turns)
    for image, shifted, turn in zip(images, ours, turns):
        torch.testing.assert_close(
            shifted, TF.adjust_hue(image, float(turn)), atol=1e-5, rtol=0
        )


def test_colour_views_are_drawn_per_image_and_grey_about_a_fifth_of_the_time():
    images = torch.rand(1, 3, 16, 16).expand(2000, -1, -1, -1).contiguous()
    g = torch.Generator().manual_seed(0)
    views = moco.augment_colour(images, g)
    assert views.shape == images.shape and 0 <= views.min() and views.max() <= 1
    assert (views[1:] - views[:1]).abs().amax((1, 2, 3)).min() > 0  # no two alike
    grey = (views[:, 0] - views[:, 1]).abs().amax((1, 2)) < 1e-6
    assert 0.16 < grey.float().mean() < 0.24
    with pytest.raises(ValueError, match="RGB"):
        moco.augment_colour(torch.rand(2, 1, 8, 8))


def test_resnet18_cifar_keeps_the_resolution_at_the_stem():
    model = cnn.resnet18_cifar(num_classes=0, norm=lambda c: moco.SplitBatchNorm(c, 2))
    assert isinstance(model.maxpool, torch.nn.Identity) and model.conv1.stride == (1, 1)
    assert model(torch.rand(4, 3, 32, 32)).shape == (4, 512)
    assert cnn.resnet18_cifar(num_classes=10)(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_knn_in_chunks_equals_knn_at_once():
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(300, 8, generator=g), dim=1)
    labels = torch.randint(0, 5, (300,), generator=g)
    queries = F.normalize(torch.randn(70, 8, generator=g), dim=1)
    at_once = moco.knn_predict(queries, bank, labels, 5, k=10, chunk_size=1000)
    assert torch.equal(
        moco.knn_predict(queries, bank, labels, 5, k=10, chunk_size=16), at_once
    )


def test_cifar10_download_failure_says_what_to_do(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        RuntimeError, match="could not download CIFAR-10.*Without internet"
    ):
        data.load_cifar10(str(tmp_path), download=True)
