"""Our analytic gradients against TensorFlow's automatic differentiation.

Both forward passes are written again, independently, in TF ops (einsum / matmul, relu,
softmax, ``tf.nn.softmax_cross_entropy_with_logits``), on identical float64 weights and
inputs; ``tf.GradientTape`` differentiates them. Forward outputs, loss values and every
gradient must agree to rounding (summation order differs, so not bit for bit).

Two batches of 8 images: real MNIST test digits scaled to [0, 1] (their blank border
columns make thousands of NotebookNet pre-activations exactly 0 under the zero-bias "he"
init, which also checks that both sides take relu'(0) = 0), and uniform random images.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tensorflow  # run last: see conftest.py

from mlp_core.networks import DenseMLP, NotebookNet  # noqa: E402

try:  # keep TF modest on shared machines; fails harmlessly if TF already started
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:
    pass

MNIST = Path(__file__).resolve().parents[1] / "mlp_core" / "data" / "mnist.npz"
RTOL = 1e-9  # element-wise, on top of ATOL_SCALE x (largest |gradient| of that parameter)
ATOL_SCALE = 1e-12
SUMMARY_BOUND = 1e-12  # worst |ours - tf| / scale over everything
TINY = 1e-300


@functools.lru_cache(maxsize=None)
def batch(kind: str):
    if kind == "digits":
        with np.load(MNIST, allow_pickle=False) as data:
            x, y = data["x_test"], data["y_test"]
        picks = [int(np.flatnonzero(y == d)[0]) for d in (0, 1, 2, 3, 4, 7, 8, 9)]
        return x[picks].astype(np.float64) / 255.0, y[picks].astype(np.int64)
    rng = np.random.default_rng(42)
    return rng.random((8, 28, 28)), rng.integers(0, 10, 8)


# tf.nn.leaky_relu stores ``alpha`` as a float32 attribute, so even on float64 tensors
# its slope is float32(0.01) = 0.009999999776..., 2.2e-8 off; that alone would dominate
# the comparison. The main check therefore writes leaky relu out in float64 ops, and
# test_tf_leaky_relu_alpha_is_float32 pins down the op itself.
TF_ACT = {
    "relu": tf.nn.relu,
    "leaky_relu": lambda z: tf.where(z > 0, z, tf.constant(0.01, z.dtype) * z),
    "sigmoid": tf.math.sigmoid,
    "tanh": tf.math.tanh,
}


def tf_notebook(v, x, onehot, loss):
    """NotebookNet in TF: the image X (28x28) as a matrix, w1 @ X from the left."""
    h1 = tf.nn.relu(tf.einsum("ab,nbk->nak", v["w1"], x) + v["b1"])  # (N, 128, 28)
    h2 = tf.nn.relu(tf.einsum("ab,nbk->nak", v["w2"], h1) + v["b2"])  # (N, 10, 28)
    logits = tf.einsum("nik,kj->nij", h2, v["w3"])[:, :, 0]  # (N, 10)
    if loss == "mse":
        out = tf.nn.relu(logits)
        value = tf.reduce_mean(tf.reduce_sum(tf.square(out - onehot), axis=1))
    else:
        out = tf.nn.softmax(logits)
        value = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits))
    return out, value


def tf_dense(v, x, onehot, loss, activation, n_layers):
    h = tf.reshape(x, (-1, 784))
    for i in range(1, n_layers + 1):
        z = tf.matmul(h, v[f"w{i}"]) + v[f"b{i}"]
        h = z if i == n_layers else TF_ACT[activation](z)
    logits = h
    out = tf.nn.softmax(logits)
    if loss == "mse":
        value = tf.reduce_mean(tf.reduce_sum(tf.square(out - onehot), axis=1))
    else:
        value = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits))
    return out, value


class Case(NamedTuple):
    kind: str
    loss: str
    init: str
    activation: str = "relu"
    data: str = "digits"

    def label(self):
        act = "" if self.kind == "notebook" else f"-{self.activation}"
        return f"{self.kind}{act}-{self.loss}-{self.init}-{self.data}"

    def build(self):
        if self.kind == "notebook":
            return NotebookNet(loss=self.loss, init=self.init, seed=5, dtype=np.float64)
        return DenseMLP(activation=self.activation, loss=self.loss, init=self.init, seed=5,
                        dtype=np.float64)


CASES = [
    Case("notebook", loss, init, data=data)
    for loss in ("mse", "cross_entropy") for init in ("notebook", "he")
    for data in ("digits", "uniform")
] + [
    Case("dense", loss, init, activation=act, data=data)
    for act in ("relu", "leaky_relu", "sigmoid", "tanh") for loss in ("mse", "cross_entropy")
    for init, data in (("he", "digits"), ("xavier", "uniform"))
]


@functools.lru_cache(maxsize=None)
def compare(case: Case) -> dict:
    model = case.build()
    x, labels = batch(case.data)
    onehot = np.eye(10)[labels]
    ours_out = model.forward(x)
    ours_loss, ours_grads = model.loss_and_grads(x, labels)

    v = {k: tf.Variable(p.copy(), dtype=tf.float64) for k, p in model.params.items()}
    x_tf, onehot_tf = tf.constant(x, tf.float64), tf.constant(onehot, tf.float64)
    with tf.GradientTape() as tape:
        if case.kind == "notebook":
            tf_out, tf_loss = tf_notebook(v, x_tf, onehot_tf, case.loss)
        else:
            tf_out, tf_loss = tf_dense(v, x_tf, onehot_tf, case.loss, case.activation, model.n_layers)
    tf_grads = tape.gradient(tf_loss, v)

    res = {"out": (ours_out, tf_out.numpy()), "loss": (np.array(ours_loss), np.array(tf_loss.numpy()))}
    for name in model.params:
        assert tf_grads[name] is not None, name
        res[name] = (ours_grads[name], tf_grads[name].numpy())
    return res


def diffs(pair):
    ours, theirs = pair
    abs_diff = float(np.abs(ours - theirs).max())
    scale = max(float(np.abs(theirs).max()), TINY)
    return abs_diff, abs_diff / scale


@pytest.mark.parametrize("case", CASES, ids=Case.label)
def test_matches_tensorflow(case):
    res = compare(case)
    worst = 0.0
    for name, (ours, theirs) in res.items():
        assert ours.shape == theirs.shape, name
        scale = max(float(np.abs(theirs).max()), TINY)
        assert scale > 0 or name == "loss", f"{name}: gradient identically 0 (vacuous check)"
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL_SCALE * scale,
                                   err_msg=f"{case.label()} {name}")
        worst = max(worst, diffs((ours, theirs))[1])
    print(f"\n{case.label():40s} loss={float(res['loss'][0]):.6f} worst |ours-tf|/scale={worst:.1e}", end="")


def test_tf_leaky_relu_alpha_is_float32():
    """tf.nn.leaky_relu(alpha=0.01) agrees with ours to float32 precision of alpha only."""
    case = Case("dense", "cross_entropy", "he", activation="leaky_relu")
    model = case.build()
    x, labels = batch("digits")
    v = {k: tf.Variable(p.copy(), dtype=tf.float64) for k, p in model.params.items()}
    slope = tf.nn.leaky_relu(tf.constant([-1.0], tf.float64), alpha=0.01).numpy()[0]
    assert slope == -float(np.float32(0.01)) != -0.01
    with tf.GradientTape() as tape:
        h = tf.constant(x.reshape(-1, 784))
        for i in (1, 2):
            h = tf.nn.leaky_relu(tf.matmul(h, v[f"w{i}"]) + v[f"b{i}"], alpha=0.01)
        logits = tf.matmul(h, v["w3"]) + v["b3"]
        value = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
            labels=np.eye(10)[labels], logits=logits))
    grads = tape.gradient(value, v)
    ours_loss, ours = model.loss_and_grads(x, labels)
    np.testing.assert_allclose(ours_loss, value.numpy(), rtol=1e-7)
    for name in ours:
        scale = np.abs(ours[name]).max()
        np.testing.assert_allclose(ours[name], grads[name].numpy(), rtol=1e-6, atol=1e-7 * scale)


def test_summary_worst_tf_difference():
    worst_abs = worst_rel = 0.0
    where = ""
    for case in CASES:
        for name, pair in compare(case).items():
            a, r = diffs(pair)
            worst_abs = max(worst_abs, a)
            if r >= worst_rel:
                worst_rel, where = r, f"{case.label()} {name}"
    print(f"\n{len(CASES)} models vs tf.GradientTape (float64): worst |ours - tf| = {worst_abs:.2e}, "
          f"worst |ours - tf| / scale = {worst_rel:.2e} ({where})")
    assert worst_rel < SUMMARY_BOUND
