"""Exercises of chapter 6: box formats, the matching cost, average precision."""

from __future__ import annotations

import torch
import torchvision.ops

from .. import detr
from ._core import Case, Exercise, Mistake, register
from ._predictions import Prediction, predict

CHAPTER = "06_detr"


def _random_boxes_cxcywh(n, seed):
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g)
    size = 0.05 + 0.4 * torch.rand(n, 2, generator=g)
    return torch.cat([centre, size], dim=-1)


# ---------------------------------------------------------------------------
# ex-box-convert
# ---------------------------------------------------------------------------


def _no_halving(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w, cy - h, cx + w, cy + h], -1)


def _half_on_one_side(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w, cy + h], -1)


def _xywh(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, w, h], -1)


def _yx_order(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1)


register(
    Exercise(
        id="ex-box-convert",
        chapter=CHAPTER,
        title="(cx, cy, w, h) to (x1, y1, x2, y2)",
        signature="box_cxcywh_to_xyxy(boxes): (..., 4) -> (..., 4)",
        reference=detr.box_cxcywh_to_xyxy,
        stands_for=(
            "course_lib.detr.box_cxcywh_to_xyxy",
            "torchvision.ops.box_convert",
        ),
        cases=[
            Case(
                "one box (0.5, 0.5, 0.2, 0.4)",
                lambda: (torch.tensor([[0.5, 0.5, 0.2, 0.4]]),),
            ),
            Case("5 random boxes", lambda: (_random_boxes_cxcywh(5, seed=0),)),
            Case(
                "a batch (2, 3, 4) of boxes",
                lambda: (_random_boxes_cxcywh(6, seed=1).reshape(2, 3, 4),),
            ),
        ],
        mistakes=[
            Mistake(
                "w and h are not halved: the box reaches w/2 to each side of the centre, "
                "x1 = cx - w/2 and x2 = cx + w/2.",
                _no_halving,
            ),
            Mistake(
                "w and h are halved in the wrong place: subtract w/2 for x1 *and* add w/2 for x2.",
                _half_on_one_side,
            ),
            Mistake(
                "that is (x1, y1, w, h); the last two numbers must be the corner x2 = x1 + w, y2 = y1 + h.",
                _xywh,
            ),
            Mistake("x and y are swapped: the order is (x1, y1, x2, y2).", _yx_order),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-match-cost
# ---------------------------------------------------------------------------


def _cost_reference(pred_logits, pred_boxes, tgt_labels, tgt_boxes):
    target = {"labels": tgt_labels, "boxes": tgt_boxes}
    return detr.HungarianMatcher().cost_matrix(pred_logits, pred_boxes, target)


def _cost_with(
    probabilities=lambda logits: logits.softmax(-1),
    class_sign=-1.0,
    giou_sign=-1.0,
    l1_on_corners=False,
    giou_on_centres=False,
    weights=(5.0, 2.0),
):
    """The DETR matching cost with one typical mistake switched on."""

    def wrong(pred_logits, pred_boxes, tgt_labels, tgt_boxes):
        p = probabilities(pred_logits)[:, tgt_labels]  # (N, M)
        corners_p = detr.box_cxcywh_to_xyxy(pred_boxes)
        corners_t = detr.box_cxcywh_to_xyxy(tgt_boxes)
        if l1_on_corners:
            l1 = torch.cdist(corners_p, corners_t, p=1)
        else:
            l1 = torch.cdist(pred_boxes, tgt_boxes, p=1)
        if giou_on_centres:
            giou = torchvision.ops.generalized_box_iou(pred_boxes, tgt_boxes)
        else:
            giou = torchvision.ops.generalized_box_iou(corners_p, corners_t)
        return class_sign * p + weights[0] * l1 + giou_sign * weights[1] * giou

    return wrong


def _detections_case(n, m, num_classes, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        logits = 2 * torch.randn(n, num_classes + 1, generator=g)
        labels = torch.randint(0, num_classes, (m,), generator=g)
        return (
            logits,
            _random_boxes_cxcywh(n, seed=seed + 100),
            labels,
            _random_boxes_cxcywh(m, seed=seed + 200),
        )

    return make


register(
    Exercise(
        id="ex-match-cost",
        chapter=CHAPTER,
        title="DETR's matching cost",
        signature=(
            "matching_cost(pred_logits, pred_boxes, tgt_labels, tgt_boxes): (N, C+1), "
            "(N, 4), (M,), (M, 4) -> (N, M)"
        ),
        reference=_cost_reference,
        stands_for=("course_lib.detr.HungarianMatcher",),
        cases=[
            Case("6 predictions, 3 objects, 4 classes", _detections_case(6, 3, 4, 0)),
            Case(
                "10 predictions, 5 objects, 10 classes", _detections_case(10, 5, 10, 1)
            ),
            Case("4 predictions, 1 object, 2 classes", _detections_case(4, 1, 2, 2)),
        ],
        mistakes=[
            Mistake(
                "the class term has the wrong sign: a likely class must make the cost "
                "smaller, so it is -p(target class).",
                _cost_with(class_sign=1.0),
            ),
            Mistake(
                "the class term uses log-probabilities; DETR's matcher uses the "
                "probability itself, -p(target class) (the loss uses the log).",
                _cost_with(probabilities=lambda logits: logits.log_softmax(-1)),
            ),
            Mistake(
                "the class term uses the raw logits; turn them into probabilities with a "
                "softmax over the C + 1 columns first: -softmax(logits)[target class].",
                _cost_with(probabilities=lambda logits: logits),
            ),
            Mistake(
                "the softmax leaves out the last, 'no object', column; it runs over all "
                "C + 1 columns.",
                _cost_with(
                    probabilities=lambda logits: torch.cat(
                        [logits[:, :-1].softmax(-1), logits[:, -1:]], 1
                    )
                ),
            ),
            Mistake(
                "the GIoU term has the wrong sign: overlapping boxes must cost less, so "
                "it is -2 · GIoU.",
                _cost_with(giou_sign=1.0),
            ),
            Mistake(
                "the L1 distance is taken between (x1, y1, x2, y2) corners; DETR takes it "
                "between the (cx, cy, w, h) boxes.",
                _cost_with(l1_on_corners=True),
            ),
            Mistake(
                "GIoU is computed on (cx, cy, w, h) boxes; convert both to "
                "(x1, y1, x2, y2) first.",
                _cost_with(giou_on_centres=True),
                error=r"x2 < x1 or y2 < y1",
            ),
            Mistake(
                "the weights are swapped: 5 multiplies the L1 distance and 2 the GIoU.",
                _cost_with(weights=(2.0, 5.0)),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-average-precision
# ---------------------------------------------------------------------------


def _ap_with(order_descending=True, envelope=True, recall_of_detections=False):
    def wrong(scores, is_true_positive, num_objects):
        hit = is_true_positive[scores.argsort(descending=order_descending)].double()
        tp = hit.cumsum(0)
        precision = tp / torch.arange(1, len(hit) + 1)
        recall = tp / (len(hit) if recall_of_detections else num_objects)
        if envelope:
            precision = precision.flip(0).cummax(0).values.flip(0)
        steps = torch.diff(recall, prepend=recall.new_zeros(1))
        return float((steps * precision).sum())

    return wrong


def _eleven_points(scores, is_true_positive, num_objects):
    hit = is_true_positive[scores.argsort(descending=True)].double()
    tp = hit.cumsum(0)
    precision, recall = tp / torch.arange(1, len(hit) + 1), tp / num_objects
    points = [
        float(precision[recall >= r].max()) if (recall >= r).any() else 0.0
        for r in torch.linspace(0, 1, 11).tolist()
    ]
    return sum(points) / 11


def _ap_case(hits, num_objects, seed):
    def make():
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(hits), generator=g)
        scores = torch.linspace(0.95, 0.05, len(hits))[order]  # shuffled, no ties
        is_tp = torch.tensor(hits, dtype=torch.bool)[order]
        return scores, is_tp, num_objects

    return make


register(
    Exercise(
        id="ex-average-precision",
        chapter=CHAPTER,
        title="average precision of one class",
        signature=(
            "average_precision(scores, is_true_positive, num_objects): (K,), (K,) bool, "
            "int -> float"
        ),
        reference=detr.average_precision,
        stands_for=("course_lib.detr.average_precision",),
        cases=[
            Case(
                "6 detections, hits 1 0 1 1 0 1 in score order, 5 objects",
                _ap_case([1, 0, 1, 1, 0, 1], 5, seed=0),
            ),
            Case(
                "8 detections, hits 0 1 1 0 0 1 0 1, 4 objects (all found)",
                _ap_case([0, 1, 1, 0, 0, 1, 0, 1], 4, seed=1),
            ),
            Case("3 detections, all false positives", _ap_case([0, 0, 0], 2, seed=2)),
            Case(
                "5 detections, hits 1 1 0 0 1, 7 objects",
                _ap_case([1, 1, 0, 0, 1], 7, seed=3),
            ),
        ],
        mistakes=[
            Mistake(
                "the detections are taken in order of increasing score; sort by score, "
                "highest first (argsort(descending=True)).",
                _ap_with(order_descending=False),
            ),
            Mistake(
                "the precision is not replaced by its envelope: at each recall use the "
                "best precision at any recall at least as high "
                "(precision.flip(0).cummax(0).values.flip(0)).",
                _ap_with(envelope=False),
            ),
            Mistake(
                "recall is divided by the number of detections; it is the fraction of "
                "the num_objects objects found.",
                _ap_with(recall_of_detections=True),
            ),
            Mistake(
                "that is the 11-point AP of PASCAL VOC 2007; this exercise sums over "
                "every recall step (all-point interpolation).",
                _eleven_points,
            ),
        ],
    )
)


predict(
    Prediction(
        id="pred-pretrained",
        chapter=CHAPTER,
        question=(
            "The same detector with a randomly initialised backbone, stopped after a "
            "short time: how does its mAP compare with the pre-trained backbone's at "
            "the same step?"
        ),
        choices={
            "a": "the pre-trained backbone is ahead",
            "b": "the random backbone is ahead",
            "c": "they are level",
        },
        answer="a",
        why=(
            "with a pre-trained backbone the detector only has to learn where the "
            "digits are and which query takes which; from scratch it must also learn "
            "what a digit looks like, through the slow, noisy signal of the set loss. "
            "DETR's slow convergence is its best-known weakness even with an ImageNet "
            "backbone."
        ),
    )
)
