"""mlp_core.explain: gradients to the input, saliency, occlusion, activations, naive resize,
one step taken apart. Each gradient is checked two independent ways: against central
differences, and against the gradients mlp_core's own backward pass computes."""

import numpy as np
import pytest

from mlp_core import DenseMLP, NotebookNet
from mlp_core.explain import (hidden_activations, input_gradient, logits_of, naive_resize,
                              occlusion, one_step, saliency)
from mlp_core.optimizers import make_optimizer
from mlp_core.preprocess import preprocess_digit


def models():
    return [NotebookNet(loss="mse", init="he", seed=1, dtype=np.float64),
            NotebookNet(loss="cross_entropy", init="he", seed=2, dtype=np.float64),
            DenseMLP(hidden=(32, 16), seed=3, dtype=np.float64),
            DenseMLP(hidden=(20,), activation="tanh", seed=4, dtype=np.float64)]


def an_image(seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((28, 28))
    image[6:22, 12:16] = rng.uniform(0.5, 1.0, (16, 4))  # a thick "1" with uneven ink
    return image


@pytest.mark.parametrize("model", models(), ids=lambda m: m.describe() + m.loss)
def test_input_gradient_matches_central_differences(model):
    x = an_image()
    x += 0.02  # no blank column: with zero biases its neurons would sit exactly on relu's kink
    digit = 3
    grad = input_gradient(model, x, digit)  # (28, 28)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for r, c in [tuple(p) for p in rng.integers(0, 28, (12, 2))] + [(10, 13), (15, 14)]:
        up, down = x.copy(), x.copy()
        up[r, c] += eps
        down[r, c] -= eps
        numeric = (logits_of(model, up)[digit] - logits_of(model, down)[digit]) / (2 * eps)
        assert grad[r, c] == pytest.approx(numeric, rel=1e-5, abs=1e-9), (r, c)


@pytest.mark.parametrize("model", models(), ids=lambda m: m.describe() + m.loss)
def test_input_gradient_agrees_with_the_engines_backward(model):
    """For one image, backward(d_logits = one-hot) gives db1 = dL/dz1; the input gradient is
    that pushed through w1 once more. Both come from independent code."""
    x = an_image(1)
    digit = 7
    model.forward(x[None])
    d_logits = np.zeros((1, 10))
    d_logits[0, digit] = 1.0
    grads = model.backward(d_logits)
    if model.kind == "notebook":
        expected = model.params["w1"].T @ grads["b1"]  # (28, 128) @ (128, 28)
    else:
        expected = (grads["b1"] @ model.params["w1"].T).reshape(28, 28)  # (n1,) @ (n1, 784)
    np.testing.assert_allclose(input_gradient(model, x, digit), expected, rtol=1e-10, atol=1e-12)


def test_saliency_is_gradient_times_input_and_zero_without_ink():
    model = DenseMLP(hidden=(16,), seed=0, dtype=np.float64)
    x = an_image()
    sal = saliency(model, x, 1)
    np.testing.assert_allclose(sal, input_gradient(model, x, 1) * x)
    assert np.all(sal[x == 0] == 0) and np.any(sal != 0)


def test_occlusion_is_zero_far_from_the_ink_and_positive_where_it_matters():
    model = DenseMLP(hidden=(16,), seed=0, dtype=np.float64)
    x = an_image()
    digit = int(model.predict(x[None])[0])
    heat = occlusion(model, x, digit, patch=4, stride=2)
    assert heat.shape == (28, 28)
    # every square covering the corner is blank already: no change, but for rounding (BLAS
    # may sum a batch's rows in another order than a single image's: 8e-17 seen in CI)
    assert np.all(np.abs(heat[:4, :4]) < 1e-12)
    # blacking out the whole digit is the biggest change the map can show
    assert np.abs(heat[6:22, 12:16]).max() > 0
    with pytest.raises(ValueError, match="stride"):
        occlusion(model, x, digit, patch=4, stride=5)
    with pytest.raises(ValueError, match="digit"):
        occlusion(model, x, 10)


@pytest.mark.parametrize("model", models()[:3], ids=lambda m: m.describe() + m.loss)
def test_hidden_activations_shapes_and_output(model):
    x = an_image()
    layers = hidden_activations(model, x)
    names = [name for name, _ in layers]
    assert names[-1] == "output"
    if model.kind == "notebook":
        assert [v.shape for _, v in layers] == [(128, 28), (10, 28), (10,)]
    else:
        assert [v.shape for _, v in layers] == [(32,), (16,), (10,)]
    assert all((v >= 0).all() for name, v in layers[:-1])  # relu layers
    np.testing.assert_allclose(layers[-1][1], model.forward(x[None])[0])


def test_naive_resize_averages_blocks_and_keeps_position():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[20:60, 20:40, :3] = 255  # a small stroke in the top-left corner
    naive = naive_resize(canvas)
    assert naive.shape == (28, 28) and naive.dtype == np.float32
    expected = canvas[..., :3].mean(axis=2).reshape(28, 10, 28, 10).mean(axis=(1, 3)) / 255
    np.testing.assert_allclose(naive, expected, atol=1e-6)
    assert naive[:8, :6].sum() == pytest.approx(naive.sum())  # still in the corner, still small
    centred = preprocess_digit(canvas)  # the MNIST way: cut out, scaled up, centred
    rows, cols = np.nonzero(centred > 0.1)
    assert 10 <= rows.mean() <= 18 and 10 <= cols.mean() <= 18
    assert (rows.max() - rows.min()) >= 18  # scaled to about 20 px tall
    assert naive_resize(np.zeros((280, 280, 4), np.uint8)) is None
    with pytest.raises(ValueError, match="shape"):
        naive_resize(np.zeros((5, 5, 2)))


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_one_step_reports_the_engines_gradients_and_update(name):
    rng = np.random.default_rng(0)
    model = DenseMLP(hidden=(16,), seed=0, dtype=np.float64)
    x, y = rng.uniform(0, 1, (8, 784)), rng.integers(0, 10, 8)
    optimizer = make_optimizer(name, 0.01)
    before = {k: v.copy() for k, v in model.params.items()}
    step = one_step(model, optimizer, x, y)
    for k in before:  # the model and the optimizer were left alone
        np.testing.assert_array_equal(model.params[k], before[k])
    assert optimizer.t == 0
    loss, grads = model.copy().loss_and_grads(x, y)
    assert step["loss"] == pytest.approx(loss)
    for k in grads:
        np.testing.assert_allclose(step["grads"][k], grads[k])
        if name == "sgd":  # plain SGD: the update is exactly -lr * gradient
            np.testing.assert_allclose(step["update"][k], -0.01 * grads[k], atol=1e-15)
        else:  # Adam's first step moves every weight with a gradient by about lr, against it
            moved = np.abs(grads[k]) > 1e-4  # (eps matters for tinier ones)
            np.testing.assert_allclose(np.abs(step["update"][k][moved]), 0.01, rtol=1e-3)
            assert np.all(np.sign(step["update"][k][moved]) == -np.sign(grads[k][moved]))


def test_bad_inputs_get_clear_messages():
    model = DenseMLP(hidden=(4,), seed=0)
    with pytest.raises(ValueError, match="28x28"):
        input_gradient(model, np.zeros((27, 28), np.float32), 1)
    with pytest.raises(ValueError, match="float"):
        saliency(model, np.zeros((28, 28), np.uint8), 1)


def test_one_step_copies_a_trained_optimizers_state():
    """After some steps Adam holds moments: the step shown must be the one training would
    take next, and the real optimizer must not move."""
    rng = np.random.default_rng(1)
    model = DenseMLP(hidden=(16,), seed=0, dtype=np.float64)
    optimizer = make_optimizer("adam", 0.01)
    for _ in range(5):
        xb, yb = rng.uniform(0, 1, (8, 784)), rng.integers(0, 10, 8)
        _, grads = model.loss_and_grads(xb, yb)
        optimizer.step(model.params, grads)
    x, y = rng.uniform(0, 1, (8, 784)), rng.integers(0, 10, 8)
    m_before = optimizer.m_sum.flat.copy()
    step = one_step(model, optimizer, x, y)
    assert optimizer.t == 5 and np.array_equal(optimizer.m_sum.flat, m_before)
    real = model.copy()
    _, grads = real.loss_and_grads(x, y)
    optimizer.step(real.params, grads)  # what training does next
    for k in step["update"]:
        np.testing.assert_allclose(step["update"][k], real.params[k] - model.params[k], atol=1e-12)
