"""mlp_core vs Keras (TensorFlow, CPU) and PyTorch (CPU) on the identical model and settings.

    python benchmarks/bench_keras.py [--quick] [--rounds 7] [--json] [--torch-variants]

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
PyTorch (optional; where it is not installed its rows are skipped and the reason printed):
the same initial weights in ``torch.nn.Sequential`` (Linear, ReLU, ...), the data as
tensors in memory, a new ``torch.randperm`` per epoch and batches by index (``x[idx]``, no
DataLoader), ``zero_grad(set_to_none=True)``, ``F.cross_entropy`` on the logits,
``torch.optim.Adam(lr=1e-3, eps=1e-7, fused=True)`` (eps: Keras' value and ours; PyTorch
puts it where ours does, after the bias correction), full batches only (468 an epoch) as
ours; once with ``torch.set_num_threads(1)`` and once with 2: the faster is the reference.
``--torch-variants`` adds, for comparison, ``torch.compile(model)`` and the default
(unfused) Adam, one thread each; every PyTorch configuration run competes for "fastest".

Every contender runs in its own process. Each trains one warm-up epoch (not counted);
then the epochs are interleaved: ours 1 thread, Keras, PyTorch 1 thread, ours 2 threads,
Keras XLA, PyTorch 2 threads, Keras 1 thread, ours 1 thread, ... with a 0.3 s pause
between two epochs (so the threads of one contender have stopped spinning when the next
starts). samples/s of each = samples in
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
# torch.optim.Adam's implementation: "fused" (one kernel for all parameters) was the fastest
# here, ahead of the default (a loop over the parameters) and "foreach"; see --torch-variants.
TORCH_ADAM = "fused"


def _data(n_train: int):
    from mlp_core import load_mnist, scale

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train = scale(x_train[:n_train]).reshape(-1, 784)
    x_test = scale(x_test).reshape(-1, 784)
    return x_train, y_train[:n_train], x_test, y_test


# ----------------------------------------------------------------------------- workers
def worker_ours(seed: int, n_train: int, threads: int | None):
    import numpy as np

    from mlp_core import DenseMLP, TrainConfig, Trainer

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
    import numpy as np

    from mlp_core import DenseMLP

    x_train, y_train, x_test, y_test = _data(n_train)
    import keras  # lazy: only this worker pays for TensorFlow
    import tensorflow as tf

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


TORCH_MISSING = "PyTorch not installed: pip install torch==2.13.0 (CPU)"


def torch_skip_reason() -> str | None:
    """Why PyTorch is left out here, or None when it can run. Only looks for the package
    (importing torch takes seconds): a torch that is found but fails to import makes its
    worker fail, loudly."""
    import importlib.util

    try:
        return None if importlib.util.find_spec("torch") is not None else TORCH_MISSING
    except (ImportError, ValueError):  # a broken entry in sys.modules
        return TORCH_MISSING


def worker_torch(seed: int, n_train: int, threads: int | None, adam: str = TORCH_ADAM,
                 compiled: bool = False):
    """PyTorch (CPU) as its users write a fast loop: the data as tensors in memory, a new
    random permutation per epoch, batches by index (``x[idx]``), no DataLoader."""
    import numpy as np

    from mlp_core import DenseMLP

    x_np, y_np, x_test_np, y_test = _data(n_train)
    import torch  # lazy: optional, only this worker imports it
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x_train = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32))
    y_train = torch.from_numpy(y_np.astype(np.int64))
    x_test = torch.from_numpy(np.ascontiguousarray(x_test_np, dtype=np.float32))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, HIDDEN[0]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[1], 10),
    )
    ours = DenseMLP(hidden=HIDDEN, seed=seed)  # the same initial weights as ours
    with torch.no_grad():
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        for i, layer in enumerate(linears, start=1):
            layer.weight.copy_(torch.from_numpy(ours.params[f"w{i}"].T.copy()))  # (out, in)
            layer.bias.copy_(torch.from_numpy(ours.params[f"b{i}"].copy()))
    # eps 1e-7: Keras' value and ours; PyTorch's Adam puts eps where ours does (the paper's form).
    options = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(adam, {})
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, eps=1e-7, **options)
    forward = torch.compile(model) if compiled else model
    generator = torch.Generator().manual_seed(seed)
    steps = len(x_train) // BATCH  # full batches only, as ours
    samples_seen = [0]

    def train_step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(xb), yb)
        loss.backward()
        optimizer.step()

    def epoch():
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(steps):
            idx = order[i * BATCH:(i + 1) * BATCH]
            train_step(x_train[idx], y_train[idx])
        seconds = time.perf_counter() - start
        samples_seen[0] += steps * BATCH
        return {"seconds": seconds, "samples": steps * BATCH}

    def accuracy():
        model.eval()
        with torch.inference_mode():
            predicted = model(x_test).argmax(dim=1).numpy()
        return {"test_accuracy": float(np.mean(predicted == y_test)),
                "epochs": samples_seen[0] / len(x_train)}  # as ours counts them

    with torch.inference_mode():
        initial = torch.softmax(model(x_test[:64]), dim=1).numpy()

    def initial_probabilities():
        return {"proba": initial.tolist()}

    common.serve({"epoch": epoch, "accuracy": accuracy, "proba": initial_probabilities},
                 {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                  "torch_interop_threads": torch.get_num_interop_threads(), "adam": adam,
                  "compiled": compiled, "steps_per_epoch": steps})


# ----------------------------------------------------------------------------- the benchmark
def thread_counts(quick: bool) -> list[int]:
    """The BLAS thread counts ours is measured with: 1 and 2 (1 only on one core)."""
    return [1] if quick or common.cores() < 2 else [1, 2]


def torch_label(info: dict) -> str:
    t = info["torch_threads"]
    label = f"PyTorch, {t} thread{'s' if t != 1 else ''}"
    if info.get("compiled"):
        label += ", torch.compile"
    if info.get("adam", TORCH_ADAM) != TORCH_ADAM:
        label += f", Adam {info['adam']}"
    return label


def run(quick: bool = False, rounds: int | None = None, seed: int = 0, torch_variants: bool = False) -> dict:
    import numpy as np

    n_train = 6_400 if quick else 60_000
    rounds = rounds or (2 if quick else 7)
    script = str(common.BENCH_DIR / "bench_keras.py")
    base = [script, "--seed", str(seed), "--n-train", str(n_train)]
    ours = [(f"ours_{t}t", ["--worker", "ours", "--threads", str(t)], t) for t in thread_counts(quick)]
    keras = [("keras", ["--worker", "keras"], None)]
    if not quick:
        keras += [("keras_xla", ["--worker", "keras-xla"], None),
                  ("keras_1t", ["--worker", "keras", "--threads", "1"], None)]
    torch_reason = torch_skip_reason()
    if torch_reason:
        common.log(f"keras: PyTorch skipped ({torch_reason}); Keras and ours run as usual")
        torch = []
    else:
        torch = [(f"torch_{t}t", ["--worker", "torch", "--threads", str(t)], t) for t in thread_counts(quick)]
        if torch_variants:  # what the loop above was chosen against, measured in the same run
            torch += [("torch_compiled_1t", ["--worker", "torch", "--threads", "1", "--torch-compile"], 1),
                      ("torch_default_adam_1t", ["--worker", "torch", "--threads", "1", "--torch-adam", "default"], 1)]
    specs = []  # alternate: ours_1t, keras, torch_1t, ours_2t, keras_xla, torch_2t, keras_1t
    for i in range(max(len(ours), len(keras), len(torch))):
        specs += ours[i:i + 1] + keras[i:i + 1] + torch[i:i + 1]

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
        initial_diff_torch = None
        if torch:
            p_torch = np.array(workers[torch[0][0]].call(cmd="proba")["proba"])
            initial_diff_torch = float(np.abs(p_ours - p_torch).max())
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
    torch_names = [n for n in med if n.startswith("torch")]
    best_keras = max(keras_names, key=lambda n: med[n])
    best_ours = max(ours_names, key=lambda n: med[n])
    best_torch = max(torch_names, key=lambda n: med[n]) if torch_names else None
    threads_of = {n: ready[n]["blas_threads"] for n in ours_names}
    labels = {"keras": "Keras fit", "keras_xla": "Keras fit, XLA", "keras_1t": "Keras fit, 1 TF thread",
              **{n: f"{t} BLAS thread{'s' if t != 1 else ''}" for n, t in threads_of.items()},
              **{n: torch_label(ready[n]) for n in torch_names}}
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
    if best_torch:  # PyTorch beside Keras: information, no target
        figures += [
            common.figure("torch_speedup", f"Training speed vs PyTorch (784-128-64-10, batch {BATCH})",
                          med[best_ours], med[best_torch], unit="samples/s", ref_name=labels[best_torch],
                          note=f"ours with {labels[best_ours]}; medians of {rounds} warm epochs"),
            common.figure("torch_test_accuracy", "Test accuracy after the same epochs, vs PyTorch",
                          accuracy[best_ours]["test_accuracy"], accuracy[best_torch]["test_accuracy"],
                          unit="accuracy", ref_name=labels[best_torch],
                          note=f"after {accuracy[best_ours]['epochs']:.0f} epochs each"),
        ]
        for name in ours_names:
            figures.append(common.figure(
                f"torch_speedup_{threads_of[name]}t", f"  ours with {labels[name]} vs PyTorch",
                med[name], med[best_torch], unit="samples/s", ref_name=labels[best_torch]))
        for name in torch_names:
            if name != best_torch:
                figures.append(common.figure(f"torch_speedup_vs_{name}", f"  ours vs {labels[name]}",
                                             med[best_ours], med[name], unit="samples/s",
                                             ref_name=labels[name]))
    return {
        "benchmark": "keras",
        "quick": quick,
        "settings": {"model": "784-128-64-10 relu, softmax cross-entropy, float32", "optimizer": "adam",
                     "lr": LR, "eps": 1e-7, "batch_size": BATCH, "n_train": n_train, "rounds": rounds,
                     "seed": seed, "order": list(workers), "torch_adam": TORCH_ADAM if torch else None},
        "samples_per_second": {n: common.spread(v) for n, v in speeds.items()},
        "best_keras": best_keras,
        "best_ours": best_ours,
        "best_torch": best_torch,
        "torch_skipped": torch_reason,  # None when PyTorch ran
        "skipped": [f"PyTorch: {torch_reason}"] if torch_reason else [],
        "ours_blas_threads": threads_of[best_ours],
        "numpy_default_blas_threads": common.blas_threads(),
        "test_accuracy": {n: a["test_accuracy"] for n, a in accuracy.items()},
        "epochs_trained": {n: a["epochs"] for n, a in accuracy.items()},
        "initial_max_probability_difference": initial_diff,
        "initial_max_probability_difference_torch": initial_diff_torch,
        "workers": ready,
        "figures": figures,
    }


def human(result: dict) -> str:
    rows = []
    for name, s in result["samples_per_second"].items():
        rows.append([name, f"{s['median']:,.0f}", f"{s['min']:,.0f}", f"{s['max']:,.0f}",
                     f"{result['test_accuracy'][name]:.2%}"])
    settings = result["settings"]
    same = f"max |p_ours - p_keras| = {result['initial_max_probability_difference']:.1e}"
    if result.get("initial_max_probability_difference_torch") is not None:
        same += f", |p_ours - p_torch| = {result['initial_max_probability_difference_torch']:.1e}"
    skipped = result.get("torch_skipped")  # absent in runs from before PyTorch was added
    torch_line = f"PyTorch skipped: {skipped}\n\n" if skipped else ""
    return (f"mlp_core vs Keras{'' if skipped or 'torch_skipped' not in result else ' and PyTorch'}: "
            f"{settings['model']}, Adam lr {settings['lr']:g}, batch "
            f"{settings['batch_size']}, {settings['n_train']:,} images/epoch, {settings['rounds']} "
            f"interleaved warm epochs each\n"
            f"(same initial weights: {same})\n\n" + torch_line
            + common.table(["contender", "samples/s (median)", "min", "max", "test accuracy"], rows)
            + "\n\n" + common.figures_table(result["figures"]))


def main(argv=None) -> int:
    parser = common.arguments(__doc__)
    parser.add_argument("--rounds", type=int, help="measured epochs per contender (default 7, quick 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-variants", action="store_true",
                        help="also PyTorch with torch.compile and with the default Adam (1 thread each)")
    parser.add_argument("--worker", choices=["ours", "keras", "keras-xla", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--torch-adam", choices=["default", "foreach", "fused"], default=TORCH_ADAM,
                        help=argparse.SUPPRESS)
    parser.add_argument("--torch-compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--n-train", type=int, default=60_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "ours":
        worker_ours(args.seed, args.n_train, args.threads)  # --threads: set explicitly
        return 0
    if args.worker in ("keras", "keras-xla"):
        worker_keras(args.seed, args.n_train, jit=args.worker == "keras-xla", threads=args.threads)
        return 0
    if args.worker == "torch":
        worker_torch(args.seed, args.n_train, args.threads, args.torch_adam, args.torch_compile)
        return 0
    common.emit(run(args.quick, args.rounds, args.seed, args.torch_variants), args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
