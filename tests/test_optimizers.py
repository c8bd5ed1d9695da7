"""SGD, Momentum and Adam against hand-computed updates.

Every expected value is computed here, in plain Python floats, from the textbook formula
(never by calling the optimizer under test); a few first steps are also written out as
literal numbers. Formulas:

* SGD:       w <- w - lr * g
* Momentum:  v <- beta * v + g;  w <- w - lr * v
* Adam:      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
             m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t);
             w <- w - lr * m_hat / (sqrt(v_hat) + eps)
* weight decay (L2): g <- g + wd * w for names starting with "w", biases untouched.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from mlp_core.optimizers import OPTIMIZERS, SGD, Adam, Momentum, Optimizer, make_optimizer

# Three steps of gradients for a tiny model: a 2x2 weight and a 2-vector bias.
W0 = [[1.0, -2.0], [0.5, 3.0]]
B0 = [0.1, -0.2]
GRADS = [
    {"w1": [[0.1, -0.3], [2.0, 0.0]], "b1": [0.5, -1.0]},
    {"w1": [[-0.2, 0.4], [1.0, 0.05]], "b1": [0.25, 0.0]},
    {"w1": [[0.3, 0.3], [-1.5, -0.1]], "b1": [-0.5, 2.0]},
]


def fresh_params():
    return {"w1": np.array(W0, dtype=np.float64), "b1": np.array(B0, dtype=np.float64)}


def grads_at(step):
    return {k: np.array(v, dtype=np.float64) for k, v in GRADS[step].items()}


def flat(x):
    """Nested lists -> flat list of Python floats."""
    return [float(v) for v in np.ravel(x)]


def unflat(values, like):
    return np.reshape(values, np.shape(like)).tolist()


def decayed(name, w, g, wd):
    """The gradient after L2 weight decay, element by element, in Python floats."""
    if wd and name.startswith("w"):
        return [gi + wd * wi for gi, wi in zip(g, w)]
    return list(g)


# ---------------------------------------------------------------- reference formulas
def ref_sgd(n_steps, lr, wd=0.0, lrs=None):
    state = {"w1": flat(W0), "b1": flat(B0)}
    for t in range(n_steps):
        rate = lrs[t] if lrs else lr
        for name in state:
            g = decayed(name, state[name], flat(GRADS[t][name]), wd)
            state[name] = [w - rate * gi for w, gi in zip(state[name], g)]
    return state


def ref_momentum(n_steps, lr, beta=0.9, wd=0.0):
    state = {"w1": flat(W0), "b1": flat(B0)}
    vel = {name: [0.0] * len(state[name]) for name in state}
    for t in range(n_steps):
        for name in state:
            g = decayed(name, state[name], flat(GRADS[t][name]), wd)
            vel[name] = [beta * v + gi for v, gi in zip(vel[name], g)]
            state[name] = [w - lr * v for w, v in zip(state[name], vel[name])]
    return state


def ref_adam(n_steps, lr, b1=0.9, b2=0.999, eps=1e-7, wd=0.0, lrs=None, grads=GRADS, start=None):
    state = start or {"w1": flat(W0), "b1": flat(B0)}
    m = {name: [0.0] * len(state[name]) for name in state}
    v = {name: [0.0] * len(state[name]) for name in state}
    for t in range(1, n_steps + 1):
        rate = lrs[t - 1] if lrs else lr
        for name in state:
            g = decayed(name, state[name], flat(grads[t - 1][name]), wd)
            m[name] = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m[name], g)]
            v[name] = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v[name], g)]
            new = []
            for w, mi, vi in zip(state[name], m[name], v[name]):
                m_hat = mi / (1 - b1 ** t)
                v_hat = vi / (1 - b2 ** t)
                new.append(w - rate * m_hat / (math.sqrt(v_hat) + eps))
            state[name] = new
    return state


def assert_params(params, expected, rtol=1e-12, atol=1e-15):
    for name, values in expected.items():
        np.testing.assert_allclose(params[name].ravel(), values, rtol=rtol, atol=atol, err_msg=name)


def run(opt, n_steps, params=None):
    params = params if params is not None else fresh_params()
    for t in range(n_steps):
        opt.step(params, grads_at(t))
    return params


# ---------------------------------------------------------------- SGD
def test_sgd_first_step_literal():
    params = run(SGD(0.1), 1)
    # w1 - 0.1 * g: 1 - 0.01, -2 + 0.03, 0.5 - 0.2, 3 - 0; b1: 0.1 - 0.05, -0.2 + 0.1
    np.testing.assert_allclose(params["w1"], [[0.99, -1.97], [0.3, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(params["b1"], [0.05, -0.1], rtol=1e-15)


@pytest.mark.parametrize("n_steps", [1, 2, 3])
def test_sgd_matches_formula(n_steps):
    assert_params(run(SGD(0.1), n_steps), ref_sgd(n_steps, 0.1))


def test_sgd_updates_in_place_and_keeps_dtype():
    params = {"w1": np.array(W0, np.float32), "b1": np.array(B0, np.float32)}
    w_id, b_id = id(params["w1"]), id(params["b1"])
    view = params["w1"][0]  # e.g. a model holding views of its parameters
    SGD(0.1).step(params, grads_at(0))
    assert id(params["w1"]) == w_id and id(params["b1"]) == b_id
    assert params["w1"].dtype == np.float32 and params["b1"].dtype == np.float32
    np.testing.assert_allclose(view, [0.99, -1.97], rtol=1e-6)


# ---------------------------------------------------------------- Momentum
def test_momentum_two_steps_literal():
    opt = Momentum(0.1, beta=0.9)
    params = run(opt, 2)
    # w1[0,0]: v1 = 0.1 -> w = 1 - 0.01 = 0.99; v2 = 0.9*0.1 - 0.2 = -0.11 -> w = 0.99 + 0.011
    assert params["w1"][0, 0] == pytest.approx(1.001, rel=1e-14)
    # b1[1]: v1 = -1 -> -0.2 + 0.1 = -0.1; v2 = 0.9*(-1) + 0 = -0.9 -> -0.1 + 0.09 = -0.01
    assert params["b1"][1] == pytest.approx(-0.01, rel=1e-12)
    np.testing.assert_allclose(opt.velocity["b1"], [0.9 * 0.5 + 0.25, -0.9], rtol=1e-15)


@pytest.mark.parametrize("n_steps", [1, 2, 3])
@pytest.mark.parametrize("beta", [0.9, 0.5, 0.0])
def test_momentum_matches_formula(n_steps, beta):
    assert_params(run(Momentum(0.05, beta=beta), n_steps), ref_momentum(n_steps, 0.05, beta))


def test_momentum_beta_zero_is_sgd():
    np.testing.assert_array_equal(run(Momentum(0.1, beta=0.0), 3)["w1"], run(SGD(0.1), 3)["w1"])


# ---------------------------------------------------------------- Adam
def test_adam_first_step_literal():
    # Step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g).
    params = run(Adam(0.01), 1)
    g = 0.1  # w1[0, 0]
    assert params["w1"][0, 0] == pytest.approx(1.0 - 0.01 * g / (g + 1e-7), rel=1e-14)
    assert params["w1"][0, 0] == pytest.approx(0.99000001, abs=1e-8)
    # A zero gradient gives m = v = 0: no move at all (eps keeps 0/0 away).
    assert params["w1"][1, 1] == 3.0


@pytest.mark.parametrize("n_steps", [1, 2, 3])
@pytest.mark.parametrize("hyper", [
    dict(lr=0.01),  # defaults: b1=0.9, b2=0.999, eps=1e-7
    dict(lr=0.1, b1=0.5, b2=0.75, eps=1e-8),
    dict(lr=0.1, b1=0.9, b2=0.99, eps=0.5),  # big eps: its placement is visible
])
def test_adam_matches_textbook(n_steps, hyper):
    h = {"b1": 0.9, "b2": 0.999, "eps": 1e-7, **hyper}
    opt = Adam(h["lr"], beta1=h["b1"], beta2=h["b2"], eps=h["eps"])
    params = run(opt, n_steps)
    assert opt.t == n_steps
    assert_params(params, ref_adam(n_steps, h["lr"], h["b1"], h["b2"], h["eps"]))


def test_adam_eps_is_outside_bias_correction():
    """Textbook: eps is added to sqrt(v_hat), not to sqrt(v) (Keras' placement)."""
    lr, b2, eps, g = 0.1, 0.999, 0.5, 0.1
    params = {"w1": np.array([0.0])}
    Adam(lr, beta1=0.9, beta2=b2, eps=eps).step(params, {"w1": np.array([g])})
    textbook = -lr * g / (abs(g) + eps)  # m_hat = g, sqrt(v_hat) = |g|
    keras = -lr * math.sqrt(1 - b2) / (1 - 0.9) * (0.1 * g) / (math.sqrt((1 - b2) * g * g) + eps)
    assert params["w1"][0] == pytest.approx(textbook, rel=1e-14)
    assert abs(textbook - keras) > 0.01  # the two placements really differ here


# ---------------------------------------------------------------- weight decay
@pytest.mark.parametrize("wd", [0.1, 0.01])
def test_weight_decay_all_optimizers(wd):
    assert_params(run(SGD(0.1, weight_decay=wd), 3), ref_sgd(3, 0.1, wd=wd))
    assert_params(run(Momentum(0.1, beta=0.9, weight_decay=wd), 3), ref_momentum(3, 0.1, 0.9, wd=wd))
    assert_params(run(Adam(0.01, weight_decay=wd), 3), ref_adam(3, 0.01, wd=wd))


def test_weight_decay_literal_and_biases_untouched():
    params = {"w1": np.array([2.0]), "b1": np.array([2.0]), "w2": np.array([-1.0])}
    zero = {k: np.zeros(1) for k in params}
    SGD(0.5, weight_decay=0.1).step(params, zero)
    assert params["w1"][0] == pytest.approx(2.0 - 0.5 * 0.1 * 2.0, rel=1e-15)  # 1.9
    assert params["w2"][0] == pytest.approx(-1.0 + 0.5 * 0.1 * 1.0, rel=1e-15)  # -0.95
    assert params["b1"][0] == 2.0  # biases are not decayed
    # And with zero gradients and no decay, nothing moves.
    params2 = {"w1": np.array([2.0]), "b1": np.array([2.0])}
    for opt in (SGD(0.5), Momentum(0.5), Adam(0.5)):
        opt.step(params2, {k: np.zeros(1) for k in params2})
    assert params2["w1"][0] == 2.0 and params2["b1"][0] == 2.0


def test_weight_decay_does_not_modify_the_gradient_arrays():
    grads = grads_at(0)
    before = {k: v.copy() for k, v in grads.items()}
    for opt in (SGD(0.1, weight_decay=0.1), Momentum(0.1, weight_decay=0.1), Adam(0.1, weight_decay=0.1)):
        opt.step(fresh_params(), grads)
        for k in grads:
            np.testing.assert_array_equal(grads[k], before[k])


# ---------------------------------------------------------------- lr changes, reset
def test_changing_lr_takes_effect_on_next_step():
    opt = SGD(0.1)
    params = fresh_params()
    opt.step(params, grads_at(0))
    opt.lr = 0.01
    opt.step(params, grads_at(1))
    opt.lr = 1.0
    opt.step(params, grads_at(2))
    assert_params(params, ref_sgd(3, None, lrs=[0.1, 0.01, 1.0]))

    adam = Adam(0.1)
    params = fresh_params()
    for t, lr in enumerate([0.1, 0.001, 0.05]):
        adam.lr = lr
        adam.step(params, grads_at(t))
    assert_params(params, ref_adam(3, None, lrs=[0.1, 0.001, 0.05]))


def test_changing_lr_momentum_keeps_velocity():
    # v is the sum of gradients (lr-free), so an lr change scales only the new step.
    opt = Momentum(0.1, beta=0.9)
    params = fresh_params()
    opt.step(params, grads_at(0))
    w_after_1 = params["w1"].copy()
    opt.lr = 0.02
    opt.step(params, grads_at(1))
    v2 = [0.9 * a + b for a, b in zip(flat(GRADS[0]["w1"]), flat(GRADS[1]["w1"]))]
    np.testing.assert_allclose(params["w1"].ravel(), [w - 0.02 * v for w, v in zip(w_after_1.ravel(), v2)],
                               rtol=1e-14)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_reset_clears_state(name):
    opt = make_optimizer(name, 0.05)
    params = run(opt, 3)
    start = {k: flat(v) for k, v in params.items()}
    opt.reset()
    assert opt.t == 0
    if name == "momentum":
        assert opt.velocity == {}
    if name == "adam":
        assert opt.m_sum == {} and opt.v_sum == {}
    assert opt.lr == 0.05  # settings kept
    # The next step is exactly a fresh optimizer's first step from the current weights.
    opt.step(params, grads_at(0))
    fresh = make_optimizer(name, 0.05)
    other = {k: np.array(v).reshape(params[k].shape) for k, v in start.items()}
    fresh.step(other, grads_at(0))
    for k in params:
        np.testing.assert_array_equal(params[k], other[k])
    if name == "adam":
        assert_params(params, ref_adam(1, 0.05, grads=[GRADS[0]], start=start))


# ---------------------------------------------------------------- validation, factory
@pytest.mark.parametrize("lr", [0, 0.0, -0.1, -1, float("nan")])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_bad_lr_raises(name, lr):
    with pytest.raises(ValueError):
        make_optimizer(name, lr)
    cls = {"sgd": SGD, "momentum": Momentum, "adam": Adam}[name]
    with pytest.raises(ValueError):
        cls(lr)


@pytest.mark.parametrize("wd", [-0.1, float("nan")])
def test_bad_weight_decay_raises(wd):
    with pytest.raises(ValueError):
        SGD(0.1, weight_decay=wd)


def test_make_optimizer_names():
    assert OPTIMIZERS == ("sgd", "momentum", "adam")
    for name, cls in (("sgd", SGD), ("momentum", Momentum), ("adam", Adam)):
        opt = make_optimizer(name, 0.01, weight_decay=0.001)
        assert type(opt) is cls and isinstance(opt, Optimizer)
        assert opt.name == name
        assert opt.lr == 0.01 and opt.weight_decay == 0.001
        assert opt.config()["optimizer"] == name
    assert make_optimizer("momentum", 0.1, beta=0.5).beta == 0.5
    adam = make_optimizer("adam", 0.1, beta1=0.8, beta2=0.99, eps=1e-8)
    assert (adam.beta1, adam.beta2, adam.eps) == (0.8, 0.99, 1e-8)
    assert adam.config() == {"optimizer": "adam", "lr": 0.1, "weight_decay": 0.0,
                             "beta1": 0.8, "beta2": 0.99, "eps": 1e-8}
    for bad in ("SGD", "Adam", "rmsprop", "", None):
        with pytest.raises(ValueError):
            make_optimizer(bad, 0.1)


# ---------------------------------------------------------------- Keras' Adam
def _keras_vs_ours(lr, b1, b2, n_steps=5):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = pytest.importorskip("tensorflow")
    try:  # keep TF modest on shared machines; harmless if TF already started
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    var = tf.Variable(w0.copy(), dtype=tf.float64)
    keras_opt = tf.keras.optimizers.Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=1e-7)
    ours = Adam(lr, beta1=b1, beta2=b2, eps=1e-7)
    params = {"w1": w0.copy()}
    worst = 0.0
    for _ in range(n_steps):
        # |g| in [10, 100]: Keras adds eps to sqrt(v), not sqrt(v_hat), i.e. in textbook
        # terms its eps is eps / sqrt(1 - b2^t) (~3e-6 at t=1); against sqrt(v_hat) = |g|
        # >= 10 that shifts the step by < 3e-7 relative.
        g = rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(10, 100, size=(3, 4))
        keras_opt.apply_gradients([(tf.constant(g, tf.float64), var)])
        ours.step(params, {"w1": g})
        ours_move, keras_move = params["w1"] - w0, var.numpy() - w0  # total displacement
        worst = max(worst, float(np.max(np.abs(ours_move - keras_move) / np.abs(keras_move))))
    return worst


@pytest.mark.tensorflow
def test_adam_matches_keras_exact_hyperparameters():
    # Hyperparameters exactly representable in float32 (Keras turns the Python floats
    # beta_1/beta_2/lr into float32 before casting to the variable's float64), so only
    # the eps placement separates the two: < 3e-7 relative for these gradients.
    worst = _keras_vs_ours(lr=2.0 ** -7, b1=0.875, b2=1 - 2.0 ** -10)
    print(f"\nAdam vs keras (float32-exact hyperparameters): worst relative step difference {worst:.1e}", end="")
    assert worst < 1e-6


@pytest.mark.tensorflow
def test_adam_matches_keras_default_hyperparameters():
    # With b2 = 0.999, Keras computes 1 - float32(0.999) = 0.000999987 (1.3e-5 relative off),
    # so its steps are ~6.5e-6 relatively smaller than the exact textbook ones.
    worst = _keras_vs_ours(lr=0.001, b1=0.9, b2=0.999)
    print(f"\nAdam vs keras (defaults 0.9/0.999): worst relative step difference {worst:.1e}", end="")
    assert worst < 2e-5
