"""Chapter 6: boxes, GIoU, matching, the set loss, the model, the canvas generator."""

import itertools

import pytest
import torch
import torch.nn.functional as F
import torchvision

from course_lib import data, detr
from course_lib.cnn import SmallCNN


def random_xyxy(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g)
    return torch.cat([xy, xy + 0.05 + torch.rand(n, 2, generator=g) * 0.5], dim=-1)


def test_box_conversions_round_trip():
    boxes = random_xyxy(7, 0)
    torch.testing.assert_close(
        detr.box_cxcywh_to_xyxy(detr.box_xyxy_to_cxcywh(boxes)), boxes
    )
    assert detr.box_cxcywh_to_xyxy(
        torch.tensor([0.5, 0.5, 0.2, 0.4])
    ).tolist() == pytest.approx([0.4, 0.3, 0.6, 0.7])


def giou_by_formula(a, b):
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(
        0.0, min(ay2, by2) - max(ay1, by1)
    )
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    return inter / union - (hull - union) / hull


def test_giou_matches_the_formula_and_torchvision():
    a, b = random_xyxy(5, 1), random_xyxy(4, 2)
    ours = detr.generalized_box_iou(a, b)
    expected = torch.tensor(
        [[giou_by_formula(x, y) for y in b.tolist()] for x in a.tolist()]
    )
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours, torchvision.ops.generalized_box_iou(a, b))
    # disjoint boxes: IoU is 0 but GIoU still says how far apart they are
    near, far = torch.tensor([[1.0, 0, 2, 1]]), torch.tensor([[5.0, 0, 6, 1]])
    unit = torch.tensor([[0.0, 0, 1, 1]])
    assert detr.box_iou(unit, near).item() == detr.box_iou(unit, far).item() == 0
    assert (
        detr.generalized_box_iou(unit, near).item()
        > detr.generalized_box_iou(unit, far).item()
    )


def test_inverted_boxes_give_a_clear_error():
    with pytest.raises(ValueError, match=r"boxes1\[1\] = .* has x2 < x1 or y2 < y1"):
        detr.generalized_box_iou(
            torch.tensor([[0.0, 0, 1, 1], [0.5, 0, 0.2, 1]]), random_xyxy(2, 0)
        )
    with pytest.raises(ValueError, match="boxes must have 4 numbers"):
        detr.box_cxcywh_to_xyxy(torch.zeros(3, 5))


@pytest.mark.parametrize(
    "n_queries, n_objects, seed", [(4, 3, 0), (5, 5, 1), (6, 2, 2), (3, 3, 3)]
)
def test_matcher_is_optimal_against_brute_force(n_queries, n_objects, seed):
    g = torch.Generator().manual_seed(seed)
    outputs = {
        "pred_logits": torch.randn(1, n_queries, 11, generator=g),
        "pred_boxes": torch.rand(1, n_queries, 4, generator=g) * 0.5 + 0.25,
    }
    target = {
        "labels": torch.randint(0, 10, (n_objects,), generator=g),
        "boxes": torch.rand(n_objects, 4, generator=g) * 0.5 + 0.25,
    }
    matcher = detr.HungarianMatcher()
    rows, cols = matcher(outputs, [target])[0]
    cost = matcher.cost_matrix(
        outputs["pred_logits"][0], outputs["pred_boxes"][0], target
    )
    best = min(
        sum(cost[q, j].item() for j, q in enumerate(queries))
        for queries in itertools.permutations(range(n_queries), n_objects)
    )
    assert len(rows) == n_objects and sorted(cols.tolist()) == list(range(n_objects))
    assert cost[rows, cols].sum().item() == pytest.approx(best, abs=1e-5)


def test_matcher_cost_uses_the_documented_weights():
    logits = torch.tensor([[2.0, 0.0, 0.0]])  # 2 classes + no-object
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    target = {
        "labels": torch.tensor([0]),
        "boxes": torch.tensor([[0.6, 0.5, 0.2, 0.2]]),
    }
    cost = detr.HungarianMatcher(1, 5, 2).cost_matrix(logits, boxes, target)
    p = torch.softmax(logits, -1)[0, 0]
    giou = giou_by_formula([0.4, 0.4, 0.6, 0.6], [0.5, 0.4, 0.7, 0.6])
    assert cost.item() == pytest.approx(-p.item() + 5 * 0.1 - 2 * giou, abs=1e-5)


def test_set_loss_is_safe_with_images_without_objects():
    criterion = detr.SetCriterion(num_classes=10)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    boxes = torch.rand(2, 5, 4, requires_grad=True)
    empty = {"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}
    outputs = {
        "pred_logits": logits,
        "pred_boxes": boxes,
        "aux_outputs": [{"pred_logits": logits * 1.0, "pred_boxes": boxes * 1.0}],
    }
    loss, logged = criterion(outputs, [empty, empty])
    loss.backward()
    assert (
        torch.isfinite(loss)
        and torch.isfinite(logits.grad).all()
        and torch.isfinite(boxes.grad).all()
    )
    assert logged["loss_bbox"] == 0 and "aux0_loss_ce" in logged
    # every query must say "no object": the loss pushes the no-object logit up
    assert (logits.grad[..., -1] < 0).all()


def test_set_loss_is_zero_ish_for_a_perfect_prediction():
    criterion = detr.SetCriterion(num_classes=3)
    target = {
        "labels": torch.tensor([1]),
        "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]),
    }
    logits = torch.full((1, 2, 4), -20.0)
    logits[0, 0, 1] = 20.0  # query 0: class 1
    logits[0, 1, 3] = 20.0  # query 1: no object
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]])
    loss, logged = criterion({"pred_logits": logits, "pred_boxes": boxes}, [target])
    # torchvision's GIoU loss adds eps = 1e-7 to its denominators
    assert loss.item() < 1e-5, logged


def test_giou_loss_is_one_minus_the_giou_of_each_matched_pair():
    criterion = detr.SetCriterion(num_classes=3)
    g = torch.Generator().manual_seed(0)
    boxes = 0.2 + 0.5 * torch.rand(1, 3, 4, generator=g)
    target = {"labels": torch.tensor([0, 1, 2]), "boxes": boxes[0].flip(0) * 0.9}
    outputs = {"pred_logits": torch.zeros(1, 3, 4), "pred_boxes": boxes}
    losses = criterion.single(outputs, [target], num_objects=3.0)
    rows, cols = criterion.matcher(outputs, [target])[0]
    giou = detr.generalized_box_iou(
        detr.box_cxcywh_to_xyxy(boxes[0, rows]),
        detr.box_cxcywh_to_xyxy(target["boxes"][cols]),
    ).diag()
    torch.testing.assert_close(losses["loss_giou"], (1 - giou).sum() / 3)


def set_loss_image_by_image(criterion, outputs, targets, num_objects):
    """The set loss with one gather per image (the library gathers once per batch)."""
    logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
    target_classes = torch.full(logits.shape[:2], criterion.num_classes)
    pred, target = [], []
    for b, (rows, cols) in enumerate(criterion.matcher(outputs, targets)):
        target_classes[b, rows] = targets[b]["labels"][cols]
        pred.append(boxes[b, rows])
        target.append(targets[b]["boxes"][cols])
    pred, target = torch.cat(pred), torch.cat(target)
    weight = criterion.class_weight
    l1 = (pred - target).abs().sum() / num_objects
    giou = detr.generalized_box_iou(
        detr.box_cxcywh_to_xyxy(pred), detr.box_cxcywh_to_xyxy(target)
    ).diag()
    return {
        "loss_ce": F.cross_entropy(
            logits.transpose(1, 2), target_classes, weight=weight
        ),
        "loss_bbox": l1,
        "loss_giou": (1 - giou).sum() / num_objects,
    }


@pytest.mark.parametrize("objects_per_image", [(0, 1), (1, 1, 1), (3, 0, 5), (5, 5)])
def test_set_loss_equals_the_image_by_image_loss(objects_per_image):
    g = torch.Generator().manual_seed(sum(objects_per_image))
    batch, queries, classes = len(objects_per_image), 6, 4
    logits = torch.randn(batch, queries, classes + 1, generator=g, requires_grad=True)
    boxes = (0.2 + 0.5 * torch.rand(batch, queries, 4, generator=g)).requires_grad_()
    targets = [
        {
            "labels": torch.randint(classes, (n,), generator=g),
            "boxes": 0.2 + 0.5 * torch.rand(n, 4, generator=g),
        }
        for n in objects_per_image
    ]
    outputs = {"pred_logits": logits, "pred_boxes": boxes}
    criterion = detr.SetCriterion(num_classes=classes, no_object_weight=0.1)
    num_objects = float(max(1, sum(objects_per_image)))
    ours = criterion.single(outputs, targets, num_objects)
    reference = set_loss_image_by_image(criterion, outputs, targets, num_objects)
    for name in ours:
        torch.testing.assert_close(ours[name], reference[name])
    grads = torch.autograd.grad(sum(ours.values()), (logits, boxes))
    expected = torch.autograd.grad(sum(reference.values()), (logits, boxes))
    for mine, theirs in zip(grads, expected):
        torch.testing.assert_close(mine, theirs)


def test_sine_position_encoding():
    pe = detr.sine_position_encoding_2d(3, 4, 8)
    assert pe.shape == (12, 8)
    assert torch.equal(pe[0, :4], pe[1, :4])  # same row -> same y half
    assert torch.equal(pe[0, 4:], pe[4, 4:])  # same column -> same x half
    with pytest.raises(ValueError, match="divisible by 4"):
        detr.sine_position_encoding_2d(3, 4, 6)


def test_detr_shapes_and_postprocess():
    backbone = SmallCNN(in_channels=1, num_classes=0, widths=(8, 16, 32, 32))
    model = detr.DETR(
        backbone,
        detr.DETRConfig(num_queries=6, d_model=32, d_ff=64, num_decoder_layers=3),
    )
    outputs = model(torch.rand(2, 1, 64, 64), need_weights=True)
    assert outputs["pred_logits"].shape == (2, 6, 11) and outputs[
        "pred_boxes"
    ].shape == (2, 6, 4)
    assert len(outputs["aux_outputs"]) == 2
    assert ((outputs["pred_boxes"] >= 0) & (outputs["pred_boxes"] <= 1)).all()
    assert model.feature_size == (8, 8)
    assert [m.shape for m in model.cross_attention_maps()] == [(2, 4, 6, 64)] * 3
    results = detr.postprocess(outputs, 64)
    assert results[0]["boxes"].shape == (6, 4) and results[0]["labels"].max() < 10
    assert (results[0]["boxes"][:, 2] >= results[0]["boxes"][:, 0]).all()


def test_canvases_never_overlap_and_boxes_are_tight():
    digits = data.load_digits_images(8, seed=0)
    canvases = data.make_digit_canvases(
        200, digits.x_train[:, 0], digits.y_train, noise=0.0, seed=3
    )
    assert 1.0 <= sum(len(t["labels"]) for t in canvases.targets) / len(canvases) <= 4.0
    for image, target in zip(canvases.images, canvases.targets):
        boxes = detr.box_cxcywh_to_xyxy(target["boxes"]) * 64
        if len(boxes) > 1:
            iou = detr.box_iou(boxes, boxes)
            assert (iou - torch.eye(len(boxes))).max() == 0  # no two digits overlap
        ink = image[0] > data.INK_THRESHOLD
        covered = torch.zeros_like(ink)
        for x1, y1, x2, y2 in boxes.round().long().tolist():
            region = ink[y1:y2, x1:x2]
            # tight: ink touches all four sides of the box
            assert (
                region[0].any()
                and region[-1].any()
                and region[:, 0].any()
                and region[:, -1].any()
            )
            covered[y1:y2, x1:x2] = True
        assert not (ink & ~covered).any()  # all ink is inside a box


def test_train_and_test_canvases_use_disjoint_digit_images():
    train, test = data.digit_detection_data(n_train=20, n_test=10, seed=0)
    split = data.load_digits_images(8, test_fraction=0.3, seed=0)
    train_set = {tuple(x.flatten().tolist()) for x in split.x_train}
    assert not any(tuple(x.flatten().tolist()) in train_set for x in split.x_test)
    assert len(train) == 20 and len(test) == 10


def test_average_precision_against_a_hand_computed_curve():
    # ranks 1..5: hit, miss, hit, hit, miss; 4 objects. Precision at the hits 1, 2/3,
    # 3/4; the envelope lifts 2/3 to 3/4: AP = 1/4 * (1 + 3/4 + 3/4)
    scores = torch.tensor([0.5, 0.9, 0.6, 0.8, 0.7])
    hits = torch.tensor([False, True, False, False, True])
    hits_in_score_order = hits[scores.argsort(descending=True)]
    assert hits_in_score_order.tolist() == [True, False, True, False, False]
    ap = detr.average_precision(
        torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]),
        torch.tensor([True, False, True, True, False]),
        4,
    )
    assert ap == pytest.approx(0.25 * (1 + 0.75 + 0.75))
    assert detr.average_precision(scores, torch.zeros(5, dtype=torch.bool), 3) == 0.0
    assert detr.average_precision(scores, torch.ones(5, dtype=torch.bool), 5) == 1.0
    with pytest.raises(ValueError, match="num_objects must be at least 1"):
        detr.average_precision(scores, hits, 0)
    with pytest.raises(ValueError, match="one entry per detection"):
        detr.average_precision(scores, hits[:3], 2)


def test_true_positives_match_each_object_once_in_score_order():
    box = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    detections = [
        {
            "boxes": torch.cat([box, box + 1, box + 50]),  # two on the object, one off
            "scores": torch.tensor([0.6, 0.9, 0.8]),
            "labels": torch.tensor([3, 3, 3]),
        },
        {"boxes": box, "scores": torch.tensor([0.7]), "labels": torch.tensor([1])},
    ]
    truths = [
        {"boxes": box, "labels": torch.tensor([3])},
        {"boxes": box, "labels": torch.tensor([3])},
    ]
    scores, hits, num_objects = detr.true_positives(detections, truths, label=3)
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.6])
    assert hits.tolist() == [True, False, False]  # the 0.6 box is a duplicate
    assert num_objects == 2
    with pytest.raises(ValueError, match="one dict per image"):
        detr.true_positives(detections, truths[:1], label=3)
