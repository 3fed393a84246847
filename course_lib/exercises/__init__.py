"""Checkers behind the book's coding exercises.

In a notebook::

    from course_lib.exercises import check
    check("ex-epanechnikov", epanechnikov_kernel)   # prints ✓ or what is wrong; returns a bool
    course_lib.exercises.reveal("pred-naive-loss", my_prediction, outcome)
    course_lib.exercises.progress("01_attention_pooling")

Each chapter's exercises live in their own module (``pooling`` for chapter 1, ...);
importing this package registers all of them.
"""

from . import detr, moco, multihead, pooling, scoring, transformer, vit  # noqa: F401  (registers each chapter's exercises)
from ._core import EXERCISES, Case, Exercise, Mistake, check, compare_outputs, register
from ._predictions import PREDICTIONS, Prediction, guess, predict, reveal
from ._progress import progress

__all__ = [
    "check",
    "EXERCISES",
    "Exercise",
    "Case",
    "Mistake",
    "compare_outputs",
    "register",
    "reveal",
    "guess",
    "predict",
    "Prediction",
    "PREDICTIONS",
    "progress",
]
