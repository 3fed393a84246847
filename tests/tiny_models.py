"""Tiny models shared by the device, autocast and bad-input tests."""

from course_lib import cnn, detr, moco, transformer, vit


def seq2seq():
    """A 1 + 1 layer translator: source vocabulary 11, target vocabulary 13, d = 16."""
    config = transformer.TransformerConfig(
        src_vocab_size=11,
        tgt_vocab_size=13,
        d_model=16,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        d_ff=32,
    )
    return transformer.Seq2SeqTransformer(config)


def vision_transformer(image_size=16, num_layers=1):
    config = vit.ViTConfig(
        image_size=image_size,
        patch_size=4,
        d_model=16,
        num_heads=2,
        num_layers=num_layers,
    )
    return vit.VisionTransformer(config)


def detr_model(num_queries=5):
    """DETR on a two-block CNN (8 and 16 channels) for 1-channel images."""
    config = detr.DETRConfig(
        num_queries=num_queries,
        d_model=16,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        d_ff=32,
    )
    return detr.DETR(cnn.SmallCNN(1, widths=(8, 16), num_classes=0), config)


def moco_model(channels=1, queue_size=16):
    encoder = cnn.SmallCNN(channels, widths=(8, 16), num_classes=0)
    return moco.MoCo(
        moco.EncoderWithHead(encoder, 16, dim=8), dim=8, queue_size=queue_size
    )
