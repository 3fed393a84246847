"""One look across the book: a matplotlib style, attention heatmaps, curves and boxes.

Every attention-weight picture in the book goes through :func:`show_heatmaps`
(queries on the vertical axis, keys on the horizontal one, darker = more weight),
so a reader learns to read it once.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = [
    "use_style",
    "show_heatmaps",
    "plot_lines",
    "draw_boxes",
    "show_detections",
    "transformer_diagram",
    "vit_diagram",
    "detr_diagram",
    "moco_diagram",
]

ATTENTION_CMAP = "Reds"


def use_style() -> None:
    """The book's matplotlib defaults: crisp PNGs, light grid, no top/right spines."""
    matplotlib.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 120,
            "figure.figsize": (6.0, 3.6),
            "figure.autolayout": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 10,
            "legend.frameon": False,
            "image.cmap": ATTENTION_CMAP,
        }
    )


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def show_heatmaps(
    weights,
    *,
    xlabel: str = "keys",
    ylabel: str = "queries",
    titles: Sequence[str] | Sequence[Sequence[str]] | None = None,
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
    cmap: str = ATTENTION_CMAP,
    vmin: float | None = 0.0,
    vmax: float | None = None,
    annotate: bool = False,
    cell_size: float = 2.6,
    colorbar: bool = True,
    suptitle: str | None = None,
):
    """Draw attention weights as heatmaps and return the figure.

    ``weights`` is one matrix (n_q, n_k), a row of matrices (cols, n_q, n_k) or a
    grid (rows, cols, n_q, n_k) -- e.g. (layers, heads, n_q, n_k). Rows of the
    matrices are queries, columns are keys. ``titles`` has one entry per matrix
    (flat list, or nested rows). All panels share one colour scale.
    """
    w = _as_numpy(weights)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[None]
    if w.ndim != 4:
        raise ValueError(
            "weights must have shape (n_q, n_k), (cols, n_q, n_k) or "
            f"(rows, cols, n_q, n_k); got {tuple(weights.shape)}"
        )
    rows, cols, n_q, n_k = w.shape
    if titles is not None:
        flat = (
            [t for row in titles for t in row]
            if titles and not isinstance(titles[0], str)
            else list(titles)
        )
        if len(flat) != rows * cols:
            raise ValueError(
                f"titles must have one entry per heatmap ({rows * cols}); got {len(flat)}"
            )
    else:
        flat = None
    aspect = n_q / max(n_k, 1)
    width = cell_size * cols + (0.8 if colorbar else 0.0)
    height = max(cell_size * aspect, 1.2) * rows + (0.4 if suptitle else 0.0)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width, height),
        squeeze=False,
        sharex=True,
        sharey=True,
        constrained_layout=True,
    )
    vmax = float(np.nanmax(w)) if vmax is None else vmax
    image = None
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            image = ax.imshow(
                w[r, c],
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                aspect="auto",
                interpolation="nearest",
            )
            ax.grid(False)
            if flat is not None:
                ax.set_title(flat[r * cols + c])
            if r == rows - 1:
                ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel(ylabel)
            if xticklabels is not None:
                ax.set_xticks(
                    range(n_k), labels=list(xticklabels), rotation=60, ha="right"
                )
            if yticklabels is not None:
                ax.set_yticks(range(n_q), labels=list(yticklabels))
            if annotate:
                for i in range(n_q):
                    for j in range(n_k):
                        value = w[r, c, i, j]
                        ax.text(
                            j,
                            i,
                            f"{value:.2f}",
                            ha="center",
                            va="center",
                            fontsize=8,
                            color="white" if value > 0.6 * vmax else "black",
                        )
    if colorbar and image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_lines(
    x,
    ys: dict,
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    ax=None,
    styles: dict | None = None,
):
    """Plot several named curves over the same ``x``; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    x = _as_numpy(x)
    for name, y in ys.items():
        y = _as_numpy(y)
        if y.shape != x.shape:
            raise ValueError(
                f"curve {name!r} has shape {y.shape}, x has shape {x.shape}"
            )
        ax.plot(x, y, label=name, **(styles or {}).get(name, {}))
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if len(ys) > 1:
        ax.legend()
    return ax


def draw_boxes(
    ax,
    boxes,
    labels=None,
    scores=None,
    color: str = "C3",
    linestyle: str = "-",
    linewidth: float = 1.5,
    fontsize: int = 8,
) -> None:
    """Draw (x1, y1, x2, y2) pixel boxes on ``ax``, each with its label (and score)."""
    boxes = _as_numpy(boxes).reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (x1 - 0.5, y1 - 0.5),
                x2 - x1,
                y2 - y1,
                fill=False,
                edgecolor=color,
                linestyle=linestyle,
                linewidth=linewidth,
            )
        )
        text = "" if labels is None else str(int(labels[i]))
        if scores is not None:
            text += f" {float(scores[i]):.2f}"
        if text:
            ax.text(
                x1 - 0.5,
                y1 - 1.5,
                text.strip(),
                color=color,
                fontsize=fontsize,
                va="bottom",
                ha="left",
                fontweight="bold",
            )


def show_detections(
    images,
    detections,
    truths=None,
    ncols: int = 4,
    score_threshold: float = 0.5,
    titles=None,
    cell_size: float = 2.4,
):
    """A grid of grey images with predicted boxes (red, with label and score) above
    ``score_threshold`` and, if given, the true boxes (green, dashed). ``detections`` and
    ``truths`` are lists of dicts with ``boxes`` (x1, y1, x2, y2 in pixels) and ``labels``."""
    n = len(images)
    rows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(
        rows, ncols, figsize=(cell_size * ncols, cell_size * rows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(_as_numpy(images[i]).squeeze(), cmap="gray", vmin=0, vmax=1)
        if truths is not None:
            draw_boxes(
                ax, truths[i]["boxes"], color="#2ca02c", linestyle="--", linewidth=1.0
            )
        d = detections[i]
        keep = _as_numpy(d["scores"]) >= score_threshold
        draw_boxes(
            ax,
            _as_numpy(d["boxes"])[keep],
            _as_numpy(d["labels"])[keep],
            _as_numpy(d["scores"])[keep],
        )
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def _canvas(width: float, height: float, size: tuple[float, float]):
    fig, ax = plt.subplots(figsize=size)
    ax.set(xlim=(0, width), ylim=(0, height))
    ax.axis("off")
    return fig, ax


def _box(ax, x, y, width, text, color, height=0.7, size=9):
    """A labelled box centred at (x, y)."""
    corner = (x - width / 2, y - height / 2)
    ax.add_patch(plt.Rectangle(corner, width, height, fc=color, ec="0.35", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, x0, y0, x1, y1, **style):
    style = dict(arrowstyle="->", color="0.3", lw=1.2) | style
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=style)


def _frame(ax, x0, y0, x1, y1, label):
    """A dashed frame around a stack of blocks, labelled at its top left."""
    ax.add_patch(
        plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fc="#f4f4f4", ec="0.6", ls="--")
    )
    ax.text(x0 + 0.15, y1 - 0.25, label, fontsize=9, color="0.3")


ATTENTION_COLOR, FFN_COLOR, EMBED_COLOR, INPUT_COLOR = (
    "#fff7bc",
    "#e5f5e0",
    "#fde0dd",
    "#deebf7",
)


def transformer_diagram() -> plt.Figure:
    """Chapter 4's picture of the encoder--decoder Transformer, its 8 steps numbered."""
    fig, ax = _canvas(10, 10, (9.5, 6.2))

    def step(x, y, n):
        circle = dict(boxstyle="circle,pad=0.25", fc="#c0392b", ec="none")
        ax.text(
            x,
            y,
            str(n),
            ha="center",
            va="center",
            fontsize=9,
            color="white",
            bbox=circle,
        )

    def stack(x, width, top, label, layers, numbers):
        """Input boxes at y = 1 and 2.2, then blocks 1.5 apart inside a "× N" frame."""
        _frame(ax, x - width / 2 - 0.2, 3.0, x + width / 2 + 0.2, top, label)
        ys = [1.0, 2.2] + [3.8 + 1.5 * i for i in range(len(layers) - 2)]
        for (text, color), y in zip(layers, ys):
            _box(ax, x, y, width, text, color, 0.6 if y < 3 else 0.7)
        for y0, y1 in zip(ys, ys[1:]):
            _arrow(
                ax, x, y0 + (0.3 if y0 < 3 else 0.35), x, y1 - (0.3 if y1 < 3 else 0.35)
            )
        for y, n in zip(ys[1:], numbers):
            step(x - width / 2 - 0.45, y, n)
        return ys[-1]

    top = stack(
        2.3,
        3.0,
        7.3,
        "encoder × N",
        [
            ("source: seventy - one <eos>", INPUT_COLOR),
            ("embedding × √d + positions", EMBED_COLOR),
            ("multi-head self-attention\n+ add & norm", ATTENTION_COLOR),
            ("feed-forward\n+ add & norm", FFN_COLOR),
        ],
        [1, 2, 3],
    )
    _arrow(ax, 2.3, top + 0.35, 2.3, 7.9)
    _box(ax, 2.3, 8.2, 2.0, "memory", "#d9d9d9", 0.55)
    top = stack(
        7.5,
        3.4,
        8.4,
        "decoder × N",
        [
            ("target so far: <bos> soixante et", INPUT_COLOR),
            ("embedding × √d + positions", EMBED_COLOR),
            ("masked multi-head self-attention\n+ add & norm", ATTENTION_COLOR),
            ("cross-attention (Q: decoder,\nK, V: memory) + add & norm", "#fdd0a2"),
            ("feed-forward\n+ add & norm", FFN_COLOR),
        ],
        [4, 5, 6, 7],
    )
    _box(ax, 7.5, 9.0, 3.4, "linear + softmax → next word: onze", "#c7e9c0", 0.6)
    _arrow(ax, 7.5, top + 0.35, 7.5, 8.7)
    _arrow(ax, 3.3, 8.2, 5.9, 5.45)  # the memory feeds every cross-attention
    _arrow(ax, 9.55, 9.0, 9.55, 1.0, color="#c0392b", connectionstyle="arc3,rad=-0.3")
    ax.text(
        9.85,
        5.0,
        "append,\nrepeat\nuntil\n<eos>",
        fontsize=8,
        color="#c0392b",
        ha="center",
    )
    step(5.35, 9.0, 7)
    step(9.55, 9.6, 8)
    return fig


def vit_diagram() -> plt.Figure:
    """Chapter 5's ViT (the structure of the paper's Figure 1): patches, linear
    projection, [class] token and position embeddings, a pre-LN encoder, a head."""
    fig, ax = _canvas(10, 7, (9.5, 4.6))
    # the image cut into 3 x 3 patches, then the sequence of patches
    for i in range(3):
        for j in range(3):
            ax.add_patch(
                plt.Rectangle(
                    (0.3 + 0.45 * j, 1.6 + 0.45 * (2 - i)),
                    0.42,
                    0.42,
                    fc="#c6dbef",
                    ec="0.35",
                )
            )
    ax.text(0.97, 1.25, "image → P × P patches", ha="center", fontsize=8)
    _arrow(ax, 1.75, 2.3, 2.3, 1.3)
    xs = [2.8 + 0.75 * k for k in range(10)]
    for k, x in enumerate(xs):
        if k == 0:
            _box(ax, x, 1.0, 0.6, "[class]", "#fdd0a2", 0.5, size=7)
        else:
            ax.add_patch(
                plt.Rectangle((x - 0.22, 0.78), 0.44, 0.44, fc="#c6dbef", ec="0.35")
            )
            ax.text(x, 1.0, str(k), ha="center", va="center", fontsize=7)
        ax.text(
            x,
            1.62,
            f"{k}",
            ha="center",
            fontsize=7,
            color="#7f2704",
            bbox=dict(boxstyle="round,pad=0.15", fc=EMBED_COLOR, ec="none"),
        )
        _arrow(ax, x, 1.85, x, 2.55, lw=0.8)
    ax.text(xs[-1] + 0.55, 1.62, "+ position\nembeddings", fontsize=7, va="center")
    ax.text(
        xs[5],
        0.35,
        "flatten each patch, project with E (linear)",
        ha="center",
        fontsize=8,
    )
    _frame(ax, 2.3, 2.6, 9.9, 5.0, "Transformer encoder × L (pre-LN)")
    _box(
        ax,
        6.1,
        3.35,
        7.0,
        "LayerNorm → multi-head self-attention → + residual",
        ATTENTION_COLOR,
        0.55,
    )
    _box(ax, 6.1, 4.25, 7.0, "LayerNorm → MLP (GELU) → + residual", FFN_COLOR, 0.55)
    _arrow(ax, 6.1, 3.63, 6.1, 3.97)
    _arrow(ax, xs[0], 5.0, xs[0], 5.7)
    _box(ax, xs[0] + 0.9, 6.1, 2.6, "LayerNorm → linear head\n→ class", "#c7e9c0", 0.7)
    ax.text(
        xs[0] + 2.4,
        5.35,
        "only the [class] token's output\nis read",
        fontsize=8,
        color="0.3",
    )
    return fig


def detr_diagram() -> plt.Figure:
    """Chapter 6's DETR: CNN backbone, positions, encoder, decoder fed by object queries,
    and the class and box heads of every query."""
    fig, ax = _canvas(10, 5, (9.5, 3.8))
    _box(ax, 0.8, 2.5, 1.3, "image", INPUT_COLOR, 0.8)
    _box(ax, 2.45, 2.5, 1.6, "CNN backbone\n+ 1×1 conv", "#c6dbef", 0.9)
    _box(
        ax,
        4.25,
        2.5,
        1.6,
        "feature map as\ntokens + 2-D sine\npositions",
        EMBED_COLOR,
        1.1,
    )
    _box(ax, 6.05, 2.5, 1.5, "Transformer\nencoder", ATTENTION_COLOR, 0.9)
    _box(ax, 7.75, 2.5, 1.5, "Transformer\ndecoder", ATTENTION_COLOR, 0.9)
    for x0, x1 in ((1.45, 1.65), (3.25, 3.45), (5.05, 5.3), (6.8, 7.0)):
        _arrow(ax, x0, 2.5, x1, 2.5)
    ax.text(6.9, 3.05, "memory", fontsize=7, ha="center", color="0.3")
    for k in range(5):
        x = 7.15 + 0.3 * k
        ax.add_patch(
            plt.Rectangle((x - 0.12, 0.55), 0.24, 0.4, fc="#fdd0a2", ec="0.35")
        )
    ax.text(7.75, 0.2, "N object queries (learned)", ha="center", fontsize=8)
    _arrow(ax, 7.75, 1.0, 7.75, 2.03)
    for k, y in enumerate((4.4, 3.85, 3.3)):
        _arrow(ax, 8.5, 2.6 + 0.1 * k, 8.85, y, lw=0.8)
        _box(
            ax,
            9.35,
            y,
            1.0,
            "class, box" if k < 2 else "∅ (no object)",
            "#c7e9c0",
            0.42,
            size=7,
        )
    ax.text(
        9.35, 2.75, "one prediction\nper query", ha="center", fontsize=7, color="0.3"
    )
    return fig


def moco_diagram() -> plt.Figure:
    """Chapter 7's MoCo: two views, the query encoder, the momentum key encoder, the
    queue of negative keys, and InfoNCE over the positive and the queue."""
    fig, ax = _canvas(10, 5, (9.5, 3.8))
    _box(ax, 0.9, 3.6, 1.5, "view 1 of x", INPUT_COLOR, 0.6)
    _box(ax, 0.9, 1.4, 1.5, "view 2 of x", INPUT_COLOR, 0.6)
    _box(
        ax,
        3.0,
        3.6,
        2.3,
        "query encoder $f_q$\n(trained by gradient)",
        ATTENTION_COLOR,
        0.8,
    )
    _box(
        ax, 3.0, 1.4, 2.3, "key encoder $f_k$\n(momentum, no gradient)", "#fdd0a2", 0.8
    )
    _arrow(ax, 1.65, 3.6, 1.85, 3.6)
    _arrow(ax, 1.65, 1.4, 1.85, 1.4)
    _arrow(ax, 3.0, 3.2, 3.0, 1.8, color="#c0392b", ls="--")
    ax.text(
        3.1,
        2.5,
        r"$\theta_k \leftarrow m\,\theta_k + (1 - m)\,\theta_q$",
        fontsize=9,
        color="#c0392b",
    )
    _box(ax, 5.1, 3.6, 0.9, "q", "white", 0.5)
    _box(ax, 5.1, 1.4, 0.9, "k₊", "white", 0.5)
    _arrow(ax, 4.15, 3.6, 4.65, 3.6)
    _arrow(ax, 4.15, 1.4, 4.65, 1.4)
    for k in range(6):
        ax.add_patch(
            plt.Rectangle((6.2 + 0.3 * k, 0.55), 0.26, 0.5, fc="#d9d9d9", ec="0.35")
        )
    ax.text(7.05, 0.2, "queue of K negative keys", ha="center", fontsize=8)
    _arrow(ax, 5.55, 1.3, 6.15, 0.85, lw=0.8)
    ax.text(5.2, 0.95, "enqueue", fontsize=7, color="0.3")
    _box(
        ax,
        8.4,
        2.5,
        2.6,
        "InfoNCE: pick k₊ among\nk₊ and the queue\n(softmax of q·k / τ)",
        "#c7e9c0",
        1.0,
    )
    _arrow(ax, 5.55, 3.5, 7.1, 2.8)
    _arrow(ax, 5.55, 1.5, 7.1, 2.3)
    _arrow(ax, 7.8, 1.05, 8.1, 1.95)
    return fig
