"""course_lib.setup and course_lib.record."""

import json
import random

import numpy as np
import pytest
import torch

import course_lib


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (
        "COURSE_PROFILE",
        "COURSE_SEED",
        "COURSE_DEVICE",
        "COURSE_RESULTS_DIR",
        "COURSE_SMOKE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_on_a_cpu_machine(capsys):
    cfg = course_lib.setup()
    assert cfg.profile == "quick" and cfg.seed == 0 and not cfg.smoke
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 2  # two short lines fit the book's output box
    assert all(len(line) <= 78 for line in out.splitlines())
    assert "quick profile" in out and "seed 0" in out and f"device {cfg.device}" in out


def test_the_default_profile_is_quick_on_a_gpu_too(monkeypatch):
    monkeypatch.setattr(
        course_lib, "_pick_device", lambda requested: torch.device("cuda")
    )
    assert course_lib.setup(verbose=False).profile == "quick"


def test_smoke_run_overrides_the_sizes_it_names(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_SMOKE", "1")
    cfg = course_lib.setup(profile="full")
    assert cfg.smoke and "smoke run" in capsys.readouterr().out
    hp = cfg.choose(
        quick=dict(n=100, d=8), full=dict(n=10_000, d=256), smoke=dict(n=16)
    )
    assert hp == dict(n=16, d=256)  # the full model, on tiny data
    with pytest.raises(KeyError, match="does not define"):
        cfg.choose(quick=dict(n=1), full=dict(n=2), smoke=dict(steps=3))
    monkeypatch.setenv("COURSE_SMOKE", "0")
    cfg = course_lib.setup(profile="full", verbose=False)
    assert cfg.choose(quick=dict(n=100), full=dict(n=10_000), smoke=dict(n=16)) == dict(
        n=10_000
    )


def test_a_smoke_run_stops_every_training_loop_after_a_few_steps(monkeypatch):
    from course_lib import train

    monkeypatch.setenv("COURSE_SMOKE", "1")
    course_lib.setup(profile="full", verbose=False)
    model = torch.nn.Linear(2, 1)
    batches = [torch.randn(4, 2) for _ in range(50)]
    history = train.fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        batches,
        lambda m, x: m(x).pow(2).mean(),
        epochs=3,
        max_seconds=100,
        progress=False,
    )
    assert len(history.steps) == course_lib.SMOKE_STEPS


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setenv("COURSE_SEED", "7")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    cfg = course_lib.setup(verbose=False)
    assert (cfg.profile, cfg.seed, cfg.device) == ("full", 7, torch.device("cpu"))
    assert cfg.choose(quick=1, full=2) == 2


def test_arguments_win_over_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    cfg = course_lib.setup(profile="quick", seed=3, device="cpu", verbose=False)
    assert (cfg.profile, cfg.seed) == ("quick", 3)
    assert cfg.choose(quick="q", full="f") == "q"


def test_seeding_makes_python_numpy_and_torch_repeatable():
    def draw():
        course_lib.setup(seed=11, verbose=False)
        return random.random(), np.random.rand(), torch.rand(1).item()

    first, second = draw(), draw()
    assert first == second
    course_lib.setup(seed=12, verbose=False)
    assert torch.rand(1).item() != first[2]


@pytest.mark.parametrize(
    "env, value, message",
    [
        ("COURSE_PROFILE", "fast", "COURSE_PROFILE"),
        ("COURSE_SEED", "abc", "COURSE_SEED"),
        ("COURSE_DEVICE", "gpu0", "COURSE_DEVICE"),
        ("COURSE_SEED", "4294967296", "from 0 to 4294967295"),
        ("COURSE_SMOKE", "maybe", "COURSE_SMOKE"),
    ],
)
def test_bad_environment_gives_a_clear_error(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=message):
        course_lib.setup(verbose=False)


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        course_lib.setup(seed=-1, verbose=False)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(device=0), TypeError, "device must be a string"),
        (dict(profile=""), ValueError, "profile must be one of"),
        (dict(profile="fast"), ValueError, "profile must be one of"),
    ],
)
def test_bad_arguments_are_not_ignored(kwargs, error, message):
    with pytest.raises(error, match=message):
        course_lib.setup(verbose=False, **kwargs)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the error raised when CUDA is missing"
)
def test_requesting_cuda_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        course_lib.setup(device="cuda", verbose=False)


def test_record_prints_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    course_lib.setup(profile="quick", seed=5, device="cpu", verbose=False)
    course_lib.record(
        "01_attention_pooling",
        mse=torch.tensor(0.25),
        steps=np.int64(300),
        ok=True,
        curve=torch.tensor([1.0, 0.5]),
    )
    out = capsys.readouterr().out
    assert "01_attention_pooling" in out and "mse" in out and "0.25" in out
    saved = json.loads((tmp_path / "results" / "01_attention_pooling.json").read_text())
    assert saved["metrics"] == {
        "mse": 0.25,
        "steps": 300,
        "ok": True,
        "curve": [1.0, 0.5],
    }
    assert (saved["profile"], saved["seed"], saved["device"]) == ("quick", 5, "cpu")
    assert saved["machine"]["cpu_count"] >= 1
    assert saved["seconds_since_setup"] >= 0


def test_record_without_results_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = course_lib.record("x", value=1.0)
    assert result["metrics"] == {"value": 1.0}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stem", ["01_attention_pooling.ipynb", "book/01", "", 3])
def test_record_rejects_bad_stems(stem):
    with pytest.raises(ValueError, match="notebook_stem"):
        course_lib.record(stem, value=1.0)


def test_record_rejects_missing_nan_and_odd_metrics():
    with pytest.raises(ValueError, match="at least one metric"):
        course_lib.record("x")
    with pytest.raises(ValueError, match="'loss'.*finite"):
        course_lib.record("x", loss=float("nan"))
    with pytest.raises(TypeError, match="'model'"):
        course_lib.record("x", model=object())
