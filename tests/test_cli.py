"""Tests for the command line, ``python -m mlp_core``, run as a user would: in a subprocess.

The subprocesses get ``OPENBLAS_NUM_THREADS=1`` (and friends): on a small machine shared
with other test runs, a multi-threaded BLAS can be ten times slower, and these tests are
about the CLI's behaviour, not BLAS speed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_core import cli
from mlp_core.persistence import load_model

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "mlp_core" / "data" / "mnist.npz"
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ENV.pop("MLP_LAB_DEBUG", None)
TRAIN_KEYS = {"model", "config", "steps", "epochs", "train_seconds", "samples_per_second",
              "test_accuracy", "status", "reason", "out"}


def run(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the CLI; stdout/stderr decoded as text (keeping ``\r`` as it is)."""
    proc = subprocess.run([sys.executable, "-m", "mlp_core", *map(str, args)], capture_output=True,
                          cwd=ROOT, timeout=timeout, env=ENV)
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no stdout; stderr: {proc.stderr}"
    return json.loads(lines[-1])


def assert_clean_error(proc: subprocess.CompletedProcess, code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.fixture(scope="session")
def dense_model(tmp_path_factory) -> Path:
    """A dense MLP trained 300 steps of 64 images (about 93% on the test set)."""
    out = tmp_path_factory.mktemp("models") / "dense.npz"
    proc = run("train", "--model", "dense", "--steps", 300, "--batch-size", 64, "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc)["out"] == str(out)
    return out


@pytest.fixture(scope="session")
def mnist_test():
    with np.load(MNIST, allow_pickle=False) as data:
        return data["x_test"], data["y_test"]


# ----------------------------------------------------------------------------- train
def test_train_notebook_json_and_out(tmp_path):
    out = tmp_path / "model.npz"
    proc = run("train", "--model", "notebook", "--steps", 300, "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc)
    assert TRAIN_KEYS <= set(result)
    assert result["steps"] == 300
    assert result["status"] == "finished"
    assert 0 <= result["test_accuracy"] <= 1
    assert result["train_seconds"] > 0
    assert result["samples_per_second"] == pytest.approx(300 * 1 / result["train_seconds"])
    assert result["epochs"] == pytest.approx(300 / 60000)
    assert result["out"] == str(out)
    # the notebook's settings
    assert result["config"]["model"]["kind"] == "notebook"
    assert result["config"]["model"]["loss"] == "mse"
    training = result["config"]["training"]
    assert (training["optimizer"], training["lr"], training["batch_size"]) == ("sgd", 0.001, 1)
    assert "\r" not in proc.stderr and "step" not in proc.stderr  # no progress bar with --json
    model, meta = load_model(out)
    assert model.config() == result["config"]["model"]
    assert meta["training"]["steps"] == 300
    assert {k: meta["training"][k] for k in training} == training  # flat, as the dashboard saves
    assert meta["extra"]["test_accuracy"] == result["test_accuracy"]


def test_train_dense_learns(tmp_path):
    proc = run("train", "--model", "dense", "--steps", 200, "--batch-size", 64, "--json")
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc)
    assert result["steps"] == 200 and result["out"] is None
    assert result["config"]["training"]["batch_size"] == 64
    assert result["config"]["training"]["optimizer"] == "adam"  # the rest of the dense preset
    assert result["config"]["model"]["hidden"] == [256, 128]
    assert result["test_accuracy"] > 0.89  # reaches 0.923 (seed 0)


def test_train_human_output_with_progress_bar_and_overrides(tmp_path):
    proc = run("train", "--model", "dense", "--hidden", "16", "--activation", "tanh", "--optimizer",
               "momentum", "--lr", "0.05", "--init", "xavier", "--schedule", "constant",
               "--weight-decay", "0.0001", "--epochs", 1, "--batch-size", 3000, "--val-size", 6000,
               "--seed", 3)
    assert proc.returncode == 0, proc.stderr
    assert "\r[" in proc.stderr and "step" in proc.stderr and "loss" in proc.stderr
    assert "Dense MLP 784-16-10 (tanh)" in proc.stdout
    assert "18 steps" in proc.stdout  # one epoch of 54,000 images in batches of 3,000
    assert "test accuracy" in proc.stdout
    assert not proc.stdout.strip().startswith("{")


def test_train_with_shifted_images(tmp_path):
    proc = run("train", "--model", "dense", "--hidden", "32", "--shift", 2, "--steps", 300, "--json")
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc)
    assert result["config"]["training"]["shift"] == 2
    assert result["test_accuracy"] > 0.85
    proc = run("train", "--model", "dense", "--steps", 1, "--shift", 7)
    assert_clean_error(proc, 2)
    assert "shift" in proc.stderr


def test_train_time_budget(tmp_path):
    proc = run("train", "--model", "dense", "--hidden", "8", "--time-budget", 0.5, "--json")
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc)
    assert result["status"] == "time_up"
    assert result["steps"] > 0
    assert result["train_seconds"] == pytest.approx(0.5, abs=0.4)


def test_train_diverged_exit_3_reports(tmp_path):
    out = tmp_path / "div.npz"
    proc = run("train", "--model", "dense", "--optimizer", "sgd", "--lr", 1000, "--schedule",
               "constant", "--steps", 50, "--json", "--out", out)
    assert_clean_error(proc, 3)
    result = last_json(proc)
    assert result["status"] == "diverged"
    assert "diverged" in result["reason"]
    if out.exists():  # only the restored, finite weights may have been saved
        model, meta = load_model(out)
        assert meta["training"]["status"] == "diverged"


@pytest.mark.parametrize("args", [
    ["train", "--model", "dense"],  # no --steps/--epochs/--time-budget
    ["train", "--steps", "10"],  # no --model
    ["train", "--model", "dense", "--steps", "10", "--epochs", "1"],  # two lengths
    ["train", "--model", "resnet", "--steps", "10"],
    ["train", "--model", "dense", "--steps", "0"],
    ["train", "--model", "dense", "--steps", "10", "--lr", "-1"],
    ["train", "--model", "dense", "--steps", "10", "--hidden", "12,x"],
    ["train", "--model", "notebook", "--steps", "10", "--hidden", "12"],
    ["train", "--model", "dense", "--steps", "10", "--batch-size", "70000"],
    ["train", "--model", "dense", "--steps", "10", "--out", "mlp_core"],  # a directory
    ["train", "--model", "dense", "--steps", "10", "--out", "no/such/dir/m.npz"],
    ["predict", "model.npz"],  # no image
    ["evaluate"],
    [],
])
def test_usage_errors_exit_2(args):
    proc = run(*args)
    assert_clean_error(proc, 2)
    assert "usage:" in proc.stderr or "error:" in proc.stderr


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_json(dense_model):
    proc = run("evaluate", dense_model, "--json")
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc)
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert len(result["per_class_accuracy"]) == 10
    assert result["test_accuracy"] == pytest.approx(np.trace(cm) / 10000)
    assert result["test_accuracy"] > 0.88


def test_evaluate_human(dense_model):
    proc = run("evaluate", dense_model)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and "confusion matrix" in proc.stdout
    assert len(proc.stdout.splitlines()) > 20


@pytest.mark.parametrize("content", [b"not a model at all\n", b"", b"PK\x03\x04" + b"\x00" * 40])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_bad_model_file_exit_2(tmp_path, command, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    image = tmp_path / "x.png"
    extra = [image] if command == "predict" else []
    proc = run(command, bad, *extra)
    assert_clean_error(proc, 2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a valid MLP Lab model" in lines[0]
    proc = run(command, bad, *extra, "--json")
    assert_clean_error(proc, 2)
    assert "not a valid MLP Lab model" in last_json(proc)["error"]


def test_missing_model_file_exit_2(tmp_path):
    proc = run("evaluate", tmp_path / "missing.npz")
    assert_clean_error(proc, 2)
    assert proc.stderr.startswith("error: ") and "not found" in proc.stderr


# ----------------------------------------------------------------------------- predict
def _user_digit(mnist_test, dense_model):
    """A real test digit the model knows well, drawn as a user would: 280x280, black on white."""
    from mlp_core import scale

    x_test, y_test = mnist_test
    model, _ = load_model(dense_model)
    proba = model.predict_proba(scale(x_test[:200]))
    sure = np.flatnonzero((proba.argmax(axis=1) == y_test[:200]) & (proba.max(axis=1) > 0.97))
    index = int(sure[0])
    big = np.kron(255 - x_test[index], np.ones((10, 10), np.uint8))  # (280, 280)
    return big, int(y_test[index])


def test_predict_good_and_bad_files(tmp_path, dense_model, mnist_test):
    from PIL import Image

    big, label = _user_digit(mnist_test, dense_model)
    good = tmp_path / "digit.png"
    Image.fromarray(big).save(good)
    jpeg = tmp_path / "digit.jpg"
    Image.fromarray(big).convert("RGB").save(jpeg, quality=90)
    deep = tmp_path / "digit16.png"  # 16-bit grayscale
    Image.fromarray(big.astype(np.uint16) * 257).save(deep)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    blank = tmp_path / "blank.png"
    Image.new("L", (100, 100), 255).save(blank)
    missing = tmp_path / "missing.png"
    files = [good, text, jpeg, empty, truncated, blank, deep, missing]

    proc = run("predict", dense_model, *files, "--json")
    assert_clean_error(proc, 1)
    answers = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [a["path"] for a in answers] == [str(f) for f in files]
    by_name = {Path(a["path"]).name: a for a in answers}
    for name in ("digit.png", "digit.jpg", "digit16.png"):
        answer = by_name[name]
        assert "error" not in answer, answer
        assert answer["digit"] == label, (name, answer)
        assert len(answer["probabilities"]) == 10
        assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert answer["confidence"] == max(answer["probabilities"])
    for name, fragment in [("notes.png", "not an image"), ("empty.png", "empty"),
                           ("truncated.png", "truncated"), ("blank.png", "blank"),
                           ("missing.png", "missing.png")]:
        assert fragment in by_name[name]["error"], by_name[name]
        assert set(by_name[name]) == {"path", "error"}

    proc = run("predict", dense_model, good, text)  # human form
    assert_clean_error(proc, 1)
    assert f"digit.png: {label} (" in proc.stdout
    assert "notes.png" in proc.stderr and proc.stderr.startswith("error: ")


def test_predict_all_good_exit_0(tmp_path, dense_model, mnist_test):
    from PIL import Image

    big, label = _user_digit(mnist_test, dense_model)
    Image.fromarray(big).save(tmp_path / "d.png")
    proc = run("predict", dense_model, tmp_path / "d.png")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{tmp_path / 'd.png'}: {label}")


# ----------------------------------------------------------------------------- the top-level guard
def test_unexpected_error_is_one_line(monkeypatch, capsys):
    def boom(args, parser):
        raise RuntimeError("something broke\nbadly")

    monkeypatch.setattr(cli, "cmd_evaluate", boom)
    monkeypatch.delenv("MLP_LAB_DEBUG", raising=False)
    assert cli.main(["evaluate", "x.npz"]) == 1
    err = capsys.readouterr().err
    assert err == "error: something broke badly\n"
    monkeypatch.setenv("MLP_LAB_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["evaluate", "x.npz"])


def test_keyboard_interrupt_exit_130(monkeypatch, capsys):
    def interrupted(args, parser):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_predict", interrupted)
    monkeypatch.delenv("MLP_LAB_DEBUG", raising=False)
    assert cli.main(["predict", "m.npz", "a.png"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_progress_bar_format():
    class FakeTrainer:
        step, last_loss = 1234, 0.5

    stream = io.StringIO()
    bar = cli._ProgressBar(stream=stream)
    bar(FakeTrainer(), 0.5)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r[") and "50%" in text and "step 1,234" in text and "loss 0.5000" in text
    assert text.endswith("\n")
