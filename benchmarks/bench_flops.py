"""mlp_core's training FLOP rate vs a loop of only its matrix multiplications.

    python benchmarks/bench_flops.py [--quick] [--json]

Model 784-128-64-10, batch N = 128, float32, Adam. One training step does these matrix
multiplications (n_l = layer sizes, L = 3 weight layers):

    forward         z_l = h_{l-1} @ w_l                  2 N sum_l n_{l-1} n_l
    weight grads    dw_l = h_{l-1}.T @ dz_l               2 N sum_l n_{l-1} n_l
    input grads     dh_{l-1} = dz_l @ w_l.T, l = 2..L     2 N sum_{l>=2} n_{l-1} n_l

    FLOP/step = 2N (2 * (784*128 + 128*64 + 64*10) + (128*64 + 64*10))
              = 256 * (2 * 109,184 + 8,832) = 58,163,200

(bias adds, activations, softmax and the optimizer are not counted: they are the
overhead this benchmark exposes). "ours" = ``Trainer.run`` on the 60,000 MNIST images,
given as bytes as the ``train`` command gives them (each batch is scaled as it is gathered);
"matmul only" = a loop of exactly those 8 products with the same shapes, the same
transposed views and preallocated ``out=`` arrays: the limit for these shapes on this
machine. Blocks of steps are interleaved (ours, matmuls, ours, ...) and the median block
gives GFLOP/s. Done with 1 and with 2 BLAS threads, switched between blocks so that both
are measured under the same load (with a pause after each switch, and who goes first
alternating from round to round); the headline compares the faster of ours with the
faster matmul loop (the machine's limit).
"""

from __future__ import annotations

import sys
import time

import benchlib as common

SIZES = (784, 128, 64, 10)
BATCH = 128


def flops_per_step(sizes=SIZES, n=BATCH) -> int:
    pairs = list(zip(sizes[:-1], sizes[1:]))
    forward = 2 * n * sum(a * b for a, b in pairs)
    weight_grads = 2 * n * sum(a * b for a, b in pairs)
    input_grads = 2 * n * sum(a * b for a, b in pairs[1:])
    return forward + weight_grads + input_grads


class MatmulLoop:
    """Only the matrix products of one training step, into preallocated arrays."""

    def __init__(self, x_batch, sizes=SIZES, seed=0):
        import numpy as np  # noqa: PLC0415

        rng = np.random.default_rng(seed)
        n = len(x_batch)
        f32 = np.float32
        self.ws = [rng.standard_normal((a, b)).astype(f32) * 0.05 for a, b in zip(sizes[:-1], sizes[1:])]
        self.hs = [np.ascontiguousarray(x_batch, dtype=f32)] + [np.empty((n, b), f32) for b in sizes[1:]]
        self.dzs = [None] + [rng.standard_normal((n, b)).astype(f32) * 0.01 for b in sizes[1:]]
        self.dws = [np.empty_like(w) for w in self.ws]
        self.dhs = [None] + [np.empty((n, b), f32) for b in sizes[1:-1]]
        self.layers = len(self.ws)

    def run(self, steps: int) -> None:
        import numpy as np  # noqa: PLC0415

        matmul, hs, ws, dzs, dws, dhs, layers = (np.matmul, self.hs, self.ws, self.dzs, self.dws,
                                                 self.dhs, self.layers)
        for _ in range(steps):
            for i in range(layers):  # forward
                matmul(hs[i], ws[i], out=hs[i + 1])
            for i in range(layers, 0, -1):  # backward
                matmul(hs[i - 1].T, dzs[i], out=dws[i - 1])
                if i > 1:
                    matmul(dzs[i], ws[i - 1].T, out=dhs[i - 1])


def run(quick: bool = False) -> dict:
    from mlp_core import DenseMLP, TrainConfig, Trainer, load_mnist, scale  # noqa: PLC0415

    block = 40 if quick else 100  # steps per timed block: short, so a burst of load hits both sides
    rounds = 3 if quick else 15
    (x_train, y_train), _ = load_mnist()  # uint8, kept as bytes by the Trainer: as `train` does
    flop = flops_per_step()
    default_threads = common.blas_threads()
    thread_settings = [1, 2] if common.cores() >= 2 and common.set_blas_threads(1) else [default_threads]
    model = DenseMLP(hidden=SIZES[1:-1], seed=0)
    trainer = Trainer(model, x_train, y_train, TrainConfig(optimizer="adam", lr=1e-3, batch_size=BATCH))
    loop = MatmulLoop(scale(x_train[:BATCH]).reshape(BATCH, 784))
    trainer.run(steps=block if quick else 468)  # warm-up: an epoch, so Adam's moments are real
    samples = {threads: ([], []) for threads in thread_settings}
    for threads in thread_settings:
        common.set_blas_threads(threads)
        loop.run(block)
    for r in range(rounds):  # each round: ours and matmuls at each thread count in turn
        for threads in thread_settings:
            common.switch_blas_threads(threads)
            trainer.run(steps=2)  # untimed: wakes the BLAS threads up
            loop.run(2)
            ours, matmuls = samples[threads]
            for which in (("ours", "matmuls") if r % 2 == 0 else ("matmuls", "ours")):  # alternate who goes first
                t0 = time.perf_counter()
                trainer.run(steps=block) if which == "ours" else loop.run(block)
                gflops = flop * block / (time.perf_counter() - t0) / 1e9
                (ours if which == "ours" else matmuls).append(gflops)
        common.log(f"flops: round {r + 1}/{rounds}: " + ", ".join(
            f"{t} thread(s) ours {o[-1]:.1f} / matmuls {m[-1]:.1f} GFLOP/s" for t, (o, m) in samples.items()))
    results = {threads: {"ours_gflops": common.spread(o), "matmul_gflops": common.spread(m)}
               for threads, (o, m) in samples.items()}
    common.set_blas_threads(default_threads)

    best_threads = max(results, key=lambda t: results[t]["ours_gflops"]["median"])
    limit_threads = max(results, key=lambda t: results[t]["matmul_gflops"]["median"])
    best = results[best_threads]["ours_gflops"]["median"]
    limit = results[limit_threads]["matmul_gflops"]["median"]
    figures = [common.figure(
        "flops_ratio", "Training FLOP rate vs the matmul-only loop", best, limit,
        unit="GFLOP/s", ref_name=f"matmuls, {limit_threads} thr",
        goal={"on": "ratio", "op": ">=", "value": 0.55},
        note=f"ours with {best_threads} BLAS thread(s), the faster; the limit is the faster matmul loop")]
    for threads, r in results.items():
        figures.append(common.figure(
            f"flops_ratio_{threads}t", f"  FLOP rate, both with {threads} BLAS thread{'s' if threads > 1 else ''}",
            r["ours_gflops"]["median"], r["matmul_gflops"]["median"], unit="GFLOP/s",
            ref_name="matmuls"))
    return {
        "benchmark": "flops",
        "quick": quick,
        "settings": {"sizes": SIZES, "batch_size": BATCH, "block_steps": block, "rounds": rounds},
        "flop_per_step": flop,
        "formula": "2N(2*sum_l n_{l-1} n_l + sum_{l>=2} n_{l-1} n_l), N=128, sizes 784-128-64-10",
        "default_blas_threads": default_threads,
        "by_blas_threads": results,
        "figures": figures,
    }


def human(result: dict) -> str:
    rows = []
    for threads, r in result["by_blas_threads"].items():
        o, m = r["ours_gflops"], r["matmul_gflops"]
        rows.append([threads, f"{o['median']:.1f}", f"{m['median']:.1f}", f"{o['median'] / m['median']:.2f}",
                     f"{o['min']:.1f}-{o['max']:.1f}", f"{m['min']:.1f}-{m['max']:.1f}"])
    return (f"FLOP rate: {result['flop_per_step']:,} FLOP per training step ({result['formula']})\n\n"
            + common.table(["BLAS threads", "ours GFLOP/s", "matmul-only GFLOP/s", "ratio",
                            "ours range", "matmul range"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


main = common.simple_main(__doc__, run, human)


if __name__ == "__main__":
    sys.exit(main())
