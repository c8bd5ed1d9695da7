"""NumPy vs Keras: the same network, the same starting weights, the same data and settings,
trained by mlp_core and by TensorFlow/Keras. No Streamlit; TensorFlow is imported only
inside ``compare`` (the rest of the app never loads it).

The network: 784-128-64-10, ReLU, softmax cross-entropy, Adam (lr 0.001, eps 1e-7, as
Keras), batch 64, float32. Keras' Dense layers get mlp_core's initial weights, so both
start from the very same point; the gradients of both on one batch, from those weights,
are compared number by number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mlp_core import DenseMLP, TrainConfig, Trainer

HIDDEN = (128, 64)
BATCH = 64
LR = 1e-3
TRAIN_SIZES = (2000, 5000, 10000)
EPOCH_OPTIONS = (1, 2, 3)


@dataclass
class Side:
    name: str  # "NumPy (mlp_core)" or "TensorFlow / Keras"
    epoch_seconds: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)  # after each epoch


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


def compare(data, n_train: int = 5000, epochs: int = 2, seed: int = 0) -> KerasComparison:
    """Train both for ``epochs`` passes over ``n_train`` images; compare one batch's gradients."""
    import tensorflow as tf  # lazy: only this view needs it

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
    xb, yb = x[:BATCH], y[:BATCH]
    loss_ours, grads_ours = start_model.copy().loss_and_grads(xb, yb)
    grads_ours = {k: np.array(v) for k, v in grads_ours.items()}
    keras_model = _keras_model(tf, initial)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss_keras = loss_fn(yb, keras_model(xb, training=True))
    grads_keras = tape.gradient(loss_keras, keras_model.trainable_variables)
    names = [f"{kind}{i}" for i in range(1, 4) for kind in ("w", "b")]  # Keras' order
    grad_max_abs, grad_rel = {}, {}
    for name, g in zip(names, grads_keras):
        diff = float(np.abs(grads_ours[name] - g.numpy()).max())
        grad_max_abs[name] = diff
        grad_rel[name] = diff / max(float(np.abs(grads_ours[name]).max()), 1e-30)

    # --- training, epoch by epoch ---------------------------------------------------------
    ours = Side("NumPy (mlp_core)")
    model = start_model
    trainer = Trainer(model, x, y, TrainConfig(optimizer="adam", lr=LR, batch_size=BATCH, seed=seed))
    keras_side = Side("TensorFlow / Keras")
    keras_model = _keras_model(tf, initial)
    keras_model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=LR, epsilon=1e-7),
                        loss=loss_fn)
    per_epoch = n_train // BATCH
    for _ in range(epochs):
        t0 = time.perf_counter()
        trainer.run(steps=per_epoch)
        ours.epoch_seconds.append(time.perf_counter() - t0)
        ours.val_accuracy.append(float(np.mean(model.predict(x_val) == y_val)))
        t0 = time.perf_counter()
        keras_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        keras_side.epoch_seconds.append(time.perf_counter() - t0)
        logits = keras_model.predict(x_val, batch_size=1000, verbose=0)
        keras_side.val_accuracy.append(float(np.mean(logits.argmax(axis=1) == y_val)))
    return KerasComparison(n_train, epochs, ours, keras_side, grad_max_abs, grad_rel,
                           float(loss_ours), float(loss_keras), tf.__version__)


def _keras_model(tf, params: dict[str, np.ndarray]):
    """784-128-64-10 relu, logits out, with mlp_core's weights (same (n_in, n_out) layout)."""
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(784,)),
        tf.keras.layers.Dense(HIDDEN[0], activation="relu"),
        tf.keras.layers.Dense(HIDDEN[1], activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    for i, layer in enumerate(model.layers, start=1):
        layer.set_weights([params[f"w{i}"], params[f"b{i}"]])
    return model


class KerasJobs:
    """One comparison at a time for the whole server (TensorFlow is heavy), in a background
    thread; results are kept by (n_train, epochs) and shared by every session."""

    def __init__(self, data=None):
        import threading

        self._data = data
        self._lock = threading.Lock()
        self._thread = None
        self.running: tuple[int, int] | None = None
        self.results: dict[tuple[int, int], KerasComparison] = {}
        self.error: str | None = None

    def request(self, n_train: int, epochs: int) -> None:
        import threading

        if n_train not in TRAIN_SIZES or epochs not in EPOCH_OPTIONS:
            raise ValueError(f"n_train must be one of {TRAIN_SIZES} and epochs one of "
                             f"{EPOCH_OPTIONS}, got {n_train} and {epochs}")
        with self._lock:
            if self.running is not None or (n_train, epochs) in self.results:
                return
            self.running, self.error = (n_train, epochs), None
            self._thread = threading.Thread(target=self._work, args=(n_train, epochs),
                                            daemon=True, name="mlp-lab-keras")
            self._thread.start()

    def _work(self, n_train: int, epochs: int) -> None:
        import logging

        try:
            from .shared_data import get_data

            result = compare(self._data if self._data is not None else get_data(), n_train, epochs)
            with self._lock:
                self.results[(n_train, epochs)] = result
        except Exception as exc:  # e.g. TensorFlow missing: say so on the page
            logging.getLogger("mlp_lab").exception("Keras comparison failed")
            self.error = (f"{type(exc).__name__}: {exc}" if isinstance(exc, ImportError)
                          else type(exc).__name__)
        finally:
            with self._lock:
                self.running = None

    @property
    def busy(self) -> bool:
        return self.running is not None

    def wait(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                raise TimeoutError("the Keras comparison did not finish in time")
            time.sleep(0.1)


_jobs: KerasJobs | None = None


def get_jobs() -> KerasJobs:
    global _jobs
    if _jobs is None:
        _jobs = KerasJobs()
    return _jobs
