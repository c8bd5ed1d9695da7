"""Smoke test of the benchmark harness: ``python benchmarks/run_all.py --quick --json``.

It checks that every benchmark runs and reports every figure as a finite positive number,
that the JSON and Markdown files are written, and that the pass/fail marks agree with the
numbers. PyTorch is optional: where it is importable the quick run must measure it; a
second run with torch made unimportable (whether or not it is installed) must skip it,
saying why, and still measure Keras and ours. It never checks a speed target: machines are noisy, and speed is what the
benchmark scripts show, not what tests assert.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("profile", "flops", "keras", "notebook", "dashboard", "accuracy")
# Every figure of the issue; the quick run measures each one at tiny sizes.
REQUIRED = ("keras_speedup", "keras_test_accuracy", "flops_ratio", "notebook_20k", "dashboard_ratio")
TORCH_FIGURES = ("torch_speedup", "torch_test_accuracy")
TORCH_SKIP = "PyTorch not installed: pip install torch==2.13.0 (CPU)"
HAVE_TORCH = importlib.util.find_spec("torch") is not None  # the interpreter the runs use


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"  # and quick.md beside it
    env = dict(os.environ)
    env.pop("MLP_LAB_DEBUG", None)
    proc = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--json", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=840, env=env)
    return proc, out


@pytest.mark.slow
def test_quick_run_exits_0_and_prints_json_last(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["quick"] is True
    assert report["errors"] == []
    assert set(report["benchmarks"]) == set(BENCHMARKS)


@pytest.mark.slow
def test_every_figure_is_a_finite_positive_number(quick_run):
    proc, _ = quick_run
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = {f["id"]: f for f in report["figures"]}
    for fid in REQUIRED:
        assert fid in figures, f"missing figure {fid}; have {sorted(figures)}"
    assert any(fid.startswith("accuracy_") for fid in figures)
    for name in BENCHMARKS:
        assert any(f["benchmark"] == name for f in report["figures"]), f"{name} reported no figure"
    for f in report["figures"]:
        assert _positive(f["ours"]), f
        if f["reference"] is not None:
            assert _positive(f["reference"]), f
            assert _positive(f["ratio"]), f
            assert f["ratio"] == pytest.approx(f["ours"] / f["reference"]), f
        if f["goal"]:  # the mark follows from the numbers (whatever they are on this machine)
            value = f[f["goal"]["on"]]
            expected = value >= f["goal"]["value"] if f["goal"]["op"] == ">=" else value <= f["goal"]["value"]
            assert f["pass"] is expected, f
        else:
            assert f["pass"] is None, f
    accuracies = [f["ours"] for f in report["figures"] if f["unit"] == "accuracy"]
    assert accuracies and all(0.05 < a <= 1 for a in accuracies)


@pytest.mark.slow
def test_quick_run_measures_pytorch_when_importable(quick_run):
    proc, _ = quick_run
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    keras = report["benchmarks"]["keras"]
    figures = {f["id"]: f for f in report["figures"]}
    if not HAVE_TORCH:  # this branch is the skip; test_pytorch_skipped_without_torch forces it always
        assert keras["torch_skipped"] == TORCH_SKIP
        assert not any(fid.startswith("torch_") for fid in figures)
        return
    assert keras["torch_skipped"] is None and keras["skipped"] == [] and report["skipped"] == []
    for fid in TORCH_FIGURES:
        assert fid in figures, f"missing figure {fid}; have {sorted(figures)}"
    assert keras["best_torch"] == "torch_1t"  # --quick: one thread, as ours
    worker = keras["workers"]["torch_1t"]
    assert worker["torch"] and worker["torch_threads"] == 1
    assert keras["initial_max_probability_difference_torch"] < 1e-5  # the same initial weights
    speed = keras["samples_per_second"]["torch_1t"]
    assert _positive(speed["median"]) and figures["torch_speedup"]["reference"] == speed["median"]
    assert figures["torch_test_accuracy"]["reference"] == keras["test_accuracy"]["torch_1t"]
    assert keras["epochs_trained"]["torch_1t"] == keras["epochs_trained"][keras["best_ours"]]
    assert report["machine"]["torch"]


@pytest.mark.slow
def test_pytorch_skipped_without_torch(tmp_path):
    """torch made unimportable in every process of the run (a finder that refuses it, in a
    sitecustomize on PYTHONPATH), so this checks the skip even where torch is installed. Not
    ``sys.modules['torch'] = None``: SciPy (there with scikit-learn) looks torch up in
    sys.modules and fails on a None there, which TensorFlow's import then hits."""
    hide = tmp_path / "no_torch"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n\n\nclass NoTorch:  # import torch fails, as if it were not installed\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n\n\n"
        "sys.meta_path.insert(0, NoTorch())\n")
    env = dict(os.environ)
    env.pop("MLP_LAB_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hide), env.get("PYTHONPATH", "")) if p)
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env,
                           timeout=60)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, probe.stderr  # the trick works
    out = tmp_path / "keras.json"
    proc = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--only", "keras", "--json",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert TORCH_SKIP in proc.stderr  # said to the person running it
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["skipped"] == [{"benchmark": "keras", "reason": f"PyTorch: {TORCH_SKIP}"}]
    keras = report["benchmarks"]["keras"]
    assert keras["torch_skipped"] == TORCH_SKIP and keras["best_torch"] is None
    assert not any(name.startswith("torch") for name in keras["samples_per_second"])
    figures = {f["id"]: f for f in report["figures"]}
    assert not any(fid.startswith("torch_") for fid in figures)
    for fid in ("keras_speedup", "keras_test_accuracy"):  # the rest still runs
        assert _positive(figures[fid]["ours"]) and _positive(figures[fid]["reference"]), figures[fid]
    markdown = out.with_suffix(".md").read_text()
    assert TORCH_SKIP in markdown  # in the table's notes and in the detail table


@pytest.mark.slow
def test_machine_info_and_written_files(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    machine = json.loads(out.read_text())["machine"]
    assert machine["cores"] >= 1 and machine["numpy"] and machine["cpu"]
    markdown = out.with_suffix(".md").read_text()
    assert "| figure | ours | reference | ratio | target | result |" in markdown
    assert "python benchmarks/run_all.py --quick" in markdown
    assert "could not render" not in markdown  # every benchmark's detail table renders
    for name in BENCHMARKS:
        assert f"### {name} (" in markdown
    # --render rewrites the Markdown from the JSON alone, identically
    rendered = subprocess.run([sys.executable, "benchmarks/run_all.py", "--render", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    assert out.with_suffix(".md").read_text() == markdown


def test_flop_count_formula():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_flops import flops_per_step
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # forward 2N*sum + weight grads 2N*sum + input grads of layers 2..L
    n, pairs = 128, [(784, 128), (128, 64), (64, 10)]
    expected = 2 * n * sum(a * b for a, b in pairs) * 2 + 2 * n * sum(a * b for a, b in pairs[1:])
    assert flops_per_step() == expected == 58_163_200


@pytest.mark.slow
def test_the_drawings_benchmark_measures_before_and_after_in_one_run():
    """``bench_drawings.py --quick``: every figure of issue #14 from one run, before beside after."""
    env = dict(os.environ)
    env.pop("MLP_LAB_DEBUG", None)
    proc = subprocess.run([sys.executable, "benchmarks/bench_drawings.py", "--quick", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=840, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = {f["id"]: f for f in report["figures"]}
    assert set(figures) == {"drawings_canvas", "drawings_canvas_distort", "drawings_mnist_2000", "drawings_uci_2000",
                            "drawings_mnist_30s", "drawings_uci_30s", "drawings_speed", "drawings_speed_distort"}
    for fig in figures.values():
        assert _positive(fig["ours"]) and _positive(fig["reference"]), fig
    for name in ("before", "after", "distort"):
        dashboard = report["results"][name]["dashboard"]
        assert len(dashboard["canvas_per_digit"]) == 10 and sum(map(sum, dashboard["canvas_confusion"])) == 50
    assert "Canvas set per digit" in proc.stderr
