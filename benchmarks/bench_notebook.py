"""The notebook model: time for 20,000 one-sample steps with the notebook's settings.

    python benchmarks/bench_notebook.py [--quick] [--json]

The model and settings are ``mlp_core.presets``' "notebook" (the 28x28 matrix network,
squared error, rand/100 init, SGD lr 0.001, batch 1), exactly what
``python -m mlp_core train --model notebook --steps 20000`` runs. Each repeat trains a
fresh model (seed 0) with ``Trainer.run(steps=20000)``; the time is the median of the
repeats, and the test accuracy (10,000 images) is that of the trained model.
"""

from __future__ import annotations

import argparse
import sys
import time

import benchlib as common

STEPS = 20_000


def run(quick: bool = False, repeats: int | None = None) -> dict:
    import numpy as np  # noqa: PLC0415

    from mlp_core import Trainer, build_model, load_mnist, scale  # noqa: PLC0415
    from mlp_core.presets import PRESETS  # noqa: PLC0415

    model_cfg, train_cfg = PRESETS["notebook"]
    steps = 2_000 if quick else STEPS
    repeats = repeats or (1 if quick else 3)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train, x_test = scale(x_train), scale(x_test)
    seconds, accuracies = [], []
    for r in range(repeats):
        model = build_model(model_cfg, seed=0)
        trainer = Trainer(model, x_train, y_train, train_cfg)
        start = time.perf_counter()
        result = trainer.run(steps=steps)
        seconds.append(time.perf_counter() - start)
        accuracies.append(float(np.mean(model.predict(x_test) == y_test)))
        common.log(f"notebook: repeat {r + 1}/{repeats}: {steps:,} steps in {seconds[-1]:.2f} s "
                   f"({result.status}), test accuracy {accuracies[-1]:.2%}")
    med = common.median(seconds)
    per_20k = med * STEPS / steps
    label = f"Notebook model: {STEPS:,} one-sample steps" + ("" if steps == STEPS else
                                                             f" (from {steps:,})")
    figures = [
        common.figure("notebook_20k", label, per_20k, unit="s",
                      goal={"on": "ours", "op": "<=", "value": 3.0},
                      note=f"median of {repeats}; {steps / med:,.0f} steps/s"),
        common.figure("notebook_steps_per_second", "  notebook model, steps per second", steps / med,
                      unit="steps/s"),
        common.figure("notebook_test_accuracy", f"  notebook model, test accuracy after {steps:,} steps",
                      accuracies[-1], unit="accuracy"),
    ]
    return {
        "benchmark": "notebook",
        "quick": quick,
        "settings": {"model": model_cfg, "training": train_cfg.to_dict(), "steps": steps, "repeats": repeats},
        "seconds": common.spread(seconds),
        "seconds_for_20000_steps": per_20k,
        "steps_per_second": steps / med,
        "test_accuracy": accuracies[-1],
        "test_accuracies": accuracies,
        "figures": figures,
    }


def human(result: dict) -> str:
    s = result["seconds"]
    rows = [[f"{result['settings']['steps']:,}", f"{s['median']:.2f}", f"{s['min']:.2f}-{s['max']:.2f}",
             f"{result['steps_per_second']:,.0f}", f"{result['test_accuracy']:.2%}"]]
    return ("Notebook model (preset 'notebook': mse, SGD lr 0.001, batch 1)\n\n"
            + common.table(["steps", "seconds (median)", "range", "steps/s", "test accuracy"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--repeats", type=int, help="default 3 (quick 1)")
    args = parser.parse_args(argv)
    common.emit(run(args.quick, args.repeats), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
