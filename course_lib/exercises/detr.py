"""Exercises of chapter 6: box formats, generalised IoU, Hungarian matching."""

from __future__ import annotations

import itertools

import torch
from scipy.optimize import linear_sum_assignment

from .. import detr
from ._core import Case, Exercise, Mistake, register

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
# ex-giou
# ---------------------------------------------------------------------------


def _pairs(n, m, seed):
    def make():
        return (
            detr.box_cxcywh_to_xyxy(_random_boxes_cxcywh(n, seed)),
            detr.box_cxcywh_to_xyxy(_random_boxes_cxcywh(m, seed + 100)),
        )

    return make


def _iou_only(boxes1, boxes2):
    return detr.box_iou(boxes1, boxes2)


def _giou_over_union(boxes1, boxes2):
    iou = detr.box_iou(boxes1, boxes2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area1[:, None] + area2[None] - inter
    lt_c = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    rb_c = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    enclosing = (rb_c - lt_c).prod(-1)
    return iou - (enclosing - union) / union


register(
    Exercise(
        id="ex-giou",
        chapter=CHAPTER,
        title="generalised IoU",
        signature="generalized_box_iou(boxes1, boxes2): xyxy (N, 4), (M, 4) -> (N, M)",
        reference=detr.generalized_box_iou,
        cases=[
            Case(
                "two disjoint boxes",
                lambda: (
                    torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
                    torch.tensor([[2.0, 0.0, 3.0, 1.0]]),
                ),
            ),
            Case("3 x 4 random boxes", _pairs(3, 4, seed=0)),
            Case("5 x 2 random boxes", _pairs(5, 2, seed=1)),
        ],
        mistakes=[
            Mistake(
                "that is the plain IoU: GIoU subtracts |C \\ (A ∪ B)| / |C|, with C the smallest "
                "box enclosing both, so that disjoint boxes still get a useful (negative) score.",
                _iou_only,
            ),
            Mistake(
                "the penalty is divided by the union; divide |C| - |A ∪ B| by the area of the "
                "enclosing box C.",
                _giou_over_union,
            ),
            Mistake(
                "the result is transposed: it must be (N, M), one row per box of boxes1.",
                lambda b1, b2: detr.generalized_box_iou(b2, b1),
            ),
        ],
    )
)


# ---------------------------------------------------------------------------
# ex-hungarian
# ---------------------------------------------------------------------------


def brute_force_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimal assignment by trying every one: (rows, cols) of size min(N, M)."""
    n, m = cost.shape
    if n > m:
        cols, rows = brute_force_match(cost.T)
        order = torch.argsort(rows)
        return rows[order], cols[order]
    best = min(
        itertools.permutations(range(m), n),
        key=lambda cols: sum(cost[i, c].item() for i, c in enumerate(cols)),
    )
    return torch.arange(n), torch.tensor(best)


def _greedy_match(cost):
    cost = cost.clone().double()
    rows, cols = [], []
    for _ in range(min(cost.shape)):
        index = int(cost.argmin())
        r, c = divmod(index, cost.shape[1])
        rows.append(r)
        cols.append(c)
        cost[r, :] = float("inf")
        cost[:, c] = float("inf")
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    return torch.tensor([rows[i] for i in order]), torch.tensor(
        [cols[i] for i in order]
    )


def _maximising_match(cost):
    rows, cols = linear_sum_assignment(cost.numpy(), maximize=True)
    return torch.as_tensor(rows), torch.as_tensor(cols)


def _assignment_problem(expected, got, args):
    """None if ``got`` is a valid assignment with the same total cost as ``expected``."""
    (cost,) = args
    n, m = cost.shape
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "match must return a tuple (rows, cols) of two index tensors"
    rows, cols = (torch.as_tensor(x).long().flatten() for x in got)
    if len(rows) != min(n, m) or len(cols) != len(rows):
        return f"an assignment of a {n} x {m} cost matrix has min(N, M) = {min(n, m)} pairs; got {len(rows)} rows and {len(cols)} cols"
    if rows.min() < 0 or rows.max() >= n or cols.min() < 0 or cols.max() >= m:
        return f"indices out of range for a {n} x {m} cost matrix: rows {rows.tolist()}, cols {cols.tolist()}"
    if len(set(rows.tolist())) != len(rows) or len(set(cols.tolist())) != len(cols):
        return f"an assignment is one-to-one, but rows {rows.tolist()} / cols {cols.tolist()} repeat an index"
    total = cost[rows, cols].sum().item()
    e_rows, e_cols = (torch.as_tensor(x).long() for x in expected)
    best = cost[e_rows, e_cols].sum().item()
    if total > best + 1e-6 or total < best - 1e-6:
        return f"your assignment costs {total:.4g}; the minimum is {best:.4g}"
    return None


def _cost_case(values=None, shape=None, seed=0):
    def make():
        if values is not None:
            return (torch.tensor(values, dtype=torch.float64),)
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(*shape, generator=g, dtype=torch.float64),)

    return make


register(
    Exercise(
        id="ex-hungarian",
        chapter=CHAPTER,
        title="a minimum-cost matching",
        signature="match(cost): (N, M) -> (rows, cols), a minimum-cost assignment of size min(N, M)",
        reference=brute_force_match,  # optimality is checked against brute force
        cases=[
            Case("cost [[1, 2], [2, 100]]", _cost_case([[1.0, 2.0], [2.0, 100.0]])),
            Case("a random 4 x 4 cost", _cost_case(shape=(4, 4), seed=3)),
            Case(
                "a random 3 x 5 cost (more predictions than objects, transposed)",
                _cost_case(shape=(3, 5), seed=4),
            ),
            Case(
                "a random 6 x 3 cost (6 queries, 3 objects)",
                _cost_case(shape=(6, 3), seed=5),
            ),
        ],
        mistakes=[
            Mistake(
                "that is a greedy matching (always take the cheapest remaining pair); it can be "
                "far from optimal. Use scipy.optimize.linear_sum_assignment.",
                _greedy_match,
            ),
            Mistake(
                "the assignment maximises the cost; it must minimise it.",
                _maximising_match,
            ),
        ],
        compare=_assignment_problem,
    )
)
