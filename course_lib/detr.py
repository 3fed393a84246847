"""DETR (Carion et al., 2020): object detection as set prediction with a Transformer.

Read top to bottom:

1. box utilities: (cx, cy, w, h) <-> (x1, y1, x2, y2), IoU and generalised IoU
   (the library calls ``torchvision.ops``; chapter 6 writes GIoU from scratch);
2. :class:`HungarianMatcher`: a minimum-cost one-to-one matching between predictions and
   objects (``scipy.optimize.linear_sum_assignment``);
3. :class:`SetCriterion`: cross-entropy with a down-weighted "no object" class + L1 + GIoU
   on matched boxes, normalised by the number of objects, on every decoder layer;
4. :func:`sine_position_encoding_2d`: DETR's 2-D sine positional encoding;
5. :class:`DETR`: CNN backbone -> 1x1 projection -> encoder -> decoder with N learned
   object queries -> class head (+ no-object) and box head;
6. :func:`postprocess`: scores, labels and pixel boxes; :func:`mean_average_precision`
   (COCO mAP through ``torchmetrics``), and the same from scratch:
   :func:`true_positives`, :func:`precision_recall` and :func:`average_precision`
   for one class.

Boxes are normalised to [0, 1]; predictions are (cx, cy, w, h) like DETR's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.ops
from scipy.optimize import linear_sum_assignment
from torch import nn

from ._checks import check_tensor, shape_str
from .transformer import DecoderBlock, EncoderBlock

__all__ = [
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "box_iou",
    "generalized_box_iou",
    "HungarianMatcher",
    "SetCriterion",
    "sine_position_encoding_2d",
    "DETRConfig",
    "DETR",
    "postprocess",
    "mean_average_precision",
    "true_positives",
    "precision_recall",
    "average_precision",
]

# ---------------------------------------------------------------------------
# 1. Boxes
# ---------------------------------------------------------------------------


def _check_boxes(boxes) -> None:
    check_tensor("boxes", boxes, min_ndim=1, expected="(..., 4)")
    if boxes.shape[-1] != 4:
        raise ValueError(
            f"boxes must have 4 numbers in the last dimension; got shape {shape_str(boxes)}"
        )


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre x, centre y, width, height -> (..., 4) x1, y1, x2, y2."""
    _check_boxes(boxes)
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) x1, y1, x2, y2 -> (..., 4) centre x, centre y, width, height."""
    _check_boxes(boxes)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def _check_xyxy(name: str, boxes: torch.Tensor) -> None:
    check_tensor(name, boxes, ndim=2, expected="(num_boxes, 4) as x1, y1, x2, y2")
    if boxes.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (num_boxes, 4); got {shape_str(boxes)}"
        )
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1 or y2 < y1; boxes must be "
            "(x1, y1, x2, y2) with x1 <= x2 and y1 <= y2 (convert (cx, cy, w, h) first?)"
        )


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of every pair: xyxy (N, 4), (M, 4) -> (N, M)."""
    _check_xyxy("boxes1", boxes1)
    _check_xyxy("boxes2", boxes2)
    return torchvision.ops.box_iou(boxes1, boxes2)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al., 2019) of every pair: xyxy (N, 4), (M, 4) -> (N, M).

    GIoU = IoU - |C minus (A union B)| / |C|, C the smallest box enclosing A and B; in
    [-1, 1], and, unlike IoU, it still says how far apart two disjoint boxes are.
    """
    _check_xyxy("boxes1", boxes1)
    _check_xyxy("boxes2", boxes2)
    return torchvision.ops.generalized_box_iou(boxes1, boxes2)


# ---------------------------------------------------------------------------
# 2. Matching and 3. the set loss
# ---------------------------------------------------------------------------


class HungarianMatcher(nn.Module):
    """One-to-one assignment of predictions to objects, image by image.

    cost[i, j] = -cost_class * p_i(class_j) + cost_bbox * |b_i - b_j|_1
                 - cost_giou * GIoU(b_i, b_j)
    and ``linear_sum_assignment`` finds the assignment of minimum total cost. Every object
    gets exactly one prediction; the other predictions are matched to "no object".
    """

    def __init__(
        self, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0
    ):
        super().__init__()
        self.cost_class, self.cost_bbox, self.cost_giou = (
            cost_class,
            cost_bbox,
            cost_giou,
        )

    @torch.no_grad()
    def cost_matrix(
        self, logits: torch.Tensor, boxes: torch.Tensor, target: dict
    ) -> torch.Tensor:
        """One image: logits (N, K+1), boxes (N, 4) cxcywh, target labels (M,), boxes (M, 4)
        -> cost (N, M)."""
        probabilities = logits.softmax(-1)[:, target["labels"]]  # (N, M)
        l1 = torch.cdist(boxes, target["boxes"], p=1)  # (N, M)
        giou = torchvision.ops.generalized_box_iou(  # no value check: see SetCriterion
            box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target["boxes"])
        )
        return (
            -self.cost_class * probabilities
            + self.cost_bbox * l1
            - self.cost_giou * giou
        )

    @torch.no_grad()
    def forward(
        self, outputs: dict, targets: list[dict]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """outputs: ``pred_logits`` (B, N, K+1), ``pred_boxes`` (B, N, 4); targets: B dicts with
        ``labels`` (M_b,) and ``boxes`` (M_b, 4). Returns per image (prediction indices,
        object indices), each of length M_b.

        The costs of the whole batch are computed at once -- every prediction against every
        object of every image -- and then cut into one block per image for the solver."""
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        if len(targets) != logits.shape[0]:
            raise ValueError(
                f"targets has {len(targets)} images but the outputs {logits.shape[0]}"
            )
        batch, n = logits.shape[:2]
        all_targets = {
            "labels": torch.cat([t["labels"] for t in targets]),
            "boxes": torch.cat([t["boxes"] for t in targets]),
        }
        sizes = [len(t["labels"]) for t in targets]
        empty = torch.empty(0, dtype=torch.long)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        _check_labels(all_targets["labels"], logits.shape[-1] - 1)
        cost = self.cost_matrix(logits.flatten(0, 1), boxes.flatten(0, 1), all_targets)
        cost = cost.view(batch, n, -1).cpu()  # the solver runs on the CPU anyway
        if not torch.isfinite(cost).all():
            raise FloatingPointError(
                "DETR's predictions hold NaN or inf, so nothing can be matched: "
                "training diverged. Lower the learning rate, clip gradients "
                "(fit(..., clip_grad_norm=0.1)) or check the inputs"
            )
        blocks = cost.split(sizes, dim=-1)  # B x (N, M_b)
        matches = []
        for b, block in enumerate(blocks):
            rows, cols = (
                linear_sum_assignment(block[b].numpy()) if sizes[b] else ([], [])
            )
            matches.append(
                (
                    torch.as_tensor(rows, dtype=torch.long),
                    torch.as_tensor(cols, dtype=torch.long),
                )
            )
        return matches


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Target labels must be real classes 0 .. num_classes - 1 (num_classes is "no object").
    Read on the CPU copy the matcher needs anyway, so no extra GPU wait."""
    labels = labels.cpu()
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(
            f"target labels must be integer class ids; got dtype {labels.dtype}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"target labels must lie in 0 .. {num_classes - 1} (the model's num_classes is "
            f"{num_classes}; {num_classes} means 'no object'); got {sorted(set(labels.tolist()))}"
        )


class SetCriterion(nn.Module):
    """DETR's loss: match, then cross-entropy on every prediction (matched ones to their
    object's class, the rest to "no object" with weight ``no_object_weight``), L1 and
    1 - GIoU on the matched boxes, each normalised by the number of objects; applied to
    the final and, if present, every auxiliary (intermediate decoder layer) output."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | None = None,
        no_object_weight: float = 0.1,
        weight_ce: float = 1.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher()
        self.weights = {
            "loss_ce": weight_ce,
            "loss_bbox": weight_bbox,
            "loss_giou": weight_giou,
        }
        class_weight = torch.ones(num_classes + 1)
        class_weight[-1] = no_object_weight  # the last class is "no object"
        self.register_buffer("class_weight", class_weight)

    def single(
        self, outputs: dict, targets: list[dict], num_objects: float
    ) -> dict[str, torch.Tensor]:
        """The three losses for one set of outputs (one decoder layer)."""
        # (B, N, K+1) and (B, N, 4)
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        # per image, the matched (prediction i, object j) pairs; then, as in DETR's
        # code, one index (image, prediction) for the M matched pairs of the batch
        device = boxes.device
        matches = [
            (i.to(device), j.to(device)) for i, j in self.matcher(outputs, targets)
        ]
        image = torch.cat([torch.full_like(i, b) for b, (i, _) in enumerate(matches)])
        index = (image, torch.cat([i for i, _ in matches]))  # (M,) and (M,)
        labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, matches)])
        target = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, matches)])
        # "no object" for every prediction, but the matched ones get their object's class
        target_classes = torch.full(logits.shape[:2], self.num_classes, device=device)
        target_classes[index] = labels
        pred = boxes[index]  # (M, 4)
        loss_ce = F.cross_entropy(
            logits.transpose(1, 2), target_classes, weight=self.class_weight
        )
        if len(pred):
            loss_bbox = F.l1_loss(pred, target, reduction="sum") / num_objects
            # 1 - GIoU of each matched pair (torchvision's; our boxes are valid by
            # construction, so no check reads their values during training)
            loss_giou = (
                torchvision.ops.generalized_box_iou_loss(
                    box_cxcywh_to_xyxy(pred),
                    box_cxcywh_to_xyxy(target),
                    reduction="sum",
                )
                / num_objects
            )
        else:  # no objects at all: keep the graph, zero loss
            loss_bbox = loss_giou = boxes.sum() * 0.0
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def forward(
        self, outputs: dict, targets: list[dict]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the weighted total loss and its parts (detached scalars, for logging)."""
        num_objects = max(1.0, float(sum(len(t["labels"]) for t in targets)))
        parts = self.single(outputs, targets, num_objects)
        total = sum(self.weights[k] * v for k, v in parts.items())
        # read by fit, a batch at a time
        logged = {k: v.detach() for k, v in parts.items()}
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            aux_parts = self.single(aux, targets, num_objects)
            total = total + sum(self.weights[k] * v for k, v in aux_parts.items())
            logged[f"aux{i}_loss_ce"] = aux_parts["loss_ce"].detach()
        return total, logged


# ---------------------------------------------------------------------------
# 4. Positions and 5. the model
# ---------------------------------------------------------------------------


def sine_position_encoding_2d(
    height: int,
    width: int,
    d_model: int,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """DETR's 2-D sine encoding: (height * width, d_model), row-major positions.

    Half the features encode y, half x, each with chapter 3's sines and cosines of the
    coordinate normalised to (0, 2 pi]."""
    if d_model % 4:
        raise ValueError(
            f"d_model must be divisible by 4 (sin and cos for x and y); got {d_model}"
        )
    quarter = d_model // 4
    rows = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    columns = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = (rows / height * 2 * math.pi)[:, None]  # (H, 1)
    x = (columns / width * 2 * math.pi)[:, None]  # (W, 1)
    # (D/4,)
    frequency = temperature ** (
        -torch.arange(quarter, dtype=torch.float32, device=device) / quarter
    )
    # (H, D/2)
    y_enc = torch.cat([torch.sin(y * frequency), torch.cos(y * frequency)], dim=-1)
    # (W, D/2)
    x_enc = torch.cat([torch.sin(x * frequency), torch.cos(x * frequency)], dim=-1)
    grid = torch.cat(
        [
            y_enc[:, None].expand(height, width, -1),
            x_enc[None].expand(height, width, -1),
        ],
        -1,
    )
    return grid.reshape(height * width, d_model)


@dataclass
class DETRConfig:
    """Sizes of a small :class:`DETR` for 64 x 64 canvases on a CPU."""

    num_classes: int = 10
    num_queries: int = 10
    d_model: int = 128
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 512
    dropout: float = 0.0


class MLP(nn.Module):
    """A small multi-layer perceptron with ReLUs (DETR's box head has 3 layers)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, num_layers: int):
        super().__init__()
        sizes = [d_in] + [d_hidden] * (num_layers - 1) + [d_out]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DETR(nn.Module):
    """CNN backbone -> 1x1 conv to d_model -> + 2-D sine positions -> Transformer encoder ->
    decoder whose inputs are N learned object queries -> per query: class logits (K + 1,
    the last is "no object") and a box (cx, cy, w, h) in [0, 1] through a sigmoid.

    Simplification: positions are added once to the encoder input (as in the original
    Transformer), and the object queries are the decoder input; DETR re-adds both at every
    attention layer.
    """

    def __init__(self, backbone: nn.Module, config: DETRConfig):
        super().__init__()
        if not (
            hasattr(backbone, "feature_map")
            and isinstance(getattr(backbone, "out_channels", None), int)
        ):
            raise TypeError(
                "backbone must have a feature_map(images) method and an out_channels "
                "attribute (e.g. a cnn.SmallCNN)"
            )
        c = self.config = config
        self.backbone = backbone  # images -> (B, C, H', W'), via .feature_map
        self.input_projection = nn.Conv2d(
            backbone.out_channels, c.d_model, kernel_size=1
        )
        self.encoder = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout)
            for _ in range(c.num_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout)
            for _ in range(c.num_decoder_layers)
        )
        self.query_embedding = nn.Parameter(torch.randn(c.num_queries, c.d_model))
        self.class_head = nn.Linear(c.d_model, c.num_classes + 1)
        self.box_head = MLP(c.d_model, c.d_model, 4, num_layers=3)
        self.feature_size: tuple[int, int] | None = None

    def forward(self, images: torch.Tensor, need_weights: bool = False) -> dict:
        """images (B, C, H, W) -> ``pred_logits`` (B, N, K+1), ``pred_boxes`` (B, N, 4) and
        ``aux_outputs``: the same for every earlier decoder layer."""
        check_tensor(
            "images", images, ndim=4, expected="(batch, channels, height, width)"
        )
        # (B, D, H', W')
        features = self.input_projection(self.backbone.feature_map(images))
        b, d, h, w = features.shape
        self.feature_size = (h, w)
        # (H'W', D)
        positions = sine_position_encoding_2d(h, w, d, device=features.device).to(
            features.dtype
        )
        memory = features.flatten(2).transpose(1, 2) + positions  # (B, H'W', D)
        for block in self.encoder:
            memory = block(memory, need_weights=need_weights)
        memory = memory + positions  # positions again, so queries can find places
        y = self.query_embedding.expand(b, -1, -1)  # (B, N, D)
        layer_outputs = []
        for block in self.decoder:  # no causal mask: queries see each other
            y = block(y, memory, need_weights=need_weights)
            layer_outputs.append(y)
        predictions = [
            {
                "pred_logits": self.class_head(o),
                "pred_boxes": self.box_head(o).sigmoid(),
            }
            for o in layer_outputs
        ]
        return {**predictions[-1], "aux_outputs": predictions[:-1]}

    def cross_attention_maps(self) -> list[torch.Tensor]:
        """Per decoder layer (B, heads, N queries, H' * W') from the last call with
        ``need_weights=True``; reshape the last axis to ``self.feature_size``."""
        return [block.cross_attention_weights for block in self.decoder]


@torch.no_grad()
def postprocess(outputs: dict, image_size: int | tuple[int, int]) -> list[dict]:
    """Per image: ``scores`` and ``labels`` (the most likely real class of each query) and
    ``boxes`` in pixels (x1, y1, x2, y2) -- the format of torchmetrics' mAP."""
    height, width = (
        (image_size, image_size) if isinstance(image_size, int) else image_size
    )
    probabilities = outputs["pred_logits"].softmax(-1)[..., :-1]  # drop "no object"
    scores, labels = probabilities.max(-1)
    scale = torch.tensor([width, height, width, height], device=scores.device)
    boxes = box_cxcywh_to_xyxy(outputs["pred_boxes"]) * scale
    return [
        {"scores": s, "labels": l, "boxes": bx}
        for s, l, bx in zip(scores, labels, boxes)
    ]


@torch.no_grad()
def mean_average_precision(
    model: nn.Module,
    dataset,
    image_size: int,
    batch_size: int = 100,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """COCO-style mAP of ``model`` on a :class:`~course_lib.data.DetectionSet`, computed by
    ``torchmetrics.detection.MeanAveragePrecision``: ``map_50`` (IoU threshold 0.5) and
    ``map`` (averaged over IoU thresholds 0.5, 0.55, ..., 0.95)."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
    was_training = model.training
    model.eval()
    for images, targets in dataset.batches(batch_size):
        predictions = postprocess(
            model(images.to(device) if device else images), image_size
        )
        truths = [
            {
                "labels": t["labels"],
                "boxes": box_cxcywh_to_xyxy(t["boxes"]) * image_size,
            }
            for t in targets
        ]
        metric.update([{k: v.cpu() for k, v in p.items()} for p in predictions], truths)
    model.train(was_training)
    result = metric.compute()
    return {"map_50": result["map_50"].item(), "map": result["map"].item()}


def true_positives(
    detections: list[dict], truths: list[dict], label: int, iou_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Detections of class ``label`` over all images, matched as COCO does: in order of
    score, each takes the unmatched object of its class it overlaps most, if the IoU is
    at least ``iou_threshold``. ``detections`` and ``truths`` hold one dict per image
    (``boxes`` xyxy, ``labels``; detections also ``scores``). Returns the scores (K,),
    whether each is a true positive (K,) bool, and the number of objects of the class."""
    if len(detections) != len(truths):
        raise ValueError(
            f"detections and truths must have one dict per image; got "
            f"{len(detections)} and {len(truths)}"
        )
    scores, hits, num_objects = [], [], 0
    for detection, truth in zip(detections, truths):
        mine = detection["labels"] == label
        boxes, score = detection["boxes"][mine], detection["scores"][mine]
        objects = truth["boxes"][truth["labels"] == label]
        num_objects += len(objects)
        order = score.argsort(descending=True)
        iou = torchvision.ops.box_iou(boxes[order], objects)  # (K_image, M_image)
        taken = torch.zeros(len(objects), dtype=torch.bool)
        for row in iou:
            candidates = row.masked_fill(taken, -1.0)
            hit = len(objects) > 0 and bool(candidates.max() >= iou_threshold)
            if hit:
                taken[candidates.argmax()] = True
            hits.append(hit)
        scores.append(score[order])
    return torch.cat(scores), torch.tensor(hits, dtype=torch.bool), num_objects


def precision_recall(
    scores: torch.Tensor, is_true_positive: torch.Tensor, num_objects: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Down the ranking of one class's K detections (highest score first): precision
    (K,), recall (K,) and the precision envelope (K,), the best precision at this
    recall or any higher one."""
    check_tensor("scores", scores, ndim=1, expected="(K,) detection scores")
    check_tensor("is_true_positive", is_true_positive, ndim=1, expected="(K,) bool")
    if len(scores) != len(is_true_positive):
        raise ValueError("scores and is_true_positive need one entry per detection")
    if num_objects < 1:
        raise ValueError(f"num_objects must be at least 1; got {num_objects}")
    hit = is_true_positive[scores.argsort(descending=True, stable=True)].double()
    true_positives = hit.cumsum(0)
    precision = true_positives / torch.arange(1, len(hit) + 1)
    recall = true_positives / num_objects
    envelope = precision.flip(0).cummax(0).values.flip(0)
    return precision, recall, envelope


def average_precision(
    scores: torch.Tensor, is_true_positive: torch.Tensor, num_objects: int
) -> float:
    """All-point interpolated average precision of one class: the sum over the ranking
    of recall steps x the precision envelope (:func:`precision_recall`)."""
    _, recall, envelope = precision_recall(scores, is_true_positive, num_objects)
    recall_steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((recall_steps * envelope).sum())
