"""course_lib: the code of *Attention, Hands-On*, one module per idea.

Every notebook starts with::

    import course_lib
    cfg = course_lib.setup()          # profile, seed, device -- printed on one line

and ends with a hidden outcome cell::

    course_lib.record("01_attention_pooling", mse_parametric=..., train_seconds=...)

``setup`` reads three environment variables, so that CI, a laptop and Colab can run
the same notebook unchanged:

==================  =====================================================  ==========================
variable            meaning                                                default
==================  =====================================================  ==========================
``COURSE_PROFILE``  ``quick`` (minutes on a 2-core CPU) or ``full``        ``full`` with CUDA, else ``quick``
``COURSE_SEED``     seeds Python's ``random``, NumPy and PyTorch           ``0``
``COURSE_DEVICE``   ``cpu``, ``cuda``, ``cuda:1``, ``mps`` ...             cuda, then mps, then cpu
==================  =====================================================  ==========================

``record`` prints a chapter's headline numbers and, when ``COURSE_RESULTS_DIR`` is set,
writes them to ``$COURSE_RESULTS_DIR/<notebook_stem>.json`` (the book's results page
is built from those files).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
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

__all__ = ["Config", "setup", "record", "current_config"]
__version__ = "0.1.0"

PROFILES = ("quick", "full")
T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """What :func:`setup` chose for this run."""

    profile: str
    seed: int
    device: torch.device
    started: float  # time.perf_counter() when setup() ran

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def choose(self, *, quick: T, full: T) -> T:
        """Return ``quick`` or ``full`` for the current profile.

        Each notebook keeps its per-profile hyperparameters in one cell::

            HP = cfg.choose(quick=dict(d_model=64, epochs=8),
                            full=dict(d_model=256, epochs=40))
        """
        return quick if self.profile == "quick" else full


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
            raise ValueError(f"device={requested!r} was requested but CUDA is not available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device={requested!r} was requested but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and CUDA)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def setup(profile: str | None = None, seed: int | None = None,
          device: str | None = None, verbose: bool = True) -> Config:
    """Choose profile, seed and device for a notebook, seed everything, print the choice.

    Explicit arguments win over the ``COURSE_*`` environment variables, which win over
    the defaults. Returns a :class:`Config`; it is also kept for :func:`record`.
    """
    global _CONFIG
    device_ = _pick_device(device or os.environ.get("COURSE_DEVICE") or None)

    profile = profile or os.environ.get("COURSE_PROFILE") or None
    if profile is None:
        profile = "full" if device_.type == "cuda" else "quick"
        why = "default for " + ("a CUDA GPU" if device_.type == "cuda" else "no CUDA GPU")
    else:
        why = "requested"
    if profile not in PROFILES:
        raise ValueError(f"profile (or COURSE_PROFILE) must be one of {PROFILES}; got {profile!r}")

    if seed is None:
        raw = os.environ.get("COURSE_SEED", "0")
        try:
            seed = int(raw)
        except ValueError:
            raise ValueError(f"COURSE_SEED must be a non-negative integer; got {raw!r}") from None
    seed_everything(seed)

    from . import plot  # the book's one plotting style

    plot.use_style()
    _CONFIG = Config(profile=profile, seed=seed, device=device_, started=time.perf_counter())
    if verbose:
        print(f"course_lib {__version__}: {profile} profile ({why}), seed {seed}, "
              f"device {device_}, torch {torch.__version__}")
    return _CONFIG


def current_config() -> Config | None:
    """The :class:`Config` of the last :func:`setup` call (``None`` before it)."""
    return _CONFIG


def _plain(name: str, value: Any) -> Any:
    """Turn tensors and NumPy scalars into JSON-friendly Python values."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return [_plain(name, v) for v in value.detach().cpu().tolist()]
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(name, v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} is {value}; a headline number must be finite")
        return float(value)
    raise TypeError(f"metric {name!r} must be a number, bool, string or list of numbers; "
                    f"got {type(value).__name__}")


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:  # the model name is nicer than 'x86_64' where /proc/cpuinfo exists
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(terse=True), "python": platform.python_version(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def record(notebook_stem: str, **metrics: Any) -> dict[str, Any]:
    """Print a chapter's headline numbers and save them for the results page.

    ``notebook_stem`` is the notebook's file name without ``.ipynb``
    (e.g. ``"01_attention_pooling"``). ``metrics`` are numbers (tensors and NumPy
    scalars are converted), bools, strings or lists of numbers. When
    ``COURSE_RESULTS_DIR`` is set, they are written to
    ``$COURSE_RESULTS_DIR/<notebook_stem>.json`` with the profile, seed, device,
    machine and the seconds since :func:`setup`.
    """
    if not isinstance(notebook_stem, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", notebook_stem) \
            or notebook_stem.endswith(".ipynb"):
        raise ValueError("notebook_stem must be the notebook's file name without '.ipynb' "
                         f"(letters, digits, '_', '-', '.'), e.g. '01_attention_pooling'; got {notebook_stem!r}")
    if not metrics:
        raise ValueError("record() needs at least one metric, e.g. record(stem, test_accuracy=0.97)")
    values = {name: _plain(name, value) for name, value in metrics.items()}

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
        "seconds_since_setup": round(time.perf_counter() - cfg.started, 2) if cfg else None,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
    }
    out_dir = os.environ.get("COURSE_RESULTS_DIR")
    if out_dir:
        path = Path(out_dir) / f"{notebook_stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result
