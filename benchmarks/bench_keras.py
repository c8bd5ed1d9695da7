"""mlp_core vs Keras (TensorFlow, CPU) on the identical model and settings.

    python benchmarks/bench_keras.py [--quick] [--rounds 7] [--json]

The model: 784-128-64-10, ReLU, softmax cross-entropy, float32, the same initial weights
(mlp_core's ``DenseMLP(hidden=(128, 64), seed)`` copied into the Keras Dense layers),
Adam lr 1e-3 (eps 1e-7, Keras' default), batch 128, the full 60,000 training images
shuffled every epoch. Keras is used as its users use it: ``model.fit(x, y, batch_size=128,
epochs=1, shuffle=True, verbose=0)`` per epoch, with TensorFlow's default threads (all
cores) and the default ``jit_compile`` ("auto", which is off on a CPU-only machine), with
``jit_compile=True`` (XLA), and with one TensorFlow thread (intra- and inter-op): the
fastest Keras is the reference. mlp_core: ``Trainer(model, x, y, TrainConfig(
optimizer="adam", lr=1e-3, batch_size=128))`` and ``trainer.run(steps=60000 // 128)`` per
epoch, once with 1 and once with 2 BLAS threads (set in the worker); the faster is
"ours" (the CLI's ``--threads`` chooses between them), and both are reported.

Every contender runs in its own process. Each trains one warm-up epoch (not counted);
then the epochs are interleaved: ours 1 thread, Keras, ours 2 threads, Keras XLA, Keras 1
thread, ours 1 thread, ... with a 0.3 s pause between two epochs (so the threads of one
contender have stopped spinning when the next starts). samples/s of each = samples in
the epoch / seconds, median over the rounds.
Finally every model (each after the same number of epochs) is measured on the 10,000
test images.
"""

from __future__ import annotations

import argparse
import sys
import time

import benchlib as common

HIDDEN = (128, 64)
SETTLE = 0.3  # seconds between two contenders' epochs
BATCH = 128
LR = 1e-3


def _data(n_train: int):
    from mlp_core import load_mnist, scale  # noqa: PLC0415

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train = scale(x_train[:n_train]).reshape(-1, 784)
    x_test = scale(x_test).reshape(-1, 784)
    return x_train, y_train[:n_train], x_test, y_test


# ----------------------------------------------------------------------------- workers
def worker_ours(seed: int, n_train: int, threads: int | None):
    import numpy as np  # noqa: PLC0415

    from mlp_core import DenseMLP, TrainConfig, Trainer  # noqa: PLC0415

    if threads:
        common.set_blas_threads(threads)
    x_train, y_train, x_test, y_test = _data(n_train)
    model = DenseMLP(hidden=HIDDEN, seed=seed)
    trainer = Trainer(model, x_train, y_train,
                      TrainConfig(optimizer="adam", lr=LR, batch_size=BATCH, seed=seed))
    steps = len(x_train) // BATCH

    def epoch():
        start = time.perf_counter()
        result = trainer.run(steps=steps)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "samples": result.steps * BATCH, "train_seconds": result.train_seconds}

    def accuracy():
        return {"test_accuracy": float(np.mean(model.predict(x_test) == y_test)),
                "epochs": trainer.epochs}

    def initial_probabilities():
        fresh = DenseMLP(hidden=HIDDEN, seed=seed)
        return {"proba": fresh.predict_proba(x_test[:64]).tolist()}

    common.serve({"epoch": epoch, "accuracy": accuracy, "proba": initial_probabilities},
                 {"blas_threads": common.blas_threads(), "steps_per_epoch": steps})


def worker_keras(seed: int, n_train: int, jit: bool, threads: int | None = None):
    import numpy as np  # noqa: PLC0415

    from mlp_core import DenseMLP  # noqa: PLC0415

    x_train, y_train, x_test, y_test = _data(n_train)
    import keras  # noqa: PLC0415 (lazy: only this worker pays for TensorFlow)
    import tensorflow as tf  # noqa: PLC0415

    if threads:  # before TensorFlow runs its first op
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(784,), dtype="float32"),
        keras.layers.Dense(HIDDEN[0], activation="relu"),
        keras.layers.Dense(HIDDEN[1], activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    ours = DenseMLP(hidden=HIDDEN, seed=seed)  # the same initial weights as ours
    for i, layer in enumerate(model.layers, start=1):
        layer.set_weights([ours.params[f"w{i}"], ours.params[f"b{i}"]])
    compile_kwargs = {"jit_compile": True} if jit else {}  # default: "auto"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR, epsilon=1e-7),
                  loss="sparse_categorical_crossentropy", **compile_kwargs)
    y_fit = y_train.astype("int32")
    initial = model.predict(x_test[:64], verbose=0)
    samples_seen = [0]

    def epoch():
        start = time.perf_counter()
        model.fit(x_train, y_fit, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        seconds = time.perf_counter() - start
        samples_seen[0] += len(x_train)
        return {"seconds": seconds, "samples": len(x_train)}

    def accuracy():
        predicted = model.predict(x_test, batch_size=1000, verbose=0).argmax(axis=1)
        return {"test_accuracy": float(np.mean(predicted == y_test)),
                "epochs": samples_seen[0] / len(x_train)}

    def initial_probabilities():
        return {"proba": initial.tolist()}

    threads = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
               "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    common.serve({"epoch": epoch, "accuracy": accuracy, "proba": initial_probabilities},
                 {"jit_compile": str(getattr(model, "jit_compile", compile_kwargs.get("jit_compile", "auto"))),
                  "tf_threads": threads, "tensorflow": tf.__version__, "keras": keras.__version__})


# ----------------------------------------------------------------------------- the benchmark
def thread_counts(quick: bool) -> list[int]:
    """The BLAS thread counts ours is measured with: 1 and 2 (1 only on one core)."""
    return [1] if quick or common.cores() < 2 else [1, 2]


def run(quick: bool = False, rounds: int | None = None, seed: int = 0) -> dict:
    import numpy as np  # noqa: PLC0415

    n_train = 6_400 if quick else 60_000
    rounds = rounds or (2 if quick else 7)
    script = str(common.BENCH_DIR / "bench_keras.py")
    base = [script, "--seed", str(seed), "--n-train", str(n_train)]
    ours = [(f"ours_{t}t", ["--worker", "ours", "--threads", str(t)], t) for t in thread_counts(quick)]
    keras = [("keras", ["--worker", "keras"], None)]
    if not quick:
        keras += [("keras_xla", ["--worker", "keras-xla"], None),
                  ("keras_1t", ["--worker", "keras", "--threads", "1"], None)]
    specs = []  # alternate: ours_1t, keras, ours_2t, keras_xla, keras_1t
    for i in range(max(len(ours), len(keras))):
        specs += ours[i:i + 1] + keras[i:i + 1]

    workers = {}
    try:
        for name, argv, threads in specs:
            common.log(f"keras: starting worker {name}")
            workers[name] = common.Worker(name, base + argv, common.subprocess_env(threads))
        ready = {name: w.receive(timeout=300) for name, w in workers.items()}
        # Same model: the untrained networks must give the same probabilities.
        p_ours = np.array(workers[ours[0][0]].call(cmd="proba")["proba"])
        p_keras = np.array(workers["keras"].call(cmd="proba")["proba"])
        initial_diff = float(np.abs(p_ours - p_keras).max())
        for name, worker in workers.items():
            common.log(f"keras: warm-up epoch of {name}")
            worker.call(cmd="epoch", timeout=900)
        speeds = {name: [] for name in workers}
        for r in range(rounds):
            for name, worker in workers.items():
                time.sleep(SETTLE)  # the last contender's idle BLAS/Eigen threads stop spinning
                answer = worker.call(cmd="epoch", timeout=900)
                speeds[name].append(answer["samples"] / answer["seconds"])
            common.log("keras: round %d/%d: %s" % (r + 1, rounds, ", ".join(
                f"{n} {v[-1]:,.0f}/s" for n, v in speeds.items())))
        accuracy = {name: workers[name].call(cmd="accuracy", timeout=300) for name in workers}
    finally:
        for worker in workers.values():
            worker.close()

    med = {name: common.median(v) for name, v in speeds.items()}
    keras_names = [n for n in med if n.startswith("keras")]
    ours_names = [n for n in med if n.startswith("ours")]
    best_keras = max(keras_names, key=lambda n: med[n])
    best_ours = max(ours_names, key=lambda n: med[n])
    threads_of = {n: ready[n]["blas_threads"] for n in ours_names}
    labels = {"keras": "Keras fit", "keras_xla": "Keras fit, XLA", "keras_1t": "Keras fit, 1 TF thread",
              **{n: f"{t} BLAS thread{'s' if t != 1 else ''}" for n, t in threads_of.items()}}
    figures = [
        common.figure("keras_speedup", f"Training speed vs Keras (784-128-64-10, batch {BATCH})",
                      med[best_ours], med[best_keras], unit="samples/s", ref_name=labels[best_keras],
                      goal={"on": "ratio", "op": ">=", "value": 3.0},
                      note=f"ours with {labels[best_ours]}; medians of {rounds} warm epochs"),
        common.figure("keras_test_accuracy", "Test accuracy after the same epochs, vs Keras",
                      accuracy[best_ours]["test_accuracy"], accuracy[best_keras]["test_accuracy"],
                      unit="accuracy", ref_name=labels[best_keras],
                      note=f"after {accuracy[best_ours]['epochs']:.0f} epochs each"),
    ]
    for name in ours_names:
        figures.append(common.figure(
            f"keras_speedup_{threads_of[name]}t", f"  ours with {labels[name]} vs Keras",
            med[name], med[best_keras], unit="samples/s", ref_name=labels[best_keras]))
    for name in keras_names:
        if name != best_keras:
            figures.append(common.figure(f"keras_speedup_vs_{name}", f"  ours vs {labels[name]}",
                                         med[best_ours], med[name], unit="samples/s", ref_name=labels[name]))
    return {
        "benchmark": "keras",
        "quick": quick,
        "settings": {"model": "784-128-64-10 relu, softmax cross-entropy, float32", "optimizer": "adam",
                     "lr": LR, "eps": 1e-7, "batch_size": BATCH, "n_train": n_train, "rounds": rounds,
                     "seed": seed, "order": list(workers)},
        "samples_per_second": {n: common.spread(v) for n, v in speeds.items()},
        "best_keras": best_keras,
        "best_ours": best_ours,
        "ours_blas_threads": threads_of[best_ours],
        "numpy_default_blas_threads": common.blas_threads(),
        "test_accuracy": {n: a["test_accuracy"] for n, a in accuracy.items()},
        "epochs_trained": {n: a["epochs"] for n, a in accuracy.items()},
        "initial_max_probability_difference": initial_diff,
        "workers": ready,
        "figures": figures,
    }


def human(result: dict) -> str:
    rows = []
    for name, s in result["samples_per_second"].items():
        rows.append([name, f"{s['median']:,.0f}", f"{s['min']:,.0f}", f"{s['max']:,.0f}",
                     f"{result['test_accuracy'][name]:.2%}"])
    settings = result["settings"]
    return (f"mlp_core vs Keras: {settings['model']}, Adam lr {settings['lr']:g}, batch "
            f"{settings['batch_size']}, {settings['n_train']:,} images/epoch, {settings['rounds']} "
            f"interleaved warm epochs each\n"
            f"(same initial weights: max |p_ours - p_keras| = {result['initial_max_probability_difference']:.1e})\n\n"
            + common.table(["contender", "samples/s (median)", "min", "max", "test accuracy"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


def main(argv=None) -> int:
    parser = common.arguments(__doc__)
    parser.add_argument("--rounds", type=int, help="measured epochs per contender (default 7, quick 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["ours", "keras", "keras-xla"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--n-train", type=int, default=60_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "ours":
        worker_ours(args.seed, args.n_train, args.threads)  # --threads: set explicitly
        return 0
    if args.worker in ("keras", "keras-xla"):
        worker_keras(args.seed, args.n_train, jit=args.worker == "keras-xla", threads=args.threads)
        return 0
    common.emit(run(args.quick, args.rounds, args.seed), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
