"""The fast paths compute the same numbers as the checked ones.

DenseMLP's fused relu + cross-entropy step and the optimizers' flat-array updates exist
only for speed; the gradient checks (finite differences, TensorFlow) test the generic
forward/backward. Here the fast paths are held to the generic ones.
"""

import numpy as np
import pytest

from mlp_core import DenseMLP, NotebookNet, make_optimizer
from mlp_core.networks import Network, ParamDict


def generic_loss_and_grads(model, x, labels):
    """The checked path: Network.loss_and_grads, bypassing DenseMLP's override."""
    return Network.loss_and_grads(model, x, labels)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("hidden", [(128, 64), (256, 128), (32,), (64, 32, 16)])
def test_fused_dense_step_equals_generic_path(mnist, hidden, dtype, rtol):
    (x_train, y_train), _ = mnist
    rng = np.random.default_rng(0)
    idx = rng.choice(len(x_train), 96, replace=False)
    x, labels = x_train[idx].astype(dtype) / 255, y_train[idx]
    model = DenseMLP(hidden=hidden, seed=1, dtype=dtype)
    fast_loss, fast = model.loss_and_grads(x, labels)
    fast = {k: v.copy() for k, v in fast.items()}  # the fast path reuses its buffers
    slow_loss, slow = generic_loss_and_grads(model, x, labels)
    assert fast_loss == pytest.approx(slow_loss, rel=rtol)
    for name in model.params:
        scale = np.abs(slow[name]).max()
        np.testing.assert_allclose(fast[name], slow[name], rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("init", ["notebook", "he"])
def test_notebook_one_image_step_equals_generic_path(mnist, init, dtype, rtol):
    (x_train, y_train), _ = mnist
    model = NotebookNet(init=init, seed=2, dtype=dtype)
    checked = 0
    for i in range(12):  # several digits; he init makes some relu units dead, some alive
        x, labels = x_train[i:i + 1].astype(dtype) / 255, y_train[i:i + 1]
        fast_loss, fast = model.loss_and_grads(x, labels)
        fast = {k: v.copy() for k, v in fast.items()}
        slow_loss, slow = generic_loss_and_grads(model, x, labels)
        assert fast_loss == pytest.approx(slow_loss, rel=rtol)
        for name in model.params:
            scale = np.abs(slow[name]).max()
            np.testing.assert_allclose(fast[name], slow[name], rtol=rtol, atol=rtol * scale, err_msg=name)
            checked += bool(scale)
    assert checked > 12 * 3  # most gradients were non-zero: the comparison meant something


def test_fused_step_handles_a_change_of_batch_size(mnist):
    (x_train, y_train), _ = mnist
    model = DenseMLP(hidden=(16,), dtype=np.float64)
    for n in (5, 17, 5):
        x, labels = x_train[:n] / 255.0, y_train[:n]
        fast_loss, _ = model.loss_and_grads(x, labels)
        assert fast_loss == pytest.approx(generic_loss_and_grads(model, x, labels)[0], rel=1e-12)


def test_fused_step_refuses_bad_labels():
    model = DenseMLP(hidden=(8,))
    x = np.zeros((3, 784), np.float32)
    with pytest.raises(ValueError, match="labels"):
        model.loss_and_grads(x, np.array([1, 2, 10]))


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_flat_optimizer_update_equals_per_parameter_update(name):
    """Same gradients through the flat path (ParamDicts) and the per-name path (plain
    dicts): bit-for-bit the same parameters after many steps, including the Adam steps
    where subnormal moments are flushed."""
    rng = np.random.default_rng(3)
    shapes = {"w1": (20, 7), "b1": (7,), "w2": (7, 3), "b2": (3,)}
    flat_params = ParamDict(shapes, np.float32)
    for k in shapes:
        flat_params[k] = rng.standard_normal(shapes[k])
    dict_params = {k: v.copy() for k, v in flat_params.items()}
    flat_opt, dict_opt = make_optimizer(name, 0.01), make_optimizer(name, 0.01)
    grads = ParamDict(shapes, np.float32)
    for step in range(900):  # 0.9^n * 0.1 is subnormal in float32 for n in ~810..960
        for k in shapes:
            g = rng.standard_normal(shapes[k]).astype(np.float32)
            if step >= 10:
                g[0] = 0  # gradients that stay exactly 0 drive Adam's moments subnormal
            grads[k] = g
        flat_opt.step(flat_params, grads)
        dict_opt.step(dict_params, {k: v.copy() for k, v in grads.items()})
    for k in shapes:
        np.testing.assert_array_equal(flat_params[k], dict_params[k], err_msg=k)
    if name == "adam":
        tiny = np.finfo(np.float32).tiny
        m = flat_opt.m_sum.flat
        assert not np.any((m != 0) & (np.abs(m) < tiny)), "subnormal moments were not flushed"
        # The zero-gradient rows would hold subnormals by now had they not been flushed.
        assert np.all(flat_opt.m_sum["w1"][0] == 0)


def test_param_dict_keeps_its_views():
    params = ParamDict({"w1": (2, 3), "b1": (3,)}, np.float64)
    params["w1"] = np.ones((2, 3))
    assert params.flat[:6].sum() == 6  # assignment wrote through to the flat array
    with pytest.raises(ValueError, match="shape"):
        params["b1"] = np.ones(4)


def test_deepcopy_of_a_param_dict_and_an_optimizer_keeps_the_flat_layout():
    import copy

    params = ParamDict({"w1": (2, 3), "b1": (3,)}, np.float32)
    params["w1"] = np.arange(6).reshape(2, 3)
    clone = copy.deepcopy(params)
    assert isinstance(clone, ParamDict) and np.array_equal(clone.flat, params.flat)
    clone["w1"] = np.zeros((2, 3))
    assert params["w1"].sum() == 15  # independent storage
    assert clone.flat[:6].sum() == 0  # and the clone's views still write through
    opt = make_optimizer("adam", 0.1)
    opt.step(params, ParamDict({"w1": (2, 3), "b1": (3,)}, np.float32))
    twin = copy.deepcopy(opt)
    assert twin.t == opt.t and np.array_equal(twin.m_sum.flat, opt.m_sum.flat) and twin.m_sum.flat is not opt.m_sum.flat


def test_stacked_is_a_view_of_a_weight_and_its_bias_as_one_matrix():
    params = ParamDict({"w1": (3, 2), "b1": (2,), "w2": (2, 4), "b2": (4,)}, np.float32)
    params["w1"] = np.arange(6).reshape(3, 2)
    params["b1"] = [10, 20]
    both = params.stacked("w1", "b1")
    np.testing.assert_array_equal(both, [[0, 1], [2, 3], [4, 5], [10, 20]])
    both[-1] = 7  # a view: writing the last row writes the bias
    np.testing.assert_array_equal(params["b1"], [7, 7])
    with pytest.raises(ValueError, match="neighbours"):
        params.stacked("w1", "b2")
    with pytest.raises(ValueError, match="neighbours"):
        params.stacked("b1", "w2")  # adjacent, but rows of different lengths


def test_a_batch_written_into_the_input_buffer_gives_the_same_step(mnist):
    """The trainer gathers batches straight into the model's input buffer, which the fused
    step then reads in place. Same numbers as a batch passed as an array of its own, step
    after step, and the hidden layers' columns of ones (which carry the biases) stay 1."""
    (x_train, y_train), _ = mnist
    x = x_train[:64].reshape(64, 784) / np.float32(255)
    model = DenseMLP(hidden=(32, 16), seed=4)
    reference_loss, reference = model.loss_and_grads(x, y_train[:64])
    reference = {k: v.copy() for k, v in reference.items()}
    for _ in range(2):
        buffer = model.input_buffer(64)
        buffer[...] = x
        loss, grads = model.loss_and_grads(buffer, y_train[:64])
        assert loss == reference_loss
        for name in reference:
            np.testing.assert_array_equal(grads[name], reference[name], err_msg=name)
    wide = model._buffers(64)["wide"]
    assert all(np.all(w[:, -1] == 1) for w in wide[1:])  # the columns of ones are never written


def test_the_parts_of_a_batch_add_up_to_the_whole_batch(mnist):
    """partial_loss_and_grads, as two processes use it: a batch of 33 in parts of 16 and 17
    gives the whole batch's loss and gradient, summed."""
    (x_train, y_train), _ = mnist
    x, y = x_train[:33].reshape(33, 784) / 255.0, y_train[:33]
    model = DenseMLP(hidden=(16, 8), seed=2, dtype=np.float64)
    loss, grads = model.loss_and_grads(x, y)
    whole = grads.flat.copy()
    parts = [ParamDict(model.param_shapes(), np.float64) for _ in range(2)]
    part_losses = [model.partial_loss_and_grads(x[:16], y[:16], 33, parts[0]),
                   model.partial_loss_and_grads(x[16:], y[16:], 33, parts[1])]
    assert sum(part_losses) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(parts[0].flat + parts[1].flat, whole, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="float64 ParamDict of shapes"):
        model.partial_loss_and_grads(x[:16], y[:16], 33, ParamDict(model.param_shapes(), np.float32))
    with pytest.raises(ValueError, match="relu with cross-entropy"):
        DenseMLP(hidden=(8,), activation="tanh").partial_loss_and_grads(x[:16], y[:16], 33, parts[0])
