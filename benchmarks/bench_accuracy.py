"""Test accuracy reached within a wall-time budget: the dense default of the CLI.

    python benchmarks/bench_accuracy.py [--quick] [--budgets 30 60] [--seeds 0 1 2] [--json]

Each run is ``python -m mlp_core train --model dense --time-budget B --seed S --json`` in a
fresh process, exactly as a user types it (the dense preset: 784-256-128-10, Adam, batch
128, cosine decay of the learning rate over the budget); its JSON gives the accuracy on
the 10,000 test images and the training speed. The runs alternate budgets (30 s seed 0,
60 s seed 0, 30 s seed 1, ...). Targets: >= 98.5 % within 30 s, stretch >= 98.8 % within
60 s, held to the median over the seeds (the minimum is reported too).
"""

from __future__ import annotations

import sys

import benchlib as common

TARGETS = {30.0: 0.985, 60.0: 0.988}


def run(quick: bool = False, budgets=None, seeds=None) -> dict:
    budgets = [float(b) for b in (budgets or ([3.0] if quick else [30.0, 60.0]))]
    seeds = list(seeds if seeds is not None else ([0] if quick else [0, 1, 2]))
    runs = []
    for seed in seeds:
        for budget in budgets:
            report = common.run_cli(["train", "--model", "dense", "--time-budget", f"{budget:g}",
                                     "--seed", seed], timeout=budget * 4 + 300)
            runs.append({"budget": budget, "seed": seed, "test_accuracy": report["test_accuracy"],
                         "samples_per_second": report["samples_per_second"], "steps": report["steps"],
                         "epochs": report["epochs"], "train_seconds": report["train_seconds"],
                         "status": report["status"], "model": report["model"],
                         "blas_threads": report.get("blas_threads")})
            common.log(f"accuracy: {budget:g} s, seed {seed}: {report['test_accuracy']:.2%} after "
                       f"{report['epochs']:.1f} epochs ({report['samples_per_second']:,.0f} samples/s)")
    by_budget, figures = {}, []
    for budget in budgets:
        mine = [r for r in runs if r["budget"] == budget]
        acc = common.spread([r["test_accuracy"] for r in mine])
        speed = common.spread([r["samples_per_second"] for r in mine])
        epochs = common.spread([r["epochs"] for r in mine])
        by_budget[f"{budget:g}"] = {"test_accuracy": acc, "samples_per_second": speed, "epochs": epochs}
        target = TARGETS.get(budget)
        stretch = " (stretch)" if budget == 60.0 else ""
        figures.append(common.figure(
            f"accuracy_{budget:g}s", f"Test accuracy within train --time-budget {budget:g}{stretch}",
            acc["median"], unit="accuracy",
            goal={"on": "ours", "op": ">=", "value": target} if target else None,
            note=f"median of {len(mine)} seed(s), min {acc['min']:.2%}, max {acc['max']:.2%}; "
                 f"{epochs['median']:.1f} epochs at {speed['median']:,.0f} samples/s"))
        figures.append(common.figure(
            f"accuracy_{budget:g}s_min", f"  lowest of the seeds, {budget:g} s", acc["min"], unit="accuracy"))
        figures.append(common.figure(
            f"accuracy_{budget:g}s_speed", f"  training speed in the {budget:g} s runs", speed["median"],
            unit="samples/s", note=f"{epochs['median']:.1f} epochs"))
    return {
        "benchmark": "accuracy",
        "quick": quick,
        "settings": {"command": "python -m mlp_core train --model dense --time-budget B --seed S --json",
                     "budgets": budgets, "seeds": seeds, "model": runs[0]["model"] if runs else None},
        "runs": runs,
        "by_budget": by_budget,
        "figures": figures,
    }


def human(result: dict) -> str:
    rows = [[f"{r['budget']:g} s", r["seed"], f"{r['test_accuracy']:.2%}", f"{r['epochs']:.1f}",
             f"{r['samples_per_second']:,.0f}"] for r in result["runs"]]
    return (f"Accuracy vs wall time: {result['settings']['command']} ({result['settings']['model']})\n\n"
            + common.table(["budget", "seed", "test accuracy", "epochs", "samples/s"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


def main(argv=None) -> int:
    parser = common.arguments(__doc__, quick_help="one 3-second run: a smoke test")
    parser.add_argument("--budgets", type=float, nargs="+", help="seconds (default 30 60)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2")
    args = parser.parse_args(argv)
    common.emit(run(args.quick, args.budgets, args.seeds), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
