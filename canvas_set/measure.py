"""How well the model a student gets with one press of Train reads the canvas set.

    python -m canvas_set.measure [--steps 2000] [--seed 0] [--json] [--set canvas_set/digits.zip]

The model is the dashboard's own: ``mlp_lab.lab.LabSession`` with the Model page's
default (the dense preset, seed 0, fresh weights, as a new visitor gets), trained by
``lab.start(steps)`` as the Train button does (2,000 steps, the Steps slider's default).
Then every drawing of the set goes through the Test page's path (``replay``: PNG ->
``digit_from_canvas_state`` -> ``lab.predict_proba``), and the MNIST test accuracy is
measured as the Test page's button does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mlp_lab.canvas_set import DEFAULT_PATH, load_canvas_set, replay


def train_default(steps: int = 2000):
    """The dashboard's default model after ``steps`` steps of its background trainer."""
    from mlp_lab.choices import ModelChoice  # noqa: PLC0415 (loads MNIST: only when measuring)
    from mlp_lab.lab import LabSession  # noqa: PLC0415

    lab = LabSession(ModelChoice.preset("dense"))
    message = lab.start(steps)
    if message:
        raise RuntimeError(f"LabSession.start refused: {message}")
    while lab.running:
        time.sleep(0.1)
    return lab


def report(result, n_per_digit) -> str:
    lines = [f"canvas set: {result.accuracy:.1%} right of {result.n} drawings"
             + (f" ({result.unreadable} unreadable)" if result.unreadable else "")]
    lines.append("per digit: " + "  ".join(f"{d}: {a:.0%}" for d, a in enumerate(result.per_digit)))
    lines.append("confusion (rows: the digit drawn, columns: the answer):")
    lines.append("      " + " ".join(f"{d:>4}" for d in range(10)) + "   n")
    for d, row in enumerate(result.confusion):
        lines.append(f"  {d}:  " + " ".join(f"{v:>4}" for v in row) + f"  {n_per_digit[d]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--set", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    canvas_set = load_canvas_set(args.set)
    started = time.perf_counter()
    lab = train_default(args.steps)
    train_seconds = time.perf_counter() - started
    try:
        result = replay(lab, canvas_set)
        mnist = lab.evaluate_test().accuracy
        info = lab.run_info
    finally:
        lab.close()
    n_per_digit = np.bincount(canvas_set.labels, minlength=10)
    if args.json:
        print(json.dumps({"steps": info.result_steps, "status": info.status, "train_seconds": train_seconds,
                          "mnist_test_accuracy": mnist, "canvas_accuracy": result.accuracy,
                          "canvas_per_digit": result.per_digit.tolist(),
                          "canvas_confusion": result.confusion.tolist(), "unreadable": result.unreadable,
                          "n": result.n}, indent=2))
    else:
        print(f"model: the dashboard's default, {info.result_steps:,} steps ({info.status}) in "
              f"{train_seconds:.1f} s; MNIST test accuracy {mnist:.2%}")
        print(report(result, n_per_digit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
