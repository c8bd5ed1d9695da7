"""The notebook model: time for 20,000 one-sample steps with the notebook's settings.

    python benchmarks/bench_notebook.py [--quick] [--json]

The model and settings are ``mlp_core.presets``' "notebook" (the 28x28 matrix network,
squared error, rand/100 init, SGD lr 0.001, batch 1), exactly what
``python -m mlp_core train --model notebook --steps 20000`` runs. Each repeat trains a
fresh model (seed 0) with ``Trainer.run(steps=20000)``, with 1 and with 2 BLAS threads in
turn; the time is the median of the repeats for the faster setting, and the test accuracy
(10,000 images) is that of the trained model.
"""

from __future__ import annotations

import sys
import time

import benchlib as common

STEPS = 20_000


def run(quick: bool = False, repeats: int | None = None) -> dict:
    import numpy as np

    from mlp_core import Trainer, build_model, load_mnist, scale
    from mlp_core.presets import PRESETS

    model_cfg, train_cfg = PRESETS["notebook"]
    steps = 2_000 if quick else STEPS
    repeats = repeats or (1 if quick else 3)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train, x_test = scale(x_train), scale(x_test)
    thread_settings = [1, 2] if not quick and common.cores() >= 2 and common.set_blas_threads(1) else [None]
    seconds = {t: [] for t in thread_settings}
    accuracy = {}
    for r in range(repeats):
        for threads in thread_settings:  # interleaved: 1 thread, 2 threads, 1 thread, ...
            if threads:
                common.switch_blas_threads(threads)
            model = build_model(model_cfg, seed=0)
            trainer = Trainer(model, x_train, y_train, train_cfg)
            start = time.perf_counter()
            result = trainer.run(steps=steps)
            seconds[threads].append(time.perf_counter() - start)
            accuracy[threads] = float(np.mean(model.predict(x_test) == y_test))
            common.log(f"notebook: repeat {r + 1}/{repeats}, {threads or 'default'} BLAS thread(s): "
                       f"{steps:,} steps in {seconds[threads][-1]:.2f} s ({result.status}), "
                       f"test accuracy {accuracy[threads]:.2%}")
    med = {t: common.median(v) for t, v in seconds.items()}
    best = min(med, key=med.get)
    threads_used = best or common.blas_threads()
    per_20k = med[best] * STEPS / steps
    label = f"Notebook model: {STEPS:,} one-sample steps" + ("" if steps == STEPS else
                                                             f" (from {steps:,})")
    figures = [
        common.figure("notebook_20k", label, per_20k, unit="s",
                      goal={"on": "ours", "op": "<=", "value": 3.0},
                      note=f"median of {repeats}, {threads_used} BLAS thread(s); {steps / med[best]:,.0f} steps/s"),
        common.figure("notebook_steps_per_second", "  notebook model, steps per second", steps / med[best],
                      unit="steps/s"),
        common.figure("notebook_test_accuracy", f"  notebook model, test accuracy after {steps:,} steps",
                      accuracy[best], unit="accuracy"),
    ]
    for t in thread_settings:
        if t and len(thread_settings) > 1:
            name = f"  {STEPS:,} steps with {t} BLAS thread{'s' if t > 1 else ''}"
            figures.append(common.figure(f"notebook_20k_{t}t", name, med[t] * STEPS / steps, unit="s"))
    return {
        "benchmark": "notebook",
        "quick": quick,
        "settings": {"model": model_cfg, "training": train_cfg.to_dict(), "steps": steps, "repeats": repeats},
        "run_seconds": common.spread(seconds[best]),
        "seconds_by_blas_threads": {str(t or "default"): common.spread(v) for t, v in seconds.items()},
        "blas_threads": threads_used,
        "seconds_for_20000_steps": per_20k,
        "steps_per_second": steps / med[best],
        "test_accuracy": accuracy[best],
        "figures": figures,
    }


def human(result: dict) -> str:
    s = result.get("run_seconds") or result["seconds_by_blas_threads"][str(result["blas_threads"])]
    rows = [[f"{result['settings']['steps']:,}", f"{s['median']:.2f}", f"{s['min']:.2f}-{s['max']:.2f}",
             f"{result['steps_per_second']:,.0f}", f"{result['test_accuracy']:.2%}"]]
    return ("Notebook model (preset 'notebook': mse, SGD lr 0.001, batch 1)\n\n"
            + common.table(["steps", "seconds (median)", "range", "steps/s", "test accuracy"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


def main(argv=None) -> int:
    parser = common.arguments(__doc__)
    parser.add_argument("--repeats", type=int, help="default 3 (quick 1)")
    args = parser.parse_args(argv)
    common.emit(run(args.quick, args.repeats), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
