"""NumPy vs Keras: the same network, the same starting weights, the same data and settings,
trained by mlp_core and by TensorFlow/Keras. No Streamlit here.

The network: 784-128-64-10, ReLU, softmax cross-entropy, Adam (lr 0.001, eps 1e-7, as
Keras), batch 64, float32. Keras' Dense layers get mlp_core's initial weights, so both
start from the very same point; the gradients of both on one batch, from those weights,
are compared number by number.

Where it runs: ``compare`` works in any process, but the dashboard runs it in a **child
process** (``python -m mlp_lab.keras_compare``), so TensorFlow is never imported into the
Streamlit server. Inside the server, with one other session open, Keras took 74-81 s per
epoch of 2,000 images (1.6-2.9 s in a plain thread), and measured why: after every
script run (every fragment poll of every session), Streamlit's ScriptRunner calls
``keras.backend.clear_session()`` as soon as ``keras`` is in ``sys.modules``
(``streamlit.runtime.scriptrunner.script_runner._clean_problem_modules``). That resets
Keras' global state, clears TensorFlow's eager kernel cache and runs a full
``gc.collect()`` over TensorFlow's objects: 0.42-0.53 s on average each time (three
measured server runs), holding the GIL, several times a second, and for as long as the
server lives: after one comparison, a student's 2,000-step dense run hit its 120 s cap at
767 steps (10.6 s for all 2,000 with TensorFlow kept out). It also reset Keras'
layer-name counter in the middle of building a model ("All layers added to a Sequential
model should have unique names").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from mlp_core import DenseMLP, TrainConfig, Trainer
from mlp_core.blas import set_blas_threads

from .pool import JobFailed, SharedJobs, server_wide
from .shared_data import get_data

HIDDEN = (128, 64)
BATCH = 64
LR = 1e-3
TRAIN_SIZES = (2000, 5000, 10000)
EPOCH_OPTIONS = (1, 2, 3)
JOB_SECONDS = 900.0  # the child process is stopped after this long (a stuck TensorFlow)
GRADIENT_SAMPLE = "w3"  # the array whose gradients are sent whole, for the scatter plot

log = logging.getLogger("mlp_lab")


@dataclass
class Side:
    name: str  # "NumPy (mlp_core)" or "TensorFlow / Keras"
    epoch_seconds: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)  # after each epoch
    images_seen: list[int] = field(default_factory=list)  # after each batch
    losses: list[float] = field(default_factory=list)  # each batch's own loss


@dataclass
class KerasComparison:
    n_train: int
    epochs: int
    ours: Side
    keras: Side
    grad_max_abs: dict[str, float]  # parameter name -> max |ours - keras| on one batch
    grad_rel: dict[str, float]  # parameter name -> max |diff| / max |gradient|
    loss_ours: float
    loss_keras: float
    tf_version: str
    grad_sample_ours: list[float] = field(default_factory=list)  # GRADIENT_SAMPLE, flattened
    grad_sample_keras: list[float] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "KerasComparison":
        raw = json.loads(text)
        raw["ours"], raw["keras"] = Side(**raw["ours"]), Side(**raw["keras"])
        return cls(**raw)


def keras_batch_losses(running_means, n_train: int, batch: int = BATCH) -> list[float]:
    """Each batch's own loss from the running means Keras reports during an epoch.

    Keras' ``loss`` after batch k is the mean over the epoch so far, weighted by batch size
    (the last batch may be smaller), so batch k's loss is (S_k m_k - S_(k-1) m_(k-1)) / b_k
    with S_k the images seen so far in the epoch."""
    losses, seen, previous = [], 0, 0.0
    for k, mean in enumerate(running_means):
        size = min(batch, n_train - k * batch)
        losses.append(((seen + size) * mean - seen * previous) / size)
        seen, previous = seen + size, mean
    return losses


def compare(data, n_train: int = 5000, epochs: int = 2, seed: int = 0,
            on_event=None) -> KerasComparison:
    """Train both for ``epochs`` passes over ``n_train`` images; compare one batch's gradients.
    ``on_event(text)`` hears what is being done (for a progress line)."""
    say = on_event or (lambda text: None)
    say("Loading TensorFlow")
    import tensorflow as tf  # noqa: PLC0415 (only this comparison, in a child process, loads it)

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)  # one core, like our trainer
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process: its thread pools are fixed
        pass
    x = np.asarray(data.x_train[:n_train], dtype=np.float32).reshape(-1, 784)  # (n, 784)
    y = np.asarray(data.y_train[:n_train]).astype(np.int64)  # (n,)
    x_val = np.asarray(data.x_val, dtype=np.float32).reshape(-1, 784)
    y_val = np.asarray(data.y_val)

    start_model = DenseMLP(hidden=HIDDEN, seed=seed)
    initial = {k: v.copy() for k, v in start_model.params.items()}

    # --- the gradients of both on one batch, from the same weights ---------------------
    say("Comparing the gradients on one batch")
    xb, yb = x[:BATCH], y[:BATCH]
    loss_ours, grads_ours = start_model.copy().loss_and_grads(xb, yb)
    grads_ours = {k: np.array(v) for k, v in grads_ours.items()}
    keras_model = _keras_model(tf, initial)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss_keras = loss_fn(yb, keras_model(xb, training=True))
    grads_keras = tape.gradient(loss_keras, keras_model.trainable_variables)
    names = [f"{kind}{i}" for i in range(1, 4) for kind in ("w", "b")]  # Keras' order
    grad_max_abs, grad_rel, sample_keras = {}, {}, None
    for name, g in zip(names, grads_keras):
        g = g.numpy()
        diff = float(np.abs(grads_ours[name] - g).max())
        grad_max_abs[name] = diff
        grad_rel[name] = diff / max(float(np.abs(grads_ours[name]).max()), 1e-30)
        if name == GRADIENT_SAMPLE:
            sample_keras = g

    # --- training, epoch by epoch ---------------------------------------------------------
    ours = Side("NumPy (mlp_core)")
    model = start_model
    trainer = Trainer(model, x, y, TrainConfig(optimizer="adam", lr=LR, batch_size=BATCH, seed=seed))
    keras_side = Side("TensorFlow / Keras")
    keras_model = _keras_model(tf, initial)
    keras_model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=LR, epsilon=1e-7),
                        loss=loss_fn)
    running_means: list[float] = []
    recorder = tf.keras.callbacks.LambdaCallback(  # one float per batch: costs microseconds
        on_train_batch_end=lambda batch, logs: running_means.append(float(logs["loss"])))
    per_epoch = n_train // BATCH
    for epoch in range(1, epochs + 1):
        say(f"Epoch {epoch} of {epochs}: NumPy")
        t0 = time.perf_counter()
        trainer.run(steps=per_epoch)
        ours.epoch_seconds.append(time.perf_counter() - t0)
        ours.val_accuracy.append(float(np.mean(model.predict(x_val) == y_val)))
        say(f"Epoch {epoch} of {epochs}: Keras")
        running_means.clear()
        t0 = time.perf_counter()
        keras_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0,
                        callbacks=[recorder])
        keras_side.epoch_seconds.append(time.perf_counter() - t0)
        for k, loss in enumerate(keras_batch_losses(running_means, n_train)):
            keras_side.images_seen.append((epoch - 1) * n_train + min((k + 1) * BATCH, n_train))
            keras_side.losses.append(loss)
        logits = keras_model.predict(x_val, batch_size=1000, verbose=0)
        keras_side.val_accuracy.append(float(np.mean(logits.argmax(axis=1) == y_val)))
        log.info("Keras comparison, %d images, epoch %d: NumPy %.2f s, Keras %.2f s", n_train,
                 epoch, ours.epoch_seconds[-1], keras_side.epoch_seconds[-1])
    history = trainer.history
    ours.images_seen = [int(s) * BATCH for s in history.steps]
    ours.losses = [float(v) for v in history.losses]
    return KerasComparison(n_train, epochs, ours, keras_side, grad_max_abs, grad_rel,
                           float(loss_ours), float(loss_keras), tf.__version__,
                           grads_ours[GRADIENT_SAMPLE].ravel().tolist(),
                           sample_keras.ravel().tolist())


def _keras_model(tf, params: dict[str, np.ndarray]):
    """784-128-64-10 relu, logits out, with mlp_core's weights (same (n_in, n_out) layout)."""
    # Named here, not by Keras' per-thread counter (see the module's docstring).
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(784,)),
        tf.keras.layers.Dense(HIDDEN[0], activation="relu", name="hidden1"),
        tf.keras.layers.Dense(HIDDEN[1], activation="relu", name="hidden2"),
        tf.keras.layers.Dense(10, name="logits"),
    ])
    for i, layer in enumerate(model.layers, start=1):
        layer.set_weights([params[f"w{i}"], params[f"b{i}"]])
    return model


# --- the child process ----------------------------------------------------------------------
def main(argv=None) -> int:
    """``python -m mlp_lab.keras_compare N EPOCHS``: run ``compare`` and write JSON lines to
    stdout: {"stage": text} while it works, then {"result": ...} or {"error": ...}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_train", type=int, choices=TRAIN_SIZES)
    parser.add_argument("epochs", type=int, choices=EPOCH_OPTIONS)
    args = parser.parse_args(argv)
    set_blas_threads(1)  # as in the server: one BLAS thread for our side
    parent = os.getppid()
    out = sys.stdout

    def emit(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    def stage(text: str) -> None:
        if os.getppid() != parent:  # the server went away: nobody waits for this
            raise SystemExit(3)
        emit({"stage": text})

    try:
        result = compare(get_data(), args.n_train, args.epochs, on_event=stage)
    except ImportError as exc:
        emit({"error": f"{type(exc).__name__}: {exc}", "missing": True})
        return 2
    except Exception as exc:  # the details go to stderr (the server's console)
        log.exception("Keras comparison failed")
        emit({"error": type(exc).__name__, "missing": False})
        return 1
    emit({"result": json.loads(result.to_json())})
    return 0


class KerasJobs(SharedJobs):
    """One comparison at a time for the whole server, in a child process (TensorFlow never
    enters the server: see the module's docstring). A job is (n_train, epochs); it takes a
    slot of the server's trainer pool like a student's run, so it waits while every trainer
    is busy (and its timings are not squeezed by them). Results are shared by every session."""

    thread_name = "mlp-lab-keras"

    def __init__(self):
        super().__init__()
        self._process: subprocess.Popen | None = None
        self.missing_tensorflow = False  # the last job failed because TensorFlow is missing

    def request(self, n_train: int, epochs: int) -> None:  # type: ignore[override]
        if n_train not in TRAIN_SIZES or epochs not in EPOCH_OPTIONS:
            raise ValueError(f"n_train must be one of {TRAIN_SIZES} and epochs one of "
                             f"{EPOCH_OPTIONS}, got {n_train} and {epochs}")
        self.missing_tensorflow = False
        super().request([(n_train, epochs)])

    def run_job(self, job: tuple[int, int]) -> KerasComparison:
        n_train, epochs = job
        self.report(stage="Starting")
        t0 = time.perf_counter()
        result = self._run_child(n_train, epochs)
        log.info("Keras comparison, %d images x %d epochs, done in %.1f s (child process)",
                 n_train, epochs, time.perf_counter() - t0)
        return result

    def _run_child(self, n_train: int, epochs: int) -> KerasComparison:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONUNBUFFERED": "1"}
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # finds mlp_lab
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlp_lab.keras_compare", str(n_train), str(epochs)],
                cwd=root, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
            with self._lock:
                self._process = process
            timer = threading.Timer(JOB_SECONDS, process.kill)
            timer.daemon = True
            timer.start()
            reply = None
            try:
                for line in process.stdout:
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue  # a library printed something of its own
                    if "stage" in message:
                        self.report(stage=message["stage"])
                    elif "result" in message or "error" in message:
                        reply = message
                code = process.wait()
            finally:
                timer.cancel()
                process.stdout.close()
                with self._lock:
                    self._process = None
            if reply is not None and "result" in reply:
                return KerasComparison.from_json(json.dumps(reply["result"]))
            stderr.seek(0)
            tail = stderr.read()[-3000:].decode(errors="replace")
            log.error("Keras comparison process ended with code %s:\n%s", code, tail)
            if reply is not None:
                self.missing_tensorflow = bool(reply.get("missing"))
                raise JobFailed(reply["error"])
            if self.cancelled.is_set():
                raise JobFailed("stopped")
            raise JobFailed("it took too long and was stopped" if code == -9
                            else f"the comparison process ended with code {code}")

    def close(self) -> None:
        """Stop: leave the line, or end the child process (tests, server shutdown)."""
        super().close()
        with self._lock:
            if self._process is not None:
                self._process.kill()


get_jobs = server_wide(KerasJobs)


# --- what the page says about a result ------------------------------------------------------
def per_epoch(side: Side, epochs: int) -> float:
    """Average seconds per epoch, leaving out the first when there are more (Keras' first
    epoch also builds its compiled training step)."""
    timed = side.epoch_seconds[1:] if epochs > 1 else side.epoch_seconds
    return sum(timed) / len(timed)


def speed_sentence(result: KerasComparison) -> str:
    ours, keras = per_epoch(result.ours, result.epochs), per_epoch(result.keras, result.epochs)
    faster = (f"ours was **{keras / ours:.1f}× faster** on this small network" if ours <= keras
              else f"Keras was **{ours / keras:.1f}× faster**")
    note = ("" if result.epochs > 1 else " (with one epoch, Keras' time includes preparing its "
            "training step: choose 2 or 3 epochs for a fairer race)")
    return (f"MLP Lab's NumPy code took **{ours:.2f} s** per epoch and Keras **{keras:.2f} s**: "
            f"{faster}{note}.")


if __name__ == "__main__":
    sys.exit(main())
