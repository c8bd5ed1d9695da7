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
gives GFLOP/s. Ours runs three ways: on 1 and on 2 BLAS threads, and on two processes
(``TrainConfig(processes=2)``, one BLAS thread each, see mlp_core/parallel.py); the loop
on 1 and on 2 BLAS threads, switched between blocks so that all are measured under the
same load (with a pause after each switch, and who goes first alternating from round to
round). The headline compares the fastest of ours with the faster matmul loop (the
machine's limit); each setting is also given against the loop on as many cores.
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
        import numpy as np

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
        import numpy as np

        matmul, hs, ws, dzs, dws, dhs, layers = (np.matmul, self.hs, self.ws, self.dzs, self.dws,
                                                 self.dhs, self.layers)
        for _ in range(steps):
            for i in range(layers):  # forward
                matmul(hs[i], ws[i], out=hs[i + 1])
            for i in range(layers, 0, -1):  # backward
                matmul(hs[i - 1].T, dzs[i], out=dws[i - 1])
                if i > 1:
                    matmul(dzs[i], ws[i - 1].T, out=dhs[i - 1])


# How ours runs: name -> (BLAS threads, TrainConfig.processes). A setting on two cores is
# compared with the matmul loop on two BLAS threads.
SETTINGS = {"1 thread": (1, 1), "2 threads": (2, 1), "2 processes": (1, 2)}


def run(quick: bool = False) -> dict:
    from mlp_core import DenseMLP, TrainConfig, Trainer, load_mnist, scale

    block = 40 if quick else 100  # steps per timed block: short, so a burst of load hits both sides
    rounds = 3 if quick else 15
    (x_train, y_train), _ = load_mnist()  # uint8, kept as bytes by the Trainer: as `train` does
    flop = flops_per_step()
    default_threads = common.blas_threads()
    two_cores = common.cores() >= 2 and common.set_blas_threads(1)
    settings = SETTINGS if two_cores else {"1 thread": (default_threads or 1, 1)}
    cores_of = {name: max(blas, processes) for name, (blas, processes) in settings.items()}
    trainers = {name: Trainer(DenseMLP(hidden=SIZES[1:-1], seed=0), x_train, y_train,
                              TrainConfig(optimizer="adam", lr=1e-3, batch_size=BATCH, processes=processes))
                for name, (_, processes) in settings.items()}
    loop = MatmulLoop(scale(x_train[:BATCH]).reshape(BATCH, 784))
    # The loop runs on every BLAS thread count ours uses, and on as many threads as ours has cores.
    blas_counts = sorted({blas for blas, _ in settings.values()} | set(cores_of.values()))
    ours = {name: [] for name in settings}
    matmuls = {threads: [] for threads in blas_counts}
    try:
        for name, (blas, _) in settings.items():  # warm-up: an epoch each, so Adam's moments are real
            common.set_blas_threads(blas)
            trainers[name].run(steps=block if quick else 468)
        for r in range(rounds):  # each round: every contender once, in an order that alternates
            for threads in blas_counts if r % 2 == 0 else blas_counts[::-1]:
                common.switch_blas_threads(threads)  # with a pause: spinning threads settle
                loop.run(2)  # untimed: wakes the BLAS threads up
                contenders = [("matmuls", threads)] + [("ours", n) for n, (b, _) in settings.items() if b == threads]
                for kind, key in contenders if r % 2 == 0 else contenders[::-1]:
                    if kind == "ours":
                        trainers[key].run(steps=2)
                    t0 = time.perf_counter()
                    trainers[key].run(steps=block) if kind == "ours" else loop.run(block)
                    gflops = flop * block / (time.perf_counter() - t0) / 1e9
                    (ours[key] if kind == "ours" else matmuls[key]).append(gflops)
                    if kind == "ours" and settings[key][1] > 1:
                        time.sleep(0.05)  # the second process spins a few ms before it sleeps
            common.log(f"flops: round {r + 1}/{rounds}: " + ", ".join(
                [f"ours {n} {v[-1]:.1f}" for n, v in ours.items()]
                + [f"matmuls {t} thr {v[-1]:.1f}" for t, v in matmuls.items()]) + " GFLOP/s")
    finally:
        for trainer in trainers.values():
            trainer.close()
        if default_threads:  # None: unknown, nothing to put back
            common.set_blas_threads(default_threads)
    ours_spread = {name: common.spread(v) for name, v in ours.items()}
    matmul_spread = {threads: common.spread(v) for threads, v in matmuls.items()}

    best = max(ours_spread, key=lambda n: ours_spread[n]["median"])
    limit = max(matmul_spread, key=lambda t: matmul_spread[t]["median"])
    figures = [common.figure(
        "flops_ratio", "Training FLOP rate vs the matmul-only loop", ours_spread[best]["median"],
        matmul_spread[limit]["median"], unit="GFLOP/s", ref_name=f"matmuls, {limit} thr",
        goal={"on": "ratio", "op": ">=", "value": 0.55},
        note=f"ours with {best}, the fastest; the limit is the faster matmul loop")]
    for name in settings:
        cores = cores_of[name]
        figures.append(common.figure(
            f"flops_ratio_{name.replace(' ', '_')}", f"  FLOP rate, ours with {name}",
            ours_spread[name]["median"], matmul_spread[cores]["median"], unit="GFLOP/s",
            ref_name=f"matmuls, {cores} thr"))
    return {
        "benchmark": "flops",
        "quick": quick,
        "settings": {"sizes": SIZES, "batch_size": BATCH, "block_steps": block, "rounds": rounds,
                     "ours": {n: {"blas_threads": b, "processes": p} for n, (b, p) in settings.items()}},
        "flop_per_step": flop,
        "formula": "2N(2*sum_l n_{l-1} n_l + sum_{l>=2} n_{l-1} n_l), N=128, sizes 784-128-64-10",
        "default_blas_threads": default_threads,
        "ours_gflops": ours_spread,
        "matmul_gflops": {str(t): v for t, v in matmul_spread.items()},
        "figures": figures,
    }


def human(result: dict) -> str:
    rows = []
    for name, o in result["ours_gflops"].items():
        s = result["settings"]["ours"][name]
        cores = str(max(s["blas_threads"], s["processes"]))
        m = result["matmul_gflops"][cores]
        rows.append([name, f"{o['median']:.1f}", f"{m['median']:.1f} ({cores} thr)",
                     f"{o['median'] / m['median']:.2f}", f"{o['min']:.1f}-{o['max']:.1f}",
                     f"{m['min']:.1f}-{m['max']:.1f}"])
    return (f"FLOP rate: {result['flop_per_step']:,} FLOP per training step ({result['formula']})\n\n"
            + common.table(["ours with", "ours GFLOP/s", "matmul-only GFLOP/s", "ratio",
                            "ours range", "matmul range"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


main = common.simple_main(__doc__, run, human)


if __name__ == "__main__":
    sys.exit(main())
