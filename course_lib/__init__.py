"""course_lib: the code of *Attention, Hands-On*, one module per idea.

Every notebook starts with::

    import course_lib
    cfg = course_lib.setup()          # profile, seed, device -- printed on one line

and ends with a hidden outcome cell::

    course_lib.record("01_attention_pooling", mse_parametric=..., train_seconds=...)

``setup`` reads four environment variables, so that CI, a laptop and Colab can run
the same notebook unchanged:

==================  =====================================================  ==========================
variable            meaning                                                default
==================  =====================================================  ==========================
``COURSE_PROFILE``  ``quick`` (minutes on a 2-core CPU) or ``full``        ``quick``, on every device
``COURSE_SEED``     seeds Python's ``random``, NumPy and PyTorch           ``0``
``COURSE_DEVICE``   ``cpu``, ``cuda``, ``cuda:1``, ``mps`` ...             cuda, then mps, then cpu
``COURSE_SMOKE``    ``1``: a smoke run -- the profile's code path with      ``0``
                    every training loop capped at a few steps and tiny
                    data (CI runs the full profile this way)
``COURSE_MAX_STEPS`` stop every training loop after this many steps (real   unset
                    data; ``tools.gpu_check`` times the full profile so)
``COURSE_STRICT``   ``1``: a failed outcome check raises (CI, ``make``);    ``0``: it prints what
                    otherwise it prints what differs and carries on       differs
==================  =====================================================  ==========================

``record`` prints a chapter's headline numbers and, when ``COURSE_RESULTS_DIR`` is set,
writes them to ``$COURSE_RESULTS_DIR/<notebook_stem>.json`` (the book's results page
is built from those files); ``outcomes.check`` then checks them (``outcomes.py``).
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers
import os
import platform
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from . import outcomes
from ._checks import environment_flag, plain_value
from ._text import fill
from .references import on_track

__all__ = ["Config", "setup", "record", "on_track", "outcomes", "SMOKE_STEPS"]
__version__ = "0.1.0"

PROFILES = ("quick", "full")
SMOKE_STEPS = 3  # a smoke run stops every training loop after this many steps
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding takes 0 .. 2**32 - 1
T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """What :func:`setup` chose for this run."""

    profile: str
    seed: int
    device: torch.device
    started: float  # time.perf_counter() when setup() ran
    smoke: bool = False  # COURSE_SMOKE=1: tiny data, training capped at SMOKE_STEPS
    max_steps: int | None = None  # COURSE_MAX_STEPS: real data, training capped

    def choose(self, *, quick: T, full: T, smoke: dict | None = None) -> T:
        """Return ``quick`` or ``full`` for the current profile.

        Each notebook keeps its per-profile hyperparameters in one cell::

            HP = cfg.choose(quick=dict(d_model=64, epochs=8),
                            full=dict(d_model=256, epochs=40),
                            smoke=dict(n_train=64))   # only in a smoke run (CI)

        In a smoke run (``COURSE_SMOKE=1``) the entries of ``smoke`` replace those of the
        chosen dict: the profile's models and code path, on tiny data.
        """
        chosen = quick if self.profile == "quick" else full
        if not (self.smoke and smoke):
            return chosen
        if not isinstance(chosen, dict):
            raise TypeError(
                "choose(smoke=...) overrides entries of a dict; quick and full "
                f"must be dicts, got {type(chosen).__name__}"
            )
        unknown = sorted(set(smoke) - set(chosen))
        if unknown:
            raise KeyError(
                f"smoke overrides {unknown}, which the profile does not define"
            )
        return {**chosen, **smoke}


_CONFIG: Config | None = None


def _pick_device(requested: str | None) -> torch.device:
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as error:
            raise ValueError(
                f"device (or COURSE_DEVICE) must name a torch device such as 'cpu', "
                f"'cuda', 'cuda:0' or 'mps'; got {requested!r}"
            ) from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={requested!r} was requested but CUDA is not available"
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(
                f"device={requested!r} was requested but MPS is not available"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and CUDA)."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= seed <= MAX_SEED
    ):
        raise ValueError(
            f"seed (or COURSE_SEED) must be an integer from 0 to {MAX_SEED}; got {seed!r}"
        )
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _max_steps_from_environment() -> int | None:
    raw = os.environ.get("COURSE_MAX_STEPS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"COURSE_MAX_STEPS must be a positive number of steps; got {raw!r}"
        )
    return int(raw)


def setup(
    profile: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    verbose: bool = True,
) -> Config:
    """Choose profile, seed and device for a notebook, seed everything, print the choice.

    Explicit arguments win over the ``COURSE_*`` environment variables, which win over
    the defaults (the ``quick`` profile on every device, seed 0, the best device).
    ``COURSE_SMOKE=1`` makes it a smoke run (see :meth:`Config.choose`).
    Returns a :class:`Config`; it is also kept for :func:`record`.
    """
    global _CONFIG
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"device must be a string such as 'cpu' or 'cuda'; got {device!r}"
        )
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}")
    device_ = _pick_device(
        str(device) if device is not None else os.environ.get("COURSE_DEVICE") or None
    )

    if profile is None and os.environ.get("COURSE_PROFILE"):
        profile, why = os.environ["COURSE_PROFILE"], "from COURSE_PROFILE"
        if profile not in PROFILES:
            raise ValueError(
                f"COURSE_PROFILE must be one of {PROFILES}; got {profile!r}"
            )
    elif profile is None:
        profile, why = "quick", "the default"
    else:
        why = "requested"

    if seed is None:
        raw = os.environ.get("COURSE_SEED", "0")
        try:
            seed = int(raw)
        except ValueError:
            raise ValueError(
                f"COURSE_SEED must be an integer from 0 to {MAX_SEED}; got {raw!r}"
            ) from None
    seed_everything(seed)
    smoke = environment_flag("COURSE_SMOKE", "1 (a smoke run) or 0")
    max_steps = _max_steps_from_environment()

    from . import plot  # the book's one plotting style

    plot.use_style()
    _CONFIG = Config(
        profile=profile,
        seed=seed,
        device=device_,
        started=time.perf_counter(),
        smoke=smoke,
        max_steps=max_steps,
    )
    if verbose:
        print(f"course_lib {__version__}: {profile} profile ({why}), seed {seed}")
        print(f"device {device_}, torch {torch.__version__}")
        if smoke:
            print(
                fill(
                    "smoke run (COURSE_SMOKE=1): tiny data, every training loop stops "
                    f"after {SMOKE_STEPS} steps; the numbers below mean nothing"
                )
            )
        if max_steps and not smoke:
            print(
                fill(
                    f"COURSE_MAX_STEPS={max_steps}: every training loop stops after "
                    f"{max_steps} steps; the numbers below mean little"
                )
            )
    return _CONFIG


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:  # the model name is nicer than 'x86_64' where /proc/cpuinfo exists
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def record(notebook_stem: str, **metrics: Any) -> dict[str, Any]:
    """Print a chapter's headline numbers and save them for the results page.

    ``notebook_stem`` is the notebook's file name without ``.ipynb``
    (e.g. ``"01_attention_pooling"``). ``metrics`` are numbers (tensors and NumPy
    scalars are converted), bools, strings or lists of numbers. When
    ``COURSE_RESULTS_DIR`` is set, they are written to
    ``$COURSE_RESULTS_DIR/<notebook_stem>.json`` with the profile, seed, device,
    machine and the seconds since :func:`setup`.
    """
    if (
        not isinstance(notebook_stem, str)
        or not re.fullmatch(r"[A-Za-z0-9_.-]+", notebook_stem)
        or notebook_stem.endswith(".ipynb")
    ):
        raise ValueError(
            "notebook_stem must be the notebook's file name without '.ipynb' "
            f"(letters, digits, '_', '-', '.'), e.g. '01_attention_pooling'; got {notebook_stem!r}"
        )
    if not metrics:
        raise ValueError(
            "record() needs at least one metric, e.g. record(stem, test_accuracy=0.97)"
        )
    out_dir = os.environ.get("COURSE_RESULTS_DIR")
    path = Path(out_dir) / f"{notebook_stem}.json" if out_dir else None
    if path is not None:  # a failed record must not leave the last run's numbers
        path.unlink(missing_ok=True)
    values = {name: plain_value(name, value) for name, value in metrics.items()}

    width = max(len(name) for name in values)
    print(f"Results of {notebook_stem}:")
    for name, value in values.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"  {name:<{width}}  {shown}")

    cfg = _CONFIG
    result = {
        "notebook": notebook_stem,
        "metrics": values,
        "profile": cfg.profile if cfg else None,
        "seed": cfg.seed if cfg else None,
        "device": str(cfg.device) if cfg else None,
        "seconds_since_setup": round(time.perf_counter() - cfg.started, 2)
        if cfg
        else None,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
    }
    if cfg is not None and cfg.smoke:
        result["smoke"] = True
    if cfg is not None and cfg.max_steps:
        result["max_steps"] = cfg.max_steps
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(result, indent=2) + "\n")
        partial.replace(path)  # atomic: a reader never sees half a file
    return result
