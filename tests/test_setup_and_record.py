"""course_lib.setup and course_lib.record."""

import json
import random

import numpy as np
import pytest
import torch

import course_lib


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("COURSE_PROFILE", "COURSE_SEED", "COURSE_DEVICE", "COURSE_RESULTS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_on_a_cpu_machine(capsys):
    cfg = course_lib.setup()
    expected_profile = "full" if torch.cuda.is_available() else "quick"
    assert cfg.profile == expected_profile
    assert cfg.seed == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert f"{expected_profile} profile" in out and "seed 0" in out and f"device {cfg.device}" in out


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


@pytest.mark.parametrize("env, value, message", [
    ("COURSE_PROFILE", "fast", "COURSE_PROFILE"),
    ("COURSE_SEED", "abc", "COURSE_SEED"),
    ("COURSE_DEVICE", "gpu0", "COURSE_DEVICE"),
])
def test_bad_environment_gives_a_clear_error(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=message):
        course_lib.setup(verbose=False)


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        course_lib.setup(seed=-1, verbose=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_requesting_cuda_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        course_lib.setup(device="cuda", verbose=False)


def test_record_prints_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    course_lib.setup(profile="quick", seed=5, device="cpu", verbose=False)
    course_lib.record("01_attention_pooling", mse=torch.tensor(0.25), steps=np.int64(300),
                      ok=True, curve=torch.tensor([1.0, 0.5]))
    out = capsys.readouterr().out
    assert "01_attention_pooling" in out and "mse" in out and "0.25" in out
    saved = json.loads((tmp_path / "results" / "01_attention_pooling.json").read_text())
    assert saved["metrics"] == {"mse": 0.25, "steps": 300, "ok": True, "curve": [1.0, 0.5]}
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
