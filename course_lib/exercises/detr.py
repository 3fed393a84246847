"""Exercises of chapter 6: non-maximum suppression, the matching cost, average precision."""

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
# ex-nms: non-maximum suppression, what DETR does without
# ---------------------------------------------------------------------------


def _greedy_nms(boxes, scores, iou_threshold, order=None, against_all=False):
    """Keep boxes from the highest score down unless one kept before overlaps them
    (``against_all``: unless *any* higher-scoring box does, kept or not)."""
    order = scores.argsort(descending=True) if order is None else order
    iou = detr.box_iou(boxes, boxes)
    kept: list[int] = []
    for rank, i in enumerate(order.tolist()):
        earlier = order[:rank].tolist() if against_all else kept
        if all(iou[i, j] <= iou_threshold for j in earlier):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.long)


def _clustered_boxes(n, clusters, seed, threshold):
    """n boxes (x1, y1, x2, y2) jittered around a few centres, distinct scores."""

    def make():
        g = torch.Generator().manual_seed(seed)
        centres = torch.rand(clusters, 2, generator=g) * 40
        which = torch.randint(0, clusters, (n,), generator=g)
        xy = centres[which] + 3 * torch.randn(n, 2, generator=g)
        size = 8 + 6 * torch.rand(n, 2, generator=g)
        boxes = torch.cat([xy, xy + size], dim=1)
        scores = torch.randperm(n, generator=g).float() / n + 0.01
        return boxes, scores, threshold

    return make


def _chain():
    """Three boxes in a row: A overlaps B, B overlaps C, A and C are apart. With A best,
    B is suppressed, and C survives only if a suppressed box cannot suppress."""
    # IoU(A, B) = IoU(B, C) = 1/3, IoU(A, C) = 0
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [10.0, 0.0, 20.0, 10.0]]
    )
    return boxes, torch.tensor([0.9, 0.8, 0.7]), 0.3


def _apart():
    """Six boxes on a grid, none touching another: all are kept."""
    corners = torch.tensor([[x, y] for x in (0.0, 20.0, 40.0) for y in (0.0, 20.0)])
    return torch.cat([corners, corners + 10], 1), torch.linspace(0.2, 0.9, 6), 0.5


register(
    Exercise(
        id="ex-nms",
        chapter=CHAPTER,
        title="non-maximum suppression",
        signature=(
            "nms(boxes, scores, iou_threshold): (N, 4) xyxy, (N,), float -> the kept "
            "indices (K,) int64, highest score first"
        ),
        reference=torchvision.ops.nms,
        stands_for=("torchvision.ops.nms", "torchvision.ops.batched_nms"),
        cases=[
            Case("12 boxes in 3 clusters, IoU 0.5", _clustered_boxes(12, 3, 0, 0.5)),
            Case("20 boxes in 4 clusters, IoU 0.3", _clustered_boxes(20, 4, 1, 0.3)),
            Case("a chain: A overlaps B, B overlaps C, IoU 0.3", _chain),
            Case("6 boxes apart from each other: all kept", _apart),
        ],
        mistakes=[
            Mistake(
                "the boxes are walked in their input order; walk them from the highest "
                "score down (scores.argsort(descending=True)), so that the best box of a "
                "cluster is the one kept.",
                lambda b, s, t: _greedy_nms(b, s, t, order=torch.arange(len(s))),
            ),
            Mistake(
                "a suppressed box still suppresses others: compare each box only with "
                "the boxes already *kept*. (In a chain A-B-C, A removes B, and C stays.)",
                lambda b, s, t: _greedy_nms(b, s, t, against_all=True),
            ),
            Mistake(
                "the kept indices are in index order; return them highest score first, "
                "as torchvision.ops.nms does.",
                lambda b, s, t: _greedy_nms(b, s, t).sort().values,
            ),
            Mistake(
                "the threshold works the wrong way round: a box is removed when it "
                "overlaps a kept box by *more* than iou_threshold.",
                lambda b, s, t: _greedy_nms(b, s, 1.0 - t),
            ),
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
