"""The bad inputs a probe found slipping through: each gets a clear error naming the
argument (or the right behaviour), never a silent wrong result or a raw error from
three calls deeper."""

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import attention, cnn, data, detr, moco, transformer, vit
from tests import tiny_models


def test_a_string_is_not_a_list_of_sentences():
    task = data.make_number_translation(
        n_train=50, n_test=10, n_valid=0, max_number=1000
    )
    with pytest.raises(
        TypeError, match=r"list of sentences; got one string.*\[sentence\]"
    ):
        task.encode_source("forty-two")
    with pytest.raises(TypeError, match="list of sentences"):
        task.encode_target("quarante-deux")
    assert task.encode_source(["forty-two"]).shape[0] == 1


def detection_outputs(batch=1, queries=3, num_classes=10):
    g = torch.Generator().manual_seed(0)
    return {
        "pred_logits": torch.randn(batch, queries, num_classes + 1, generator=g),
        "pred_boxes": torch.rand(batch, queries, 4, generator=g) * 0.5 + 0.25,
    }


@pytest.mark.parametrize("label", [10, 11, -1])
def test_set_criterion_refuses_labels_outside_the_classes(label):
    criterion = detr.SetCriterion(num_classes=10)
    target = [
        {"labels": torch.tensor([label]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    ]
    with pytest.raises(ValueError, match=r"labels must lie in 0 \.\. 9.*'no object'"):
        criterion(detection_outputs(), target)


def test_set_criterion_reports_non_finite_predictions_as_a_divergence():
    outputs = detection_outputs()
    outputs["pred_logits"][0, 0, 0] = float("nan")
    target = [
        {"labels": torch.tensor([3]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    ]
    with pytest.raises(FloatingPointError, match="training diverged.*learning rate"):
        detr.SetCriterion(num_classes=10)(outputs, target)


def tiny_translator():
    return tiny_models.seq2seq().eval()


def test_beam_search_on_an_empty_batch_says_so():
    with pytest.raises(ValueError, match="no sentence"):
        tiny_translator().beam_search(torch.zeros(0, 4, dtype=torch.long))


@pytest.mark.parametrize("size", [np.int64(5), torch.tensor(5), 5])
def test_integer_like_sizes_are_accepted(size):
    lengths = torch.tensor([2, 5])
    assert attention.padding_mask(lengths, size).shape == (2, 5)
    assert transformer.causal_mask(size).shape == (5, 5)
    assert attention.sinusoidal_positional_encoding(size, 4).shape == (5, 4)
    assert (
        tiny_translator().beam_search(torch.full((1, 3), 5), beam_size=size).shape[0]
        == 1
    )


def test_padding_mask_takes_lengths_max_directly():
    lengths = torch.tensor([3, 1, 4])
    assert attention.padding_mask(lengths, lengths.max()).shape == (3, 4)
    with pytest.raises(TypeError, match="max_len must be a positive integer"):
        attention.padding_mask(lengths, 4.5)


def test_mixed_float_dtypes_get_a_clear_error():
    q = torch.randn(2, 3, 8)
    with pytest.raises(TypeError, match="one dtype.*float32.*float64"):
        attention.scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="one dtype"):
        attention.fused_attention(q, q, q.double())
    with pytest.raises(TypeError, match=r"one dtype.*\.to\(torch.float32\)"):
        attention.MultiHeadAttention(8, 2)(q.double())


def test_load_from_torch_refuses_a_bias_mismatch():
    theirs = nn.MultiheadAttention(8, 2, batch_first=True, bias=False)
    with pytest.raises(ValueError, match="has no biases.*bias=False"):
        attention.MultiHeadAttention(8, 2, bias=True).load_from_torch(theirs)
    theirs = nn.MultiheadAttention(8, 2, batch_first=True)
    with pytest.raises(ValueError, match="has biases.*bias=True"):
        attention.MultiHeadAttention(8, 2, bias=False).load_from_torch(theirs)


def test_augment_refuses_bytes_and_0_to_255_floats():
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"floats in \[0, 1\].*/ 255"):
        moco.augment(images)
    with pytest.raises(ValueError, match=r"in \[0, 1\].*divide 0-255 images by 255"):
        moco.augment(images.float())
    with pytest.raises(ValueError, match="divide"):
        moco.augment_colour(torch.full((2, 3, 8, 8), 200.0))


def test_canvases_refuse_a_minimum_size_above_the_maximum():
    digits = torch.rand(5, 8, 8)
    with pytest.raises(ValueError, match="min_size <= max_size"):
        data.make_digit_canvases(2, digits, torch.arange(5), min_size=20, max_size=10)


def test_attention_rollout_of_maps_taken_without_weights_says_what_to_do():
    model = tiny_models.vision_transformer(image_size=8, num_layers=2)
    with torch.no_grad():
        model(torch.rand(1, 1, 8, 8))  # need_weights=False
    with pytest.raises(ValueError, match="need_weights=True"):
        vit.attention_rollout(model.attention_maps())


@pytest.mark.parametrize("poison", ["key", "value"])
def test_a_masked_out_key_holding_nan_changes_neither_attention_path(poison):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, generator=g) for _ in range(3))
    # key 2 is padding
    mask = torch.tensor([True, True, False])[None, None, :].expand(2, 3, 3)
    clean = attention.scaled_dot_product_attention(q, k, v, mask)[0]
    k, v = k.clone(), v.clone()
    (k if poison == "key" else v)[:, 2] = float("nan")
    torch.testing.assert_close(
        attention.scaled_dot_product_attention(q, k, v, mask)[0], clean
    )
    torch.testing.assert_close(attention.fused_attention(q, k, v, mask), clean)


def test_detr_reads_the_channels_from_its_backbone():
    backbone = cnn.SmallCNN(1, widths=(8, 12), num_classes=0)
    model = detr.DETR(
        backbone,
        detr.DETRConfig(
            num_queries=3,
            d_model=16,
            num_heads=2,
            d_ff=32,
            num_encoder_layers=1,
            num_decoder_layers=1,
        ),
    )
    assert model.input_projection.in_channels == 12
    with pytest.raises(TypeError, match="feature_map.*out_channels"):
        detr.DETR(nn.Linear(2, 2), model.config)


def test_decoder_block_takes_an_activation_as_the_encoder_block_does():
    torch.manual_seed(0)
    ours = transformer.DecoderBlock(16, 2, 32, dropout=0.0, activation="gelu")
    theirs = nn.TransformerDecoderLayer(
        16, 2, 32, dropout=0.0, activation="gelu", batch_first=True
    )
    ours.load_from_torch(theirs)
    y, memory = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    torch.testing.assert_close(ours(y, memory), theirs(y, memory))
