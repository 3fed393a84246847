"""Predict, then run: the learner commits to an answer before an experiment.

A chapter asks a multiple-choice question in its text, the learner sets
``my_prediction = "b"`` (checked at once by :func:`guess`, so a typo fails in its own
cell), the experiment runs, and :func:`reveal` compares the
prediction with the outcome *the run computed* and explains it. The chapter's hidden
outcome cell asserts that the outcome is the :attr:`Prediction.answer` its text
explains, so the book notices when an experiment stops showing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._text import fill
from ._core import NOT_ATTEMPTED, RESULTS

__all__ = ["Prediction", "PREDICTIONS", "predict", "guess", "reveal"]


@dataclass
class Prediction:
    """``choices`` maps a letter to a short answer; ``answer`` is the letter the
    experiment shows (on any seed); ``why`` explains it."""

    id: str
    chapter: str
    question: str
    choices: dict[str, str]
    answer: str
    why: str


PREDICTIONS: dict[str, Prediction] = {}


def predict(prediction: Prediction) -> Prediction:
    """Register a prediction question (ids start with ``pred-``)."""
    if not prediction.id.startswith("pred-"):
        raise ValueError(f"prediction ids start with 'pred-'; got {prediction.id!r}")
    if prediction.id in PREDICTIONS:
        raise ValueError(f"prediction id {prediction.id!r} is registered twice")
    if prediction.answer not in prediction.choices:
        raise ValueError(
            f"answer {prediction.answer!r} is not one of the choices "
            f"{sorted(prediction.choices)}"
        )
    PREDICTIONS[prediction.id] = prediction
    return prediction


def _checked(
    prediction_id: str, my_prediction: str | None
) -> tuple[Prediction, str | None]:
    """The prediction and the learner's letter, lower-cased; a letter that is not one of
    the choices is an error that lists them."""
    if prediction_id not in PREDICTIONS:
        raise ValueError(
            f"unknown prediction_id {prediction_id!r}; known: "
            f"{', '.join(sorted(PREDICTIONS))}"
        )
    prediction = PREDICTIONS[prediction_id]
    letters = sorted(prediction.choices)
    if my_prediction is not None:
        my_prediction = str(my_prediction).strip().strip("()").lower()
    if my_prediction not in (None, *letters):
        raise ValueError(
            f"my_prediction must be one of {letters} (or None); got {my_prediction!r}"
        )
    return prediction, my_prediction


def guess(prediction_id: str, my_prediction: str | None) -> None:
    """Check the learner's letter where it is set, before the experiment runs: a typo
    fails at once, in its own cell, naming the allowed letters."""
    prediction, letter = _checked(prediction_id, my_prediction)
    if letter is None:
        print(
            fill(
                f"· {prediction_id}: no prediction yet. Set my_prediction to "
                f"{' or '.join(repr(c) for c in sorted(prediction.choices))} above and "
                "run this cell again, or read on to see the answer."
            )
        )
    else:
        print(fill(f"Noted: {_choice(prediction, letter)}. Now run the experiment."))


def _choice(prediction: Prediction, letter: str) -> str:
    return f"({letter}) {prediction.choices[letter]}"


def reveal(prediction_id: str, my_prediction: str | None, outcome: str) -> bool:
    """Say whether ``my_prediction`` (a letter, or ``None`` if the learner did not
    commit) matches ``outcome``, the letter the experiment just measured, and why.
    Returns whether they match."""
    prediction, my_prediction = _checked(prediction_id, my_prediction)
    if outcome not in prediction.choices:
        raise ValueError(
            f"outcome must be one of {sorted(prediction.choices)}; got {outcome!r}"
        )
    lines = []
    if my_prediction is None:
        lines.append(
            f"· {prediction_id}: no prediction made (set my_prediction before the "
            f"experiment). The run shows {_choice(prediction, outcome)}."
        )
    elif my_prediction == outcome:
        lines.append(
            f"✓ {prediction_id}: you predicted {_choice(prediction, outcome)}, "
            "and that is what the run shows."
        )
    else:
        lines.append(
            f"✗ {prediction_id}: you predicted {_choice(prediction, my_prediction)}; "
            f"the run shows {_choice(prediction, outcome)}."
        )
    if outcome == prediction.answer:
        lines.append(f"Why: {prediction.why}")
    else:
        lines.append(
            f"This run differs from what the text explains, "
            f"{_choice(prediction, prediction.answer)}: check that the cells above ran "
            "in order with the chapter's settings."
        )
    print(
        "\n".join(fill(line, indent="  " if i else "") for i, line in enumerate(lines))
    )
    matched = my_prediction == outcome
    RESULTS[prediction_id] = (
        NOT_ATTEMPTED if my_prediction is None else "passed" if matched else "failed"
    )
    return matched
