"""softmax, output_layer and loss_and_grad against naive formulas written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mlp_core
from mlp_core.losses import LOSSES, OUTPUTS, loss_and_grad, output_layer, softmax

RNG = np.random.default_rng(0)
MODERATE = RNG.normal(0, 3, size=(6, 10))  # logits where the naive formulas are exact enough
LABELS = np.array([0, 3, 9, 5, 5, 1])
EXTREME = np.array([
    [1e4, -1e4, 0, 0, 0, 0, 0, 0, 0, 0],
    [-1e4, 1e4, -1e4, 1e4, 0, 0, 0, 0, 0, 0],  # two tied maxima
    [-1e4] * 10,
    [1e4] * 10,
    [800, 0, 0, 0, 0, 0, 0, 0, 0, -800],  # exp(800) alone overflows float64
    [-745, -746, -800, -900, -1000, -2000, -3000, -4000, -5000, -6000],
])
EXTREME_LABELS = np.array([1, 2, 0, 7, 9, 9])


def naive_softmax_row(row):
    e = [math.exp(v) for v in row]
    s = sum(e)
    return [v / s for v in e]


def naive_softmax(logits):
    return np.array([naive_softmax_row(r) for r in logits])


def onehot(labels, c=10):
    return np.eye(c)[labels]


# ---------------------------------------------------------------- softmax
def test_softmax_is_exported():
    assert mlp_core.softmax is softmax


def test_softmax_matches_naive_for_moderate_logits():
    np.testing.assert_allclose(softmax(MODERATE), naive_softmax(MODERATE), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_stable_for_huge_logits(dtype):
    logits = EXTREME.astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        p = softmax(logits)
    assert p.dtype == dtype
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(p[0], onehot([0])[0], atol=0)  # exp(-1e4) == 0 exactly
    np.testing.assert_allclose(p[1], [0, 0.5, 0, 0.5, 0, 0, 0, 0, 0, 0], atol=0)
    np.testing.assert_allclose(p[2], 0.1, rtol=1e-6)  # all equal -> uniform
    np.testing.assert_allclose(p[3], 0.1, rtol=1e-6)
    assert p[4, 0] == pytest.approx(1.0) and p[4, 9] == 0.0


def test_softmax_shift_invariant_and_does_not_modify_input():
    logits = MODERATE.copy()
    np.testing.assert_allclose(softmax(logits + 1000.0), softmax(logits), rtol=1e-12)
    np.testing.assert_allclose(softmax(logits - 1e5), softmax(logits), rtol=1e-9)
    np.testing.assert_array_equal(logits, MODERATE)


# ---------------------------------------------------------------- cross-entropy
def test_cross_entropy_value_is_minus_log_softmax_true():
    value, _ = loss_and_grad(MODERATE, LABELS, "cross_entropy", "softmax")
    naive = sum(-math.log(naive_softmax_row(r)[y]) for r, y in zip(MODERATE, LABELS)) / len(LABELS)
    assert isinstance(value, float)
    assert value == pytest.approx(naive, rel=1e-13)


def test_cross_entropy_single_example_literal():
    # Ten equal logits: p = 1/10 everywhere, -log(1/10) = log 10.
    value, grad = loss_and_grad(np.zeros((1, 10)), np.array([4]), "cross_entropy", "softmax")
    assert value == pytest.approx(math.log(10), rel=1e-15)
    expected = np.full(10, 0.1)
    expected[4] -= 1
    np.testing.assert_allclose(grad[0], expected, rtol=1e-15)


def test_cross_entropy_gradient_is_p_minus_onehot_over_n():
    _, grad = loss_and_grad(MODERATE, LABELS, "cross_entropy", "softmax")
    expected = (naive_softmax(MODERATE) - onehot(LABELS)) / len(LABELS)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-16)  # softmax - onehot sums to 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_finite_for_extreme_logits(dtype):
    logits = EXTREME.astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grad = loss_and_grad(logits, EXTREME_LABELS, "cross_entropy", "softmax")
    assert math.isfinite(value)
    assert np.isfinite(grad).all()
    # Per row: -log p[true] = logsumexp(row) - row[true], computed by hand.
    per_row = [
        1e4 - (-1e4),  # row 0: true logit 2e4 below the max, p[true] underflows, loss does not
        1e4 + math.log(2) - (-1e4),  # row 1: two maxima share the mass
        math.log(10),  # row 2: uniform
        math.log(10),  # row 3: uniform
        800 + math.log1p(8 * math.exp(-800)) + 800,  # row 4: true is the -800 logit
        -745 + math.log1p(math.exp(-1)) - (-6000),  # row 5: true is the smallest
    ]
    assert value == pytest.approx(sum(per_row) / len(per_row), rel=1e-6 if dtype == np.float32 else 1e-13)
    p = softmax(EXTREME)
    np.testing.assert_allclose(grad, (p - onehot(EXTREME_LABELS)) / len(EXTREME), rtol=1e-6, atol=1e-12)


def test_cross_entropy_perfect_prediction_is_zero_loss():
    logits = np.full((2, 10), -1e4)
    logits[0, 3] = logits[1, 7] = 1e4
    value, grad = loss_and_grad(logits, np.array([3, 7]), "cross_entropy", "softmax")
    assert value == 0.0
    assert np.abs(grad).max() == 0.0


# ---------------------------------------------------------------- mse
def naive_mse(scores, labels):
    n = len(scores)
    return sum(
        sum((float(s) - (1.0 if c == y else 0.0)) ** 2 for c, s in enumerate(row))
        for row, y in zip(scores, labels)
    ) / n


def test_mse_relu_value_and_gradient():
    logits = MODERATE.copy()
    logits[np.abs(logits) < 1e-3] = 0.5  # stay off the kink at 0
    value, grad = loss_and_grad(logits, LABELS, "mse", "relu")
    scores = [[max(v, 0.0) for v in row] for row in logits]
    assert value == pytest.approx(naive_mse(scores, LABELS), rel=1e-13)
    n = len(LABELS)
    expected = [[(2.0 / n) * (scores[i][c] - (c == LABELS[i])) * (1.0 if logits[i, c] > 0 else 0.0)
                 for c in range(10)] for i in range(n)]
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=1e-300)


def test_mse_relu_notebook_example():
    # The notebook's per-image loss: scores 0.2 for the true digit 1, 0.5 for digit 0, rest <= 0.
    logits = np.array([[0.5, 0.2, -1, -1, -1, -1, -1, -1, -1, -1]])
    value, grad = loss_and_grad(logits, np.array([1]), "mse", "relu")
    assert value == pytest.approx(0.5 ** 2 + 0.8 ** 2, rel=1e-15)
    np.testing.assert_allclose(grad[0], [1.0, -1.6, 0, 0, 0, 0, 0, 0, 0, 0], rtol=1e-15)


def test_mse_softmax_value_and_gradient_via_full_jacobian():
    value, grad = loss_and_grad(MODERATE, LABELS, "mse", "softmax")
    p = naive_softmax(MODERATE)
    assert value == pytest.approx(naive_mse(p, LABELS), rel=1e-13)
    n = len(LABELS)
    for i in range(n):
        jac = np.diag(p[i]) - np.outer(p[i], p[i])  # d p_j / d z_k
        d_out = 2.0 / n * (p[i] - onehot(LABELS[i]))
        np.testing.assert_allclose(grad[i], jac.T @ d_out, rtol=1e-11, atol=1e-16)


@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"), ("mse", "softmax"), ("mse", "relu")])
def test_d_logits_finite_difference(loss, output):
    logits = MODERATE.copy()
    logits[np.abs(logits) < 1e-2] = 0.3  # relu output: stay off the kink
    _, grad = loss_and_grad(logits, LABELS, loss, output)
    h = 1e-5
    num = np.empty_like(logits)
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (loss_and_grad(up, LABELS, loss, output)[0]
                    - loss_and_grad(down, LABELS, loss, output)[0]) / (2 * h)
    assert np.abs(num - grad).max() / np.abs(grad).max() < 1e-8


def test_mse_softmax_finite_for_extreme_logits():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value, grad = loss_and_grad(EXTREME, EXTREME_LABELS, "mse", "softmax")
    assert math.isfinite(value) and np.isfinite(grad).all()
    assert 0 <= value <= 2  # |p - onehot|^2 <= 2 for probability vectors


def test_losses_do_not_modify_logits():
    for loss, output in (("cross_entropy", "softmax"), ("mse", "softmax"), ("mse", "relu")):
        logits = MODERATE.copy()
        loss_and_grad(logits, LABELS, loss, output)
        np.testing.assert_array_equal(logits, MODERATE)


@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"), ("mse", "softmax"), ("mse", "relu")])
def test_float32_logits_keep_float32_gradient(loss, output):
    value, grad = loss_and_grad(MODERATE.astype(np.float32), LABELS, loss, output)
    ref_value, ref_grad = loss_and_grad(MODERATE, LABELS, loss, output)
    assert isinstance(value, float) and grad.dtype == np.float32
    assert value == pytest.approx(ref_value, rel=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-6 * np.abs(ref_grad).max())


# ---------------------------------------------------------------- names and shapes
def test_names():
    assert LOSSES == ("mse", "cross_entropy") and OUTPUTS == ("relu", "softmax")
    np.testing.assert_array_equal(output_layer(MODERATE, "relu"), np.maximum(MODERATE, 0))
    np.testing.assert_allclose(output_layer(MODERATE, "softmax"), naive_softmax(MODERATE), rtol=1e-13)


@pytest.mark.parametrize("loss", ["MSE", "crossentropy", "ce", "", None, "hinge"])
def test_bad_loss_name_raises(loss):
    with pytest.raises(ValueError):
        loss_and_grad(MODERATE, LABELS, loss, "softmax")


@pytest.mark.parametrize("output", ["Softmax", "sigmoid", "", None, "linear"])
def test_bad_output_name_raises(output):
    with pytest.raises(ValueError):
        output_layer(MODERATE, output)
    with pytest.raises(ValueError):
        loss_and_grad(MODERATE, LABELS, "mse", output)
    with pytest.raises(ValueError):
        loss_and_grad(MODERATE, LABELS, "cross_entropy", output)


def test_cross_entropy_needs_softmax():
    with pytest.raises(ValueError, match="softmax"):
        loss_and_grad(MODERATE, LABELS, "cross_entropy", "relu")


@pytest.mark.parametrize("labels", [
    LABELS[:, None],  # (N, 1)
    LABELS[:-1],  # (N - 1,)
    np.append(LABELS, 0),  # (N + 1,)
    np.array(3),  # scalar
    onehot(LABELS),  # one-hot (N, 10) instead of digits
])
@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"), ("mse", "relu"), ("mse", "softmax")])
def test_wrong_label_shape_raises(labels, loss, output):
    with pytest.raises(ValueError, match="labels must have shape"):
        loss_and_grad(MODERATE, labels, loss, output)


def test_labels_may_be_a_list_or_uint8():
    ref = loss_and_grad(MODERATE, LABELS, "cross_entropy", "softmax")
    for labels in (LABELS.tolist(), LABELS.astype(np.uint8)):
        value, grad = loss_and_grad(MODERATE, labels, "cross_entropy", "softmax")
        assert value == ref[0]
        np.testing.assert_array_equal(grad, ref[1])


@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"), ("mse", "relu")])
def test_out_of_range_labels_raise_value_error(loss, output):
    with pytest.raises(ValueError):
        loss_and_grad(MODERATE, np.array([0, 3, 9, 5, 5, -1]), loss, output)
