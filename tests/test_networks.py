"""Network.copy: a model equal to the original, independent of it, made without drawing
weights (the dashboard copies the model on every canvas stroke)."""

import numpy as np
import pytest

from mlp_core import DenseMLP, NotebookNet, build_model, networks

MODELS = {
    "notebook": lambda: NotebookNet(seed=1),
    "notebook, cross-entropy, float64": lambda: NotebookNet(loss="cross_entropy", init="he", seed=2, dtype=np.float64),
    "dense": lambda: DenseMLP(hidden=(32, 16), seed=3),
    "dense, tanh, float64": lambda: DenseMLP(hidden=(24,), activation="tanh", init="xavier", seed=4, dtype=np.float64),
}


def images(model, n, seed):
    return np.random.default_rng(seed).random((n, 784)).astype(model.dtype)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_a_copy_equals_the_original_and_is_independent_of_it(make):
    model = make()
    clone = model.copy()
    assert type(clone) is type(model) and clone.config() == model.config()
    for name, value in model.params.items():
        assert clone.params[name].dtype == value.dtype
        np.testing.assert_array_equal(clone.params[name], value, err_msg=name)
    x = images(model, 4, seed=0)
    np.testing.assert_array_equal(clone.predict_proba(x), model.predict_proba(x))

    original = model.params.flat.copy()
    clone.params.flat[:] += 1  # writing the copy leaves the original alone...
    np.testing.assert_array_equal(model.params.flat, original)
    model.params.flat[:] = 0  # ...and the other way round
    assert np.all(clone.params.flat == original + 1)

    # Nor do they share the buffers a step writes into (the one-image path included).
    _, grads = model.loss_and_grads(x[:1], [3])
    kept = {name: g.copy() for name, g in grads.items()}
    clone.loss_and_grads(images(model, 1, seed=1), [7])
    for name, g in grads.items():
        np.testing.assert_array_equal(g, kept[name], err_msg=name)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_copying_draws_no_random_weights(make, monkeypatch):
    model = make()

    def drawing(*args, **kwargs):
        raise AssertionError("random weights were drawn")

    monkeypatch.setattr(networks, "_init_weight", drawing)
    monkeypatch.setattr(networks, "_init_bias", drawing)
    monkeypatch.setattr(np.random, "default_rng", drawing)
    clone = model.copy()
    np.testing.assert_array_equal(clone.params.flat, model.params.flat)
    with pytest.raises(AssertionError, match="were drawn"):  # building a model would be caught
        build_model(model.config())


def test_weights_given_to_a_model_must_fit_it():
    with pytest.raises(ValueError, match="expected parameters"):
        DenseMLP(hidden=(8,), params=NotebookNet().params)
    with pytest.raises(ValueError, match=r"w1 must have shape \(784, 8\)"):
        DenseMLP(hidden=(8,), params=DenseMLP(hidden=(9,)).params)
