"""Where one training step's time goes, in microseconds.

    python benchmarks/bench_profile.py [--quick] [--json]

For the Keras-comparison model (784-128-64-10) and the dense preset (784-256-128-10),
batch 128, Adam, after one warm-up epoch (so Adam's moments are what they are in real
training), three things are timed in interleaved blocks:

* ``Trainer.run(steps=K)``: the real thing, per step;
* the same step taken apart by hand: the batch indices (``next`` of the shuffling
  iterator), the batch gathering (``trainer._images(idx)``: the bytes of the batch, scaled
  into the model's input buffer, and ``y[idx]``), ``model.loss_and_grads`` (forward +
  loss + backward) and ``optimizer.step`` (Adam);
* a loop of only the step's matrix products (see bench_flops.py).

Hence: matmuls; the rest of loss_and_grads (relu, softmax, masks, checks);
Adam; gathering; and Trainer.run's own Python overhead = run's step minus the parts.
With 1 and with 2 BLAS threads, switched between rounds (with a pause after each switch;
the order of the three blocks alternates from round to round). Blocks are
short (50 steps) and many (15 rounds): on a shared machine a burst of load from another
process can slow a multi-threaded BLAS tenfold for seconds, so the differences (overhead,
rest of loss_and_grads) are taken within each round, then the median over the rounds.
"""

from __future__ import annotations

import sys
import time

import benchlib as common
from bench_flops import MatmulLoop, flops_per_step

MODELS = {"784-128-64-10": (128, 64), "784-256-128-10 (dense preset)": (256, 128)}
BATCH = 128
PARTS = ("indices", "gather", "loss_and_grads", "adam")


def _by_hand(trainer, batches, steps: int) -> dict:
    """The step of Trainer.run taken apart, each part timed; mean microseconds per step."""
    model, optimizer, y = trainer.model, trainer.optimizer, trainer.y_train
    clock = time.perf_counter_ns
    totals = dict.fromkeys(PARTS, 0)
    for _ in range(steps):
        t0 = clock()
        idx = next(batches)
        t1 = clock()
        # as Trainer.run gathers: into the model's input buffer (the part being timed is private)
        xb, yb = trainer._images(idx), y[idx]  # noqa: SLF001
        t2 = clock()
        loss, grads = model.loss_and_grads(xb, yb)
        t3 = clock()
        optimizer.step(model.params, grads)
        t4 = clock()
        totals["indices"] += t1 - t0
        totals["gather"] += t2 - t1
        totals["loss_and_grads"] += t3 - t2
        totals["adam"] += t4 - t3
    return {k: v / steps / 1e3 for k, v in totals.items()}


def profile_model(hidden, x_train, y_train, thread_settings, block: int, rounds: int, warm_steps: int):
    from mlp_core import DenseMLP, TrainConfig, Trainer, iterate_minibatches, scale

    sizes = (784, *hidden, 10)
    trainer = Trainer(DenseMLP(hidden=hidden, seed=0), x_train, y_train,
                      TrainConfig(optimizer="adam", lr=1e-3, batch_size=BATCH))
    trainer.run(steps=warm_steps)
    batches = iterate_minibatches(len(x_train), BATCH, seed=1)
    loop = MatmulLoop(scale(x_train[:BATCH]).reshape(BATCH, 784), sizes=sizes)
    samples = {t: {"run_step": [], "matmuls": [], **{p: [] for p in PARTS}} for t in thread_settings}
    for r in range(rounds):
        for threads in thread_settings:
            common.switch_blas_threads(threads)
            trainer.run(steps=2)  # untimed: wakes the BLAS threads up
            s = samples[threads]
            order = ("run", "by_hand", "matmuls") if r % 2 == 0 else ("matmuls", "by_hand", "run")
            for which in order:  # who goes first alternates from round to round
                t0 = time.perf_counter()
                if which == "run":
                    trainer.run(steps=block)
                    s["run_step"].append((time.perf_counter() - t0) / block * 1e6)
                elif which == "by_hand":
                    for part, value in _by_hand(trainer, batches, block).items():
                        s[part].append(value)
                else:
                    loop.run(block)
                    s["matmuls"].append((time.perf_counter() - t0) / block * 1e6)
    out = {}
    for threads, s in samples.items():
        med = {k: common.median(v) for k, v in s.items()}
        # Paired per round (the blocks of one round ran back to back, under the same load):
        overhead = [run - sum(s[p][i] for p in PARTS) for i, run in enumerate(s["run_step"])]
        other = [lg - mm for lg, mm in zip(s["loss_and_grads"], s["matmuls"])]
        out[threads] = {
            "run_step_us": med["run_step"],
            "matmuls_us": med["matmuls"],
            "loss_and_grads_other_us": common.median(other),
            "loss_and_grads_us": med["loss_and_grads"],
            "adam_us": med["adam"],
            "gather_us": med["gather"],
            "indices_us": med["indices"],
            "trainer_overhead_us": common.median(overhead),
            "flop_per_step": flops_per_step(sizes, BATCH),
            "samples": s,
        }
    return out


def run(quick: bool = False) -> dict:
    from mlp_core import load_mnist

    block, rounds, warm = (25, 2, 50) if quick else (50, 15, 468)
    (x_train, y_train), _ = load_mnist()  # uint8, kept as bytes by the Trainer: as `train` does
    default_threads = common.blas_threads()
    thread_settings = [1, 2] if common.cores() >= 2 and common.set_blas_threads(1) else [default_threads]
    results, figures = {}, []
    for name, hidden in MODELS.items():
        results[name] = profile_model(hidden, x_train, y_train, thread_settings, block, rounds, warm)
        if default_threads:  # None: unknown, nothing to put back
            common.set_blas_threads(default_threads)
        for threads, r in results[name].items():
            common.log(f"profile {name}, {threads} thread(s): step {r['run_step_us']:.0f} us, matmuls "
                       f"{r['matmuls_us']:.0f}, other fwd/bwd {r['loss_and_grads_other_us']:.0f}, adam "
                       f"{r['adam_us']:.0f}, gather {r['gather_us']:.0f}, overhead {r['trainer_overhead_us']:.0f}")
        fastest = min(results[name], key=lambda t: results[name][t]["run_step_us"])
        r = results[name][fastest]
        figures.append(common.figure(
            f"profile_{name.split()[0]}", f"Step time vs its matmuls alone, {name.split()[0]}, {fastest} thr",
            r["run_step_us"], r["matmuls_us"], unit="us", ref_name="matmuls",
            note=f"{fastest} BLAS thread(s) (the faster); Adam {r['adam_us']:.0f} us, "
                 f"gather {r['gather_us']:.0f} us, rest of forward/backward {r['loss_and_grads_other_us']:.0f} us"))
    return {
        "benchmark": "profile",
        "quick": quick,
        "settings": {"batch_size": BATCH, "block_steps": block, "rounds": rounds, "warm_steps": warm},
        "default_blas_threads": default_threads,
        "models": results,
        "figures": figures,
    }


def human(result: dict) -> str:
    keys = [("run_step_us", "Trainer.run step"), ("matmuls_us", "  matmuls (8 products)"),
            ("loss_and_grads_other_us", "  rest of loss_and_grads"), ("adam_us", "  Adam step"),
            ("gather_us", "  batch gather (trainer._images), labels"), ("indices_us", "  batch indices"),
            ("trainer_overhead_us", "  Trainer.run Python overhead")]
    columns = [(name, threads) for name, by_t in result["models"].items() for threads in by_t]
    headers = ["microseconds per step"] + [f"{n.split()[0]}, {t} thr" for n, t in columns]
    rows = []
    for key, label in keys:
        rows.append([label] + [f"{result['models'][n][t][key]:,.0f}" for n, t in columns])
    rows.append(["share of the step in matmuls"] + [
        f"{result['models'][n][t]['matmuls_us'] / result['models'][n][t]['run_step_us']:.0%}" for n, t in columns])
    return ("Profile of one training step (batch 128, Adam, medians)\n\n" + common.table(headers, rows)
            + "\n\n" + common.figures_table(result["figures"]))


main = common.simple_main(__doc__, run, human)


if __name__ == "__main__":
    sys.exit(main())
