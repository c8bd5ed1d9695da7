"""Do the models read digits people draw? Before (the old defaults) and after, side by side
in one run.

    python benchmarks/bench_drawings.py [--quick] [--json] [--rounds 2]

* **the dashboard's model**: what one press of Train gives (the Model page's dense default,
  2,000 steps at the Train page's learning rate), three ways, alternating: *before* (the old
  default: shift 1 only), *after* (today's default: every image straightened and its pen
  evened out, a quarter of the training 1s given a flag) and *distort* (today's default
  with "Distort training images" on). Trained as the dashboard trains it: a ``Trainer`` on
  the server's shared MNIST (59,000 training images) reading the shared prepared copy and
  the shared pool of distorted copies
  (``mlp_lab.shared_data.prepared`` and ``distorted``, made once per server: their time is
  reported apart). Measured: the canvas set (``canvas_set/digits.zip``, replayed through the
  Test page's exact path, ``mlp_lab.canvas_set.replay``: accuracy per digit and confusion
  matrix), MNIST's 10,000 test images, and the UCI digits. Training speed (steps/s) is the
  median over ``--rounds`` runs of each.
* **the 30-second model**: ``python -m mlp_core train --model dense --time-budget 30``
  in a fresh process (before: with ``--no-deskew --no-strokes --no-augment``), its MNIST
  test accuracy from the CLI's JSON, and the UCI digits read by the saved model.

The UCI digits: ``sklearn.datasets.load_digits``, 1,797 digits by 43 writers, 8x8 pixels of
0-16 (ink counted in 4x4 blocks of a 32x32 bitmap). Each, scaled to [0, 1], goes through
``mlp_core.preprocess_digit`` (which enlarges it to the 20-px box with Lanczos interpolation
and centres it, as a drawing) and ``model.predict``, as ``mlp_core predict`` reads a file.

Targets (issue #14): canvas set >= 97 % and MNIST >= 98 % for the dashboard's model; 30-s
model >= 99.0 % MNIST and >= 95 % UCI; the dashboard's training about as fast as before.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import benchlib as common

# The dashboard's model, three ways: the old default, today's default (the Model page's
# dense preset: straightened, pen evened out, 1s flagged) and today's with "Distort training images" on.
DASHBOARD = {
    "before": "old default: shift 1 only",
    "after": "new default: straightened + pen evened out + a quarter of the 1s flagged (+ shift 1)",
    "distort": "new default + Distort training images (from the shared pool)",
}
# The 30-second CLI run: the old dense preset and today's (which distorts, per step).
CLI = {
    "before": {"flags": ["--no-deskew", "--no-strokes", "--no-augment"], "words": "old preset: shift 1 only"},
    "after": {"flags": [], "words": "dense preset: straightened, pen evened out, a quarter of the 1s flagged, "
                                    "half of each batch distorted"},
}
TARGETS = {"canvas": 0.97, "mnist_2000": 0.98, "mnist_30s": 0.990, "uci_30s": 0.95}


def _choice(name: str):
    """The Model page's choice for the dashboard setting ``name``."""
    from dataclasses import replace

    from mlp_lab.choices import ModelChoice

    default = ModelChoice.preset("dense")
    return {"before": replace(default, deskew=False, strokes=False, distort=False, flag_ones=False),
            "after": default,
            "distort": replace(default, distort=True)}[name]


def uci_digits():
    """The UCI digits as the network is given them: (1797, 28, 28) float32, labels (1797,)."""
    from sklearn.datasets import load_digits

    from mlp_core.preprocess import preprocess_digit

    digits = load_digits()
    images = np.stack([preprocess_digit(image / 16.0) for image in digits.images])
    return images, digits.target


def dashboard_run(name: str, steps: int, seed: int = 0):
    """One press of Train as the dashboard does it: returns (model, steps/s, seconds spent
    once per server making the shared copies this setting reads: prepared and distorted)."""
    from mlp_core import Trainer
    from mlp_lab.shared_data import distorted, get_data, prepared

    data = get_data()
    choice = _choice(name)
    train_cfg = choice.train_config(choice.usual_lr(), seed=seed)  # the Train page's default lr
    model = choice.build(seed=seed)
    start = time.perf_counter()
    ready = prepared(model, "x_train", train_cfg.flag_ones)  # made once per server, shared by every student
    pool = distorted(model, train_cfg.augmentation, train_cfg.flag_ones)  # the same
    setup_seconds = time.perf_counter() - start
    trainer = Trainer(model, data.x_train, data.y_train, train_cfg, data.x_val, data.y_val,
                      prepared=ready, distorted=pool)
    result = trainer.run(steps=steps)
    return model, result.steps / result.train_seconds, setup_seconds


def measure(model, canvas, uci) -> dict:
    from mlp_core import accuracy
    from mlp_lab.canvas_set import replay
    from mlp_lab.shared_data import get_data

    data = get_data()
    out = {"mnist": accuracy(data.y_test, model.predict(data.x_test)),
           "uci": accuracy(uci[1], model.predict(uci[0]))}
    if canvas is not None:
        r = replay(model, canvas)
        out.update(canvas=r.accuracy, canvas_per_digit=r.per_digit.tolist(),
                   canvas_confusion=r.confusion.tolist(), canvas_unreadable=r.unreadable, canvas_n=r.n)
    return out


def cli_run(name: str, budget: float, uci) -> dict:
    from mlp_core import accuracy
    from mlp_core.persistence import load_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        report = common.run_cli(["train", "--model", "dense", "--time-budget", f"{budget:g}", "--seed", 0,
                                 "--out", str(path), *CLI[name]["flags"]], timeout=budget * 4 + 300)
        model, _ = load_model(path)
    return {"mnist": report["test_accuracy"], "uci": accuracy(uci[1], model.predict(uci[0])),
            "steps": report["steps"], "epochs": report["epochs"], "train_seconds": report["train_seconds"]}


def run(quick: bool = False, rounds: int = 2) -> dict:
    from mlp_lab.canvas_set import DEFAULT_PATH, CanvasSet, load_canvas_set

    steps, budget = (100, 3.0) if quick else (2000, 30.0)
    rounds = 1 if quick else rounds
    canvas = load_canvas_set() if DEFAULT_PATH.exists() else None
    if canvas is not None and quick:
        canvas = CanvasSet(canvas.files[:50], canvas.pngs[:50], canvas.labels[:50], canvas.styles[:50])
    uci = uci_digits()
    if quick:
        uci = (uci[0][:200], uci[1][:200])
    results = {name: {"speeds": []} for name in DASHBOARD}
    for i in range(rounds):
        for name in DASHBOARD:  # alternating, so a busy moment of the machine hits each
            model, speed, setup = dashboard_run(name, steps)
            results[name]["speeds"].append(speed)
            if i == 0:
                results[name]["setup_seconds"] = setup
                results[name]["dashboard"] = measure(model, canvas, uci)
                common.log(f"drawings: {name}, {steps} steps: {speed:.0f} steps/s, "
                           + ", ".join(f"{k} {v:.2%}" for k, v in results[name]["dashboard"].items()
                                       if isinstance(v, float)))
    for name in DASHBOARD:
        results[name]["speed"] = common.median(results[name]["speeds"])
    cli = {}
    for name in CLI:
        cli[name] = cli_run(name, budget, uci)
        common.log(f"drawings: {name}, {budget:g} s: MNIST {cli[name]['mnist']:.2%}, "
                   f"UCI {cli[name]['uci']:.2%} ({cli[name]['steps']} steps, {cli[name]['epochs']:.1f} epochs)")
    before, after, distort = results["before"], results["after"], results["distort"]
    figures = []
    if canvas is not None:
        n = after["dashboard"]["canvas_n"]
        figures += [
            common.figure("drawings_canvas", f"Canvas set, dashboard model ({steps:,} steps)",
                          after["dashboard"]["canvas"], before["dashboard"]["canvas"], unit="accuracy",
                          ref_name="before", goal={"on": "ours", "op": ">=", "value": TARGETS["canvas"]},
                          note=f"{n} drawings"),
            common.figure("drawings_canvas_distort", f"Canvas set, with distortions ({steps:,} steps)",
                          distort["dashboard"]["canvas"], before["dashboard"]["canvas"], unit="accuracy",
                          ref_name="before", note=f"{n} drawings"),
        ]
    figures += [
        common.figure("drawings_mnist_2000", f"MNIST test, dashboard model ({steps:,} steps)",
                      after["dashboard"]["mnist"], before["dashboard"]["mnist"], unit="accuracy",
                      ref_name="before", goal={"on": "ours", "op": ">=", "value": TARGETS["mnist_2000"]}),
        common.figure("drawings_uci_2000", f"UCI digits, dashboard model ({steps:,} steps)",
                      after["dashboard"]["uci"], before["dashboard"]["uci"], unit="accuracy", ref_name="before"),
        common.figure("drawings_mnist_30s", f"MNIST test, train --time-budget {budget:g}",
                      cli["after"]["mnist"], cli["before"]["mnist"], unit="accuracy", ref_name="before",
                      goal={"on": "ours", "op": ">=", "value": TARGETS["mnist_30s"]}),
        common.figure("drawings_uci_30s", f"UCI digits, train --time-budget {budget:g}",
                      cli["after"]["uci"], cli["before"]["uci"], unit="accuracy", ref_name="before",
                      goal={"on": "ours", "op": ">=", "value": TARGETS["uci_30s"]}),
        common.figure("drawings_speed", f"Dashboard training speed ({steps:,} steps)", after["speed"],
                      before["speed"], unit="steps/s", ref_name="before",
                      note=f"median of {rounds} alternating runs each; the shared prepared copy: "
                           f"{after['setup_seconds']:.1f} s once per server"),
        common.figure("drawings_speed_distort", f"Dashboard training speed, with distortions ({steps:,} steps)",
                      distort["speed"], before["speed"], unit="steps/s", ref_name="before",
                      note=f"median of {rounds} alternating runs each; the shared pool of distorted copies: "
                           f"{distort['setup_seconds']:.1f} s once per server"),
    ]
    return {"benchmark": "drawings", "quick": quick, "steps": steps, "budget": budget, "rounds": rounds,
            "dashboard_settings": DASHBOARD, "cli_settings": {name: c["words"] for name, c in CLI.items()},
            "results": results, "cli": cli, "canvas_set": canvas is not None, "figures": figures}


def human(result: dict) -> str:
    lines = ["Drawn digits, before vs after. Dashboard: "
             + "; ".join(f"{k}: {v}" for k, v in result["dashboard_settings"].items()),
             "CLI: " + "; ".join(f"{k}: {v}" for k, v in result["cli_settings"].items()), ""]
    if result["canvas_set"]:
        rows = []
        for name in DASHBOARD:
            d = result["results"][name]["dashboard"]
            rows.append([name, f"{d['canvas']:.2%}", *[f"{p:.0%}" for p in d["canvas_per_digit"]]])
        lines += ["Canvas set per digit (dashboard model):", "",
                  common.table(["", "all", *map(str, range(10))], rows), ""]
        for name in DASHBOARD:
            lines += [f"Confusion matrix, {name} (rows: digit drawn, columns: answer):", ""]
            matrix = result["results"][name]["dashboard"]["canvas_confusion"]
            lines += [common.table(["", *map(str, range(10))], [[str(i), *row] for i, row in enumerate(matrix)]), ""]
    else:
        lines += ["(canvas_set/digits.zip not found: the canvas set is not measured)", ""]
    lines.append(common.figures_table(result["figures"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = common.arguments(__doc__, quick_help="100 steps, a 3-second CLI run: a smoke test")
    parser.add_argument("--rounds", type=int, default=2, help="dashboard runs per setting for the speed (default 2)")
    args = parser.parse_args(argv)
    common.emit(run(args.quick, args.rounds), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
