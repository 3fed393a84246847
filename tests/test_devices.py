"""Every model's forward and backward pass on PyTorch's ``meta`` device.

A meta tensor has a shape and a dtype but no data. Running a model on it catches, with
no GPU, the two faults that only show up on one:

- a tensor created inside the library on the default device (the CPU) that meets the
  model's tensors: "Expected all tensors to be on the same device";
- a value-reading call (``.item()``, ``bool(t.all())``, ``int(t)``) inside the forward
  pass, which on a GPU stops it and waits for the host at every step: on meta it raises,
  since there is no value to read.
"""

import pytest
import torch
import torch.nn.functional as F

from course_lib import attention, cnn, detr, moco
from tests import tiny_models

META = torch.device("meta")


def backward_through(output):
    output.float().sum().backward()


def test_multi_head_attention_with_a_padding_mask():
    mha = attention.MultiHeadAttention(16, 4).to(META)
    x = torch.randn(2, 5, 16, device=META, requires_grad=True)
    mask = torch.ones(2, 5, dtype=torch.bool, device=META)
    out, _ = mha(x, x, x, key_padding_mask=mask)
    backward_through(out)
    assert out.shape == (2, 5, 16) and out.device == META


def test_fused_attention_reads_no_value():
    q = torch.randn(2, 3, 4, 8, device=META)
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool, device=META)
    assert attention.fused_attention(q, q, q, mask).device == META


def test_seq2seq_transformer():
    model = tiny_models.seq2seq().to(META)
    src = torch.zeros(2, 6, dtype=torch.long, device=META)
    tgt = torch.zeros(2, 5, dtype=torch.long, device=META)
    logits = model(src, tgt)
    backward_through(logits)
    assert logits.shape == (2, 5, 13)


def test_vision_transformer():
    model = tiny_models.vision_transformer().to(META)
    logits = model(torch.randn(3, 1, 16, 16, device=META))
    backward_through(logits)
    assert logits.shape == (3, 10)


def test_detr():
    model = tiny_models.detr_model().to(META)
    out = model(torch.randn(2, 1, 32, 32, device=META))
    backward_through(out["pred_logits"] + out["pred_boxes"].sum())
    assert out["pred_boxes"].shape == (2, 5, 4)


@pytest.mark.parametrize("encoder", ["small-cnn", "resnet18"])
def test_moco_step_with_its_queue(encoder):
    def norm(channels):
        return moco.SplitBatchNorm(channels, 2)

    if encoder == "resnet18":
        backbone, features, channels = (
            cnn.resnet18_cifar(num_classes=0, norm=norm),
            512,
            3,
        )
    else:
        backbone, features, channels = (
            cnn.SmallCNN(1, widths=(8, 16), num_classes=0, norm=norm),
            16,
            1,
        )
    model = moco.MoCo(
        moco.EncoderWithHead(backbone, features, dim=8), dim=8, queue_size=16
    ).to(META)
    images = torch.randn(4, channels, 16, 16, device=META)
    loss, logged = model(images, images)
    backward_through(loss)
    assert logged["pretext_accuracy"].device == META  # a tensor, read by fit in batches


def test_the_views_are_made_on_the_images_device():
    grey = torch.rand(4, 1, 16, 16, device=META)
    colour = torch.rand(4, 3, 16, 16, device=META)
    assert moco.augment(grey).device == META
    assert moco.augment_colour(colour).device == META


def test_meta_catches_what_it_claims_to():
    """The premise of this file: a CPU tensor meeting a meta one, and a value read, fail."""
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.ones(3, device=META) + torch.ones(3)
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(torch.ones(3, device=META).all())
    with pytest.raises((RuntimeError, NotImplementedError)):
        F.softmax(torch.ones(3, device=META), 0).item()


# -- mixed precision ------------------------------------------------------------------
# On CUDA, train.fit runs every loss under torch.autocast. The CPU's autocast (bfloat16)
# applies the same casting rules, so a dtype mismatch inside the library (a float32
# buffer written with half-precision keys, a mask constant that overflows) shows up here.

AUTOCAST = dict(device_type="cpu", dtype=torch.bfloat16)


def test_seq2seq_transformer_trains_under_autocast():
    model = tiny_models.seq2seq()
    config = model.config
    src = torch.randint(3, 11, (2, 6))
    src[1, 4:] = config.pad_id
    tgt = torch.randint(3, 13, (2, 5))
    with torch.autocast(**AUTOCAST):
        logits = model(src, tgt)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten())
    loss.backward()
    assert torch.isfinite(loss) and logits.dtype == torch.bfloat16
    with torch.autocast(**AUTOCAST):
        assert model.greedy_decode(src, max_len=5).shape[0] == 2


def test_detr_and_its_set_loss_under_autocast():
    model, criterion = tiny_models.detr_model(), detr.SetCriterion(num_classes=10)
    targets = [
        {
            "labels": torch.tensor([1, 2]),
            "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]]),
        },
        {"labels": torch.tensor([], dtype=torch.long), "boxes": torch.zeros(0, 4)},
    ]
    with torch.autocast(**AUTOCAST):
        loss, logged = criterion(model(torch.rand(2, 1, 32, 32)), targets)
    loss.backward()
    assert torch.isfinite(loss) and set(logged) >= {"loss_ce", "loss_bbox", "loss_giou"}


def test_moco_fills_its_float32_queue_under_autocast():
    model = tiny_models.moco_model()
    images = torch.rand(4, 1, 16, 16)
    with torch.autocast(**AUTOCAST):
        loss, _ = model(moco.augment(images), moco.augment(images))
    loss.backward()
    assert model.queue.dtype == torch.float32 and int(model.queue_pointer) == 8


def test_vit_trains_under_autocast():
    model = tiny_models.vision_transformer()
    with torch.autocast(**AUTOCAST):
        loss = F.cross_entropy(model(torch.rand(3, 1, 16, 16)), torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
