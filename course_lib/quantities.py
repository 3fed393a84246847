"""What each number a chapter records means: one registry for the whole book.

``QUANTITIES[notebook][metric] = Quantity(label, group, better)``:

- ``label``: a human name for the quantity;
- ``group``: ``"headline"`` (the chapter's learning outcome), ``"comparison"`` (an
  ablation, a baseline or a comparison the text makes), ``"check"`` (an equality with a
  reference, a measured shape), or ``"time"`` (time and size);
- ``better``: for a headline, which way is better (``"higher"`` or ``"lower"``).

The headline quantities are what :func:`course_lib.on_track` compares with the reference
runs; the results page labels and groups every recorded number with this table (a number
it does not name is shown under its identifier). What a chapter *asserts* about a number
is not written here: it is ``course_lib.outcomes.CHECKS``.
"""

from __future__ import annotations

from typing import NamedTuple

HEADLINE, COMPARISON, CHECK, TIME = "headline", "comparison", "check", "time"
GROUPS = {
    HEADLINE: "Headline",
    COMPARISON: "Comparisons and ablations",
    CHECK: "Checks against references",
    TIME: "Time and size",
}


class Quantity(NamedTuple):
    label: str
    group: str
    better: str | None = None


TRAIN_SECONDS = ("training time (s)", TIME)

_TABLE: dict[str, dict[str, tuple]] = {
    "01_attention_pooling": {
        "mse_parametric": (
            "test MSE, Nadaraya–Watson with a learned width",
            HEADLINE,
            "lower",
        ),
        "mse_nonparametric": ("test MSE, Nadaraya–Watson with h = 1", COMPARISON),
        "mse_average": ("test MSE, average pooling", COMPARISON),
        "mse_noise_floor": ("test MSE of the true function (noise floor)", COMPARISON),
        "learned_w": ("learned inverse width w", COMPARISON),
        "w_best_leave_one_out": ("w at the leave-one-out loss's minimum", COMPARISON),
        "w_best_held_out": ("w at the held-out MSE's minimum", COMPARISON),
        "held_out_mse_best_w": ("test MSE at the best w", COMPARISON),
        "train_seconds": TRAIN_SECONDS,
        "w_tried_smallest": ("smallest w tried", CHECK),
        "w_tried_largest": ("largest w tried", CHECK),
        "outcome_naive_loss": ("answer of pred-naive-loss", CHECK),
    },
    "02_scoring_functions": {
        "lookup_accuracy_dot": (
            "look-up accuracy, scaled dot product",
            HEADLINE,
            "higher",
        ),
        "lookup_accuracy_additive_bias": (
            "look-up accuracy, additive attention with a bias",
            HEADLINE,
            "higher",
        ),
        "lookup_accuracy_additive": (
            "look-up accuracy, textbook additive attention",
            COMPARISON,
        ),
        "fused_speedup": (
            "fused kernel's speed-up over the explicit attention",
            COMPARISON,
        ),
        "sdpa_max_abs_diff": (
            "largest gap, ours vs F.scaled_dot_product_attention",
            CHECK,
        ),
        "worked_example_scores": ("the worked example's scores", CHECK),
        "train_seconds": TRAIN_SECONDS,
        "outcome_lookup": ("answer of pred-additive-symmetry", CHECK),
    },
    "03_multihead_attention": {
        "neighbours_mse_two_heads": (
            "neighbours task MSE, two heads",
            HEADLINE,
            "lower",
        ),
        "neighbours_mse_one_head": ("neighbours task MSE, one head", COMPARISON),
        "mha_time_ratio_vs_torch": (
            "time of our MHA / nn.MultiheadAttention's (below 1: ours faster)",
            COMPARISON,
        ),
        "attention_memory_slope": (
            "log–log slope of attention's memory against length",
            CHECK,
        ),
        "attention_time_slope_explicit": (
            "log–log slope of attention's time against length",
            CHECK,
        ),
        "mha_max_abs_diff_vs_torch": (
            "largest gap, ours vs nn.MultiheadAttention",
            CHECK,
        ),
        "train_seconds": TRAIN_SECONDS,
        "outcome_one_head": ("answer of pred-one-head", CHECK),
    },
    "04_transformer": {
        "test_exact_match": ("test exact match, greedy", HEADLINE, "higher"),
        "test_bleu": ("test BLEU, greedy", HEADLINE, "higher"),
        "test_exact_match_hard": (
            "exact match on the hard test (kinds kept out of training)",
            HEADLINE,
            "higher",
        ),
        "test_exact_match_beam": ("test exact match, beam search", COMPARISON),
        "test_bleu_beam": ("test BLEU, beam search", COMPARISON),
        "test_exact_match_hard_beam": (
            "hard test exact match, beam search",
            COMPARISON,
        ),
        "hard_exact_unseen_combination": ("hard test: unseen combinations", COMPARISON),
        "hard_exact_longer_output": ("hard test: longer outputs", COMPARISON),
        "hard_exact_beyond_the_range": ("hard test: beyond the range", COMPARISON),
        "hard_exact_beam_unseen_combination": (
            "hard test, beam: unseen combinations",
            COMPARISON,
        ),
        "hard_exact_beam_longer_output": (
            "hard test, beam: longer outputs",
            COMPARISON,
        ),
        "hard_exact_beam_beyond_the_range": (
            "hard test, beam: beyond the range",
            COMPARISON,
        ),
        "one_epoch_exact_sqrt_d": ("one epoch, embeddings of size 1/√d", COMPARISON),
        "one_epoch_exact_default_init": (
            "one epoch, PyTorch's default embeddings",
            COMPARISON,
        ),
        "one_epoch_exact_tied": ("one epoch, with weight tying", COMPARISON),
        "decode_speedup_kv_cache": (
            "greedy decoding speed-up from the key–value cache, 64 tokens",
            COMPARISON,
        ),
        "decode_speedup_kv_cache_short": (
            "greedy decoding speed-up from the key–value cache, 16 tokens",
            COMPARISON,
        ),
        "context_distance_same_french": (
            "distance of 'one' between numbers French writes alike",
            COMPARISON,
        ),
        "context_distance_other_french": (
            "distance of 'one' between the other numbers",
            COMPARISON,
        ),
        "no_causal_mask_train_loss": (
            "without the causal mask: training loss",
            COMPARISON,
        ),
        "no_causal_mask_exact_match": (
            "without the causal mask: test exact match",
            COMPARISON,
        ),
        "no_causal_mask_future_attention": (
            "without the causal mask: attention on future positions",
            COMPARISON,
        ),
        "ffn_parameter_share": ("share of a block's weights in the FFN", CHECK),
        "train_seconds": TRAIN_SECONDS,
        "n_parameters": ("parameters", TIME),
        "outcome_no_mask": ("answer of pred-no-causal-mask", CHECK),
    },
    "05_vision_transformer": {
        "test_accuracy": ("ViT test accuracy", HEADLINE, "higher"),
        "cnn_test_accuracy": (
            "CNN test accuracy (same recipe, as many parameters)",
            COMPARISON,
        ),
        "vit_parameters": ("ViT parameters", TIME),
        "cnn_parameters": ("CNN parameters (the data-size sweep's)", TIME),
        "sweep_fractions": ("training-set fractions of the sweep", COMPARISON),
        "sweep_vit": ("ViT test accuracy along the sweep", COMPARISON),
        "sweep_cnn": ("CNN test accuracy along the sweep", COMPARISON),
        "mean_pool_accuracy": ("ViT test accuracy with mean pooling", COMPARISON),
        "position_similarity_correlation": (
            "correlation of position-embedding similarity with 2-D distance",
            COMPARISON,
        ),
        "train_seconds": TRAIN_SECONDS,
        "outcome_small_data": ("answer of pred-small-data", CHECK),
    },
    "06_detr": {
        "test_map50": ("test mAP@0.5", HEADLINE, "higher"),
        "test_map": ("test mAP@0.5:0.95", HEADLINE, "higher"),
        "map50_at_budget_pretrained": (
            "mAP@0.5 after the shorter budget (330 steps), pre-trained backbone",
            COMPARISON,
        ),
        "map50_at_budget_scratch": (
            "mAP@0.5 after the shorter budget, random backbone",
            COMPARISON,
        ),
        "map50_noobject_weight_1": (
            "mAP@0.5 after the shorter budget, no-object weight 1 (not 0.1)",
            COMPARISON,
        ),
        "map50_no_aux_loss": (
            "mAP@0.5 after the shorter budget, no auxiliary losses",
            COMPARISON,
        ),
        "recall_by_size": (
            "recall at score ≥ 0.5, by object size (small, middle, large third)",
            COMPARISON,
        ),
        "cross_attention_in_box": (
            "share of a confident query's cross-attention inside its box",
            COMPARISON,
        ),
        "cross_attention_in_box_uniform": (
            "the same share for attention spread evenly",
            COMPARISON,
        ),
        "duplicates_before": ("duplicate detections, early in training", COMPARISON),
        "duplicates_after": ("duplicate detections, after training", COMPARISON),
        "confident_duplicates": ("confident duplicates after training", COMPARISON),
        "nms_map50": ("test mAP@0.5 after NMS", COMPARISON),
        "map50_all_points": ("mAP@0.5 from scratch, every recall step", CHECK),
        "map50_101_points": ("mAP@0.5 from scratch, 101 recall points", CHECK),
        "train_seconds": TRAIN_SECONDS,
        "pretrain_seconds": ("backbone pre-training time (s)", TIME),
        "outcome_pretrained": ("answer of pred-pretrained", CHECK),
    },
    "07_moco": {
        "knn_accuracy_moco": (
            "kNN accuracy (k = 200), MoCo features",
            HEADLINE,
            "higher",
        ),
        "linear_probe_moco": (
            "linear-probe accuracy, MoCo features",
            HEADLINE,
            "higher",
        ),
        "knn_accuracy_random": ("kNN accuracy (k = 200), random encoder", COMPARISON),
        "knn_accuracy_pixels": ("kNN accuracy (k = 200), pixels", COMPARISON),
        "knn_accuracy_moco_k20": ("kNN accuracy (k = 20), MoCo features", COMPARISON),
        "knn_accuracy_pixels_k20": ("kNN accuracy (k = 20), pixels", COMPARISON),
        "linear_probe_random": ("linear-probe accuracy, random encoder", COMPARISON),
        "linear_probe_pixels": ("linear-probe accuracy, pixels", COMPARISON),
        "knn_accuracy_moco_shifted": (
            "kNN accuracy on shifted digits, MoCo",
            COMPARISON,
        ),
        "knn_accuracy_pixels_shifted": (
            "kNN accuracy on shifted digits, pixels",
            COMPARISON,
        ),
        "knn_accuracy_random_shifted": (
            "kNN accuracy on shifted digits, random encoder",
            COMPARISON,
        ),
        "knn_accuracy_moco_at_stop": (
            "kNN accuracy, MoCo at the ablations' stopping step",
            COMPARISON,
        ),
        "pretext_accuracy_at_stop": (
            "pretext accuracy, the 50 steps before the ablations' step",
            COMPARISON,
        ),
        "knn_accuracy_momentum_0": ("kNN accuracy with m = 0", COMPARISON),
        "knn_accuracy_temperature_1": ("kNN accuracy with τ = 1", COMPARISON),
        "entropy_temperature_01": (
            "entropy of the look-up softmax, τ = 0.1 (at the ablations' stop)",
            COMPARISON,
        ),
        "entropy_temperature_1": ("entropy of the look-up softmax, τ = 1", COMPARISON),
        "queue_sizes": ("queue sizes of the sweep", COMPARISON),
        "knn_accuracy_by_queue_size": (
            "kNN accuracy along the queue sweep",
            COMPARISON,
        ),
        "knn_accuracy_no_shuffle_bn": (
            "kNN accuracy without the key shuffle",
            COMPARISON,
        ),
        "pretext_accuracy_last_50": ("pretext accuracy, last 50 steps", COMPARISON),
        "pretext_accuracy_no_shuffle_bn": (
            "pretext accuracy without the key shuffle, its last 50 steps",
            COMPARISON,
        ),
        "supervised_test_accuracy": (
            "the same CNN trained with all labels",
            COMPARISON,
        ),
        "label_efficiency_labels_per_class": (
            "labels per class of the label-efficiency curve",
            COMPARISON,
        ),
        "label_efficiency_moco_probe": (
            "few labels: linear probe on MoCo features",
            COMPARISON,
        ),
        "label_efficiency_supervised": (
            "few labels: the CNN trained from scratch",
            COMPARISON,
        ),
        "train_seconds": TRAIN_SECONDS,
        "outcome_momentum": ("answer of pred-momentum-zero", CHECK),
    },
}

QUANTITIES: dict[str, dict[str, Quantity]] = {
    stem: {metric: Quantity(*entry) for metric, entry in table.items()}
    for stem, table in _TABLE.items()
}
HEADLINES: dict[str, dict[str, Quantity]] = {
    stem: {m: q for m, q in table.items() if q.group == HEADLINE}
    for stem, table in QUANTITIES.items()
}
