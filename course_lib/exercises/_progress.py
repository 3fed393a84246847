"""What the learner has done in this session: :func:`progress`."""

from __future__ import annotations

from .._text import WIDTH, fill, shorten
from ._core import EXERCISES, NOT_ATTEMPTED, RESULTS
from ._predictions import PREDICTIONS

__all__ = ["progress"]

_MARKS = {"passed": "✓", "failed": "✗", NOT_ATTEMPTED: "·"}


def progress(chapter: str | None = None) -> dict[str, str]:
    """Print, for the exercises and predictions of ``chapter`` (a notebook stem such
    as ``"04_transformer"``; ``None``: all chapters), which passed, failed or were not
    attempted in this kernel session. Returns {id: status}."""
    items = [*EXERCISES.values(), *PREDICTIONS.values()]
    chapters = sorted({item.chapter for item in items})
    if chapter is not None and chapter not in chapters:
        raise ValueError(f"chapter must be one of {chapters} or None; got {chapter!r}")
    status = {
        item.id: RESULTS.get(item.id, NOT_ATTEMPTED)
        for item in items
        if chapter in (None, item.chapter)
    }
    counts = {s: list(status.values()).count(s) for s in _MARKS}
    print(
        fill(
            f"{'This chapter' if chapter else 'The book'}: {counts['passed']} passed, "
            f"{counts['failed']} not yet right, {counts[NOT_ATTEMPTED]} not attempted."
        )
    )
    for item in items:
        if item.id in status:
            title = getattr(item, "title", None) or f"prediction: {item.question}"
            line = f"  {_MARKS[status[item.id]]} {item.id}: {title}"
            print(shorten(line, WIDTH))
    return status
