"""The smoke run of the full profile catches a broken full-profile line.

The quick profile is what CI executes for real; a mistake that only the full profile
reaches (a size that does not fit, a loader that no longer reads its files) would go
unseen until a learner pressed *Run all* on a GPU. ``python -m tools.smoke_run`` runs the full
profile's code for a few steps; this test breaks one line of chapter 5's *full*
configuration and checks that the smoke run fails on it (``make test`` runs the intact
notebooks the same way).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tools import notebooks as nbtools

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "05_vision_transformer.ipynb"


def smoke(notebook: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SMOKE_DIR": str(out)}
    return subprocess.run(
        [sys.executable, "-m", "tools.smoke_run", str(notebook)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_wrong_size_in_the_full_vit_config_fails_the_smoke_run(tmp_path):
    nb = nbtools.load(CHAPTER)
    hp = next(
        c for c in nb["cells"] if nbtools.source(c).startswith("HP = cfg.choose(")
    )
    text = nbtools.source(hp)
    full = text.index("full=dict(")
    assert "patch_size=4," in text[full:]
    # 28 x 28 Fashion-MNIST images do not cut into 5 x 5 patches
    broken = text[:full] + text[full:].replace("patch_size=4,", "patch_size=5,", 1)
    hp["source"] = broken.splitlines(keepends=True)
    path = tmp_path / CHAPTER.name
    path.write_text(json.dumps(nb))

    run = smoke(path, tmp_path / "smoke")
    assert run.returncode != 0, run.stdout[-2000:]
    assert "FAILED" in run.stdout and "patch" in run.stdout
    assert not (tmp_path / "smoke" / "results" / f"{CHAPTER.stem}.json").exists()
