"""Smoke test of the benchmark harness: ``python benchmarks/run_all.py --quick --json``.

It checks that every benchmark runs and reports every figure as a finite positive number,
that the JSON and Markdown files are written, and that the pass/fail marks agree with the
numbers. It never checks a speed target: machines are noisy, and speed is what the
benchmark scripts show, not what tests assert.
"""

from __future__ import annotations

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
