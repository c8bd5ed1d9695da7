"""Finite-difference checks of every analytic gradient of NotebookNet and DenseMLP.

The analytic gradients come from ``model.loss_and_grads(x, labels)``; the numeric ones
from ``model.loss_value(x, labels)`` with one parameter entry nudged at a time, all in
float64.

Numeric derivative: the central-difference stencil of fourth order (Richardson-
extrapolated central difference)

    g ~ [8 (f(w+h) - f(w-h)) - (f(w+2h) - f(w-2h))] / (12 h),   error O(h^4) + O(ulp/h)

Error measure, per parameter array (all entries of small arrays, a seeded sample of
``N_SAMPLE`` entries of large ones):

    err = max|num - an| / max(max|num|, max|an|, tiny)

i.e. the worst deviation relative to the scale of that parameter's gradient (an
element-wise relative error blows up on entries that are ~0 by accident, e.g. dead
units). Element-wise relative errors ``|num - an| / max(|num|, |an|)`` are reported as
well, restricted to entries that are not tiny (both above ``ELEM_FLOOR`` x scale).

ReLU kinks: a finite difference across a kink measures the wrong slope. Inputs are
random in [0, 1], and for every nudged entry the relu/leaky-relu masks (hidden
pre-activations, and the notebook's output relu under mse) at w +- 2h are compared with
those at w: a kink crossing fails loudly ("crossed a relu kink") instead of showing up
as a gradient error. (Every pre-activation is piecewise linear in a single parameter,
with kinks only where an earlier pre-activation changes sign, so equal masks at both
ends of [w - 2h, w + 2h] mean no kink inside.) Step sizes, chosen per case:

* h = 1e-6 where kinks are near (relu-type activations with he/xavier weights);
* h = 3e-3 for the "notebook" init: weights, biases and inputs are all positive, so
  every pre-activation is positive and far from 0 (h = 3e-2 does cross kinks);
* h = 1e-2 for sigmoid/tanh hidden layers, smooth everywhere.

A larger step keeps the rounding error ~ulp(L)/h small, which matters because the
notebook init and saturating activations give tiny first-layer gradients (~1e-7..1e-5);
with the O(h^4) stencil the truncation error stays far below it.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import pytest

from mlp_core.networks import DenseMLP, NotebookNet

TOL = 1e-6  # per-parameter max|num - an| / gradient scale
ELEM_TOL = 1e-4  # element-wise relative error on entries that are not tiny
ELEM_FLOOR = 1e-2  # "not tiny": both |num| and |an| above ELEM_FLOOR * scale
N_SAMPLE = 30  # entries sampled from large parameter arrays
SMALL = 64  # arrays with at most this many entries are checked in full
BATCH = 4
TINY = 1e-300
H_KINK = 1e-6  # relu-type activations with pre-activations of both signs (he/xavier)
H_POSITIVE = 3e-3  # notebook init: every pre-activation positive (verified per nudge)
H_SMOOTH = 1e-2  # sigmoid/tanh hidden layers: no kinks at all
F32_TOL = 1e-3  # float32 vs float64 gradients, relative to the gradient scale

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
INITS = ("notebook", "he", "xavier")
LOSSES = ("mse", "cross_entropy")


class Case(NamedTuple):
    kind: str  # "notebook" | "dense"
    loss: str
    init: str
    activation: str = "relu"
    hidden: tuple = (128, 64)
    seed: int = 0  # seeds the weights, the batch and the sampled entries

    @property
    def h(self) -> float:
        if self.kind == "dense" and self.activation in ("sigmoid", "tanh"):
            return H_SMOOTH
        return H_POSITIVE if self.init == "notebook" else H_KINK

    @property
    def group(self) -> str:
        return f"{'NotebookNet' if self.kind == 'notebook' else 'DenseMLP'}/{self.loss}"

    def label(self) -> str:
        if self.kind == "notebook":
            return f"notebook-{self.loss}-{self.init}-s{self.seed}"
        hidden = "x".join(map(str, self.hidden))
        return f"dense{hidden}-{self.activation}-{self.loss}-{self.init}-s{self.seed}"

    def build(self, dtype=np.float64):
        if self.kind == "notebook":
            return NotebookNet(loss=self.loss, init=self.init, seed=self.seed, dtype=dtype)
        return DenseMLP(hidden=self.hidden, activation=self.activation, loss=self.loss,
                        init=self.init, seed=self.seed, dtype=dtype)


# The core matrix: both models, both losses, several random batches (and weights).
MAIN_CASES = [
    Case("notebook", loss, init, seed=seed)
    for loss in LOSSES for init, seeds in (("notebook", (0, 1)), ("he", (0, 1, 2)))
    for seed in seeds
] + [
    Case("dense", loss, "he", seed=seed) for loss in LOSSES for seed in (0, 1, 2)
]
# DenseMLP: every activation x every init x both losses (small hidden layers, fast).
DENSE_CASES = [
    Case("dense", loss, init, activation=act, hidden=(16, 12), seed=3)
    for act in ACTIVATIONS for init in INITS for loss in LOSSES
]
ALL_CASES = MAIN_CASES + DENSE_CASES


def make_batch(seed: int, n: int = BATCH):
    rng = np.random.default_rng(1000 + seed)
    return rng.random((n, 784)), rng.integers(0, 10, n)


def kink_pattern(model, x) -> list[np.ndarray]:
    """Which side of every relu-type kink each pre-activation lies on."""
    out = model.forward(x)
    c = model.cache
    if isinstance(model, NotebookNet):
        masks = [c["h1"] > 0, c["h2"] > 0]  # h = relu(z): h > 0 <=> z > 0
        if model.output == "relu":
            masks.append(out > 0)  # out = relu(logits): logits > 0 <=> out > 0
        return masks
    if model.activation in ("relu", "leaky_relu"):
        return [c[f"z{i}"] > 0 for i in range(1, model.n_layers)]
    return []


def sample_indices(size: int, rng) -> np.ndarray:
    if size <= SMALL:
        return np.arange(size)
    return rng.choice(size, N_SAMPLE, replace=False)


@functools.lru_cache(maxsize=None)
def run_case(case: Case) -> dict:
    """Check every parameter of one model; returns per-parameter errors."""
    model = case.build(np.float64)
    x, labels = make_batch(case.seed)
    _, grads = model.loss_and_grads(x, labels)
    grads = {k: np.array(v, dtype=np.float64) for k, v in grads.items()}
    assert set(grads) == set(model.params)
    base_pattern = kink_pattern(model, x)
    rng = np.random.default_rng(case.seed)
    h = case.h

    def f_at(flat, i, old, step, check_kinks=False):
        flat[i] = old + step
        if check_kinks and base_pattern:
            pattern = kink_pattern(model, x)
            crossed = any((a != b).any() for a, b in zip(pattern, base_pattern))
            assert not crossed, (
                f"{case.label()}: a nudge of {step:+g} crossed a relu kink; "
                "use a smaller h or another seed")
        return model.loss_value(x, labels)

    per_param = {}
    for name, param in model.params.items():
        assert grads[name].shape == param.shape, name
        flat = param.reshape(-1)
        assert np.shares_memory(flat, param)
        idx = sample_indices(param.size, rng)
        num = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = flat[i]
            fp1, fm1 = f_at(flat, i, old, h), f_at(flat, i, old, -h)
            # Every pre-activation is piecewise linear in this one parameter, with kinks
            # only where some earlier pre-activation changes sign; so if no mask differs
            # at the ends of [w-2h, w+2h], no kink lies inside.
            fp2 = f_at(flat, i, old, 2 * h, check_kinks=True)
            fm2 = f_at(flat, i, old, -2 * h, check_kinks=True)
            flat[i] = old
            num[j] = (8 * (fp1 - fm1) - (fp2 - fm2)) / (12 * h)
        an = grads[name].reshape(-1)[idx]
        scale = max(np.abs(num).max(), np.abs(an).max(), TINY)
        err = float(np.abs(num - an).max() / scale)
        big = (np.abs(num) > ELEM_FLOOR * scale) & (np.abs(an) > ELEM_FLOOR * scale)
        elem = np.abs(num - an)[big] / np.maximum(np.abs(num), np.abs(an))[big]
        per_param[name] = {
            "err": err,
            "elem": float(elem.max()) if elem.size else 0.0,
            "scale": float(scale),
            "full_max": float(np.abs(grads[name]).max()),
            "checked": len(idx),
        }
    fresh = case.build(np.float64)  # every nudge was undone exactly
    assert all(np.array_equal(model.params[k], fresh.params[k]) for k in fresh.params)
    return per_param


def case_summary(case: Case) -> str:
    res = run_case(case)
    parts = " ".join(f"{k}={v['err']:.1e}" for k, v in res.items())
    worst = max(v["err"] for v in res.values())
    return f"{case.label():48s} h={case.h:.0e} worst={worst:.2e} [{parts}]"


def _check(case: Case):
    res = run_case(case)
    print("\n" + case_summary(case), end="")
    for name, r in res.items():
        # The check must not be vacuous: every parameter gets some gradient.
        assert r["full_max"] > 0, f"{case.label()}: gradient of {name} is identically 0"
        assert r["err"] < TOL, f"{case.label()} {name}: {r}"
        assert r["elem"] < ELEM_TOL, f"{case.label()} {name}: {r}"


@pytest.mark.parametrize("case", MAIN_CASES, ids=Case.label)
def test_gradients_main(case):
    _check(case)


@pytest.mark.parametrize("case", DENSE_CASES, ids=Case.label)
def test_gradients_dense_activation_init(case):
    _check(case)


def test_input_layouts_give_same_gradients():
    """(N, 784) and (N, 28, 28) are the same images: same loss, same gradients."""
    x, labels = make_batch(7)
    for case in (Case("notebook", "mse", "he"), Case("dense", "cross_entropy", "he")):
        model = case.build(np.float64)
        l1, g1 = model.loss_and_grads(x, labels)
        l2, g2 = model.loss_and_grads(x.reshape(-1, 28, 28), labels)
        assert l1 == l2
        for name in g1:
            np.testing.assert_array_equal(g1[name], g2[name])


@pytest.mark.parametrize("case", [
    Case("notebook", "mse", "notebook"), Case("notebook", "cross_entropy", "notebook"),
    Case("notebook", "mse", "he"), Case("notebook", "cross_entropy", "he"),
    Case("dense", "mse", "he"), Case("dense", "cross_entropy", "he"),
    Case("dense", "cross_entropy", "xavier", activation="tanh"),
    Case("dense", "mse", "notebook", activation="sigmoid"),
], ids=Case.label)
def test_float32_close_to_float64(case):
    """Same weights, same inputs: float32 gradients agree with float64 to ~1e-3 of scale."""
    m64, m32 = case.build(np.float64), case.build(np.float32)
    m32.set_params(m64.params)  # float64 weights rounded to float32
    m64.set_params({k: v.astype(np.float32) for k, v in m32.params.items()})  # identical
    x, labels = make_batch(case.seed)
    l64, g64 = m64.loss_and_grads(x, labels)
    l32, g32 = m32.loss_and_grads(x.astype(np.float32), labels)
    assert abs(l32 - l64) <= F32_TOL * abs(l64)
    worst = 0.0
    for name in g64:
        assert g32[name].dtype == np.float32, name
        scale = max(np.abs(g64[name]).max(), TINY)
        err = float(np.abs(g32[name].astype(np.float64) - g64[name]).max() / scale)
        worst = max(worst, err)
        assert err < F32_TOL, f"{case.label()} {name}: {err:.2e}"
    print(f"\nfloat32 vs float64 {case.label()}: worst {worst:.2e}", end="")


def test_summary_worst_relative_error():
    """Every case above, aggregated: the figure to quote."""
    per_group: dict[str, float] = {}
    per_group_elem: dict[str, float] = {}
    worst, worst_at = 0.0, ""
    n_entries = 0
    for case in ALL_CASES:
        for name, r in run_case(case).items():
            n_entries += r["checked"]
            g = case.group
            per_group[g] = max(per_group.get(g, 0.0), r["err"])
            per_group_elem[g] = max(per_group_elem.get(g, 0.0), r["elem"])
            if r["err"] >= worst:
                worst, worst_at = r["err"], f"{case.label()} {name}"
    print(f"\n{len(ALL_CASES)} models, {n_entries} gradient entries checked")
    for g in sorted(per_group):
        print(f"  {g:26s} worst (scale-relative) {per_group[g]:.2e}   "
              f"worst element-wise (non-tiny) {per_group_elem[g]:.2e}")
    print(f"worst relative error over all parameters: {worst:.2e} ({worst_at})")
    assert worst < TOL
