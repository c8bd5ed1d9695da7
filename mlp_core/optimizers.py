"""Optimizers: turn gradients into weight updates. Each owns its state (velocities,
moments) and updates the parameters in place through one method, ``step(params, grads)``.

``lr`` is a plain attribute: change it between steps (the dashboard's slider does) and the
next step uses the new value. ``weight_decay`` adds the L2 penalty ``wd/2 * |w|^2`` to the
loss, i.e. ``wd * w`` to the gradient of every weight matrix (names starting with "w";
biases are not decayed, as usual).

Speed: when the parameters and the gradients are ``ParamDict``s (views into one flat
array each, as the networks make them), an update is a handful of whole-array NumPy
operations written into preallocated buffers, instead of a handful per parameter with a
temporary array each. Both paths run the very same element-wise code, so they agree bit
for bit.
"""

from __future__ import annotations

import math

import numpy as np

from .networks import ParamDict

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    name: str
    # Per-parameter state, one attribute each (e.g. Adam's m_sum and v_sum): {} before the
    # first step, then a ParamDict laid out like the parameters.
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.reset()

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # 0 is allowed here: a schedule may decay the rate to 0 at the very end of a run.
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"learning rate must be a finite number >= 0, got {value}")
        self._lr = float(value)

    def reset(self) -> None:
        """Forget the state (velocities, moments), keep the settings."""
        self.t = 0  # steps taken
        for state in self.state_names:
            setattr(self, state, {})
        self._scratch: ParamDict | None = None

    def init_state(self, params: dict[str, np.ndarray], buffers: list[np.ndarray] | None = None) -> None:
        """Start the state for parameters shaped like ``params``: zeros, or views into
        ``buffers`` (one flat array per name in ``state_names``, of the parameters' total
        size and dtype), whose values are used as they are (e.g. shared memory, see
        parallel.py)."""
        buffers = [None] * len(self.state_names) if buffers is None else list(buffers)
        if len(buffers) != len(self.state_names):
            raise ValueError(f"{self.name} keeps {len(self.state_names)} state arrays "
                             f"{self.state_names}, got {len(buffers)} buffers")
        shapes = {name: p.shape for name, p in params.items()}
        dtype = np.result_type(*params.values())
        self._scratch = ParamDict(shapes, dtype)  # a temporary for the arithmetic
        for state, buffer in zip(self.state_names, buffers):
            setattr(self, state, ParamDict(shapes, dtype, buffer=buffer))

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update ``params`` in place from ``grads`` (dicts with the same names)."""
        if self._scratch is None or self._scratch.keys() != params.keys():
            self.init_state(params)
        self.t += 1
        flat_params, flat_grads = getattr(params, "flat", None), getattr(grads, "flat", None)
        if flat_params is not None and flat_grads is not None and not self.weight_decay:
            # update_part on the whole arrays, minus its slicing: each view costs ~0.3 us,
            # and at batch size 1 (the notebook's) an SGD update takes only ~7 us.
            states = [getattr(self, s).flat for s in self.state_names]
            self._update(flat_params, flat_grads, *states, self._scratch.flat)
            return
        for name, param in params.items():
            grad = grads[name]
            if self.weight_decay and name.startswith("w"):
                grad = grad + self.weight_decay * param
            states = [getattr(self, s)[name] for s in self.state_names]
            self._update(param, grad, *states, self._scratch[name])

    def update_part(self, params: ParamDict, grads: ParamDict, part: slice) -> None:
        """Step ``t``'s update of the weights ``params.flat[part]`` from ``grads.flat[part]``,
        in place, without counting a step (``t``) and without weight decay: each of the
        processes that share a step updates its own part (parallel.py). The state must be
        laid out like ``params`` already (``init_state``, or a first ``step``)."""
        states = [getattr(self, s).flat[part] for s in self.state_names]
        self._update(params.flat[part], grads.flat[part], *states, self._scratch.flat[part])

    def _update(self, param, grad, *state_and_scratch):
        raise NotImplementedError

    def config(self) -> dict:
        return {"optimizer": self.name, "lr": self.lr, "weight_decay": self.weight_decay}


class SGD(Optimizer):
    """Plain gradient descent: w <- w - lr * g (the notebook's)."""

    name = "sgd"

    def _update(self, param, grad, tmp):
        np.multiply(grad, self.lr, out=tmp)
        param -= tmp


class Momentum(Optimizer):
    """Heavy-ball momentum: v <- beta * v + g;  w <- w - lr * v."""

    name = "momentum"
    state_names = ("velocity",)

    def __init__(self, lr: float, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.beta = float(beta)

    def _update(self, param, grad, v, tmp):
        v *= self.beta
        v += grad
        np.multiply(v, self.lr, out=tmp)
        param -= tmp

    def config(self):
        return {**super().config(), "beta": self.beta}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): running means of the gradient (m) and of its square (v),
    bias-corrected, w <- w - lr * m_hat / (sqrt(v_hat) + eps).

    The running means are kept as decayed sums, ``m_sum = b1 m_sum + g`` and
    ``v_sum = b2 v_sum + g^2``, so that m = (1 - b1) m_sum and v = (1 - b2) v_sum: the same
    numbers, two fewer passes over every parameter per step (the (1 - b) factors move into
    the step size, once per step instead of once per weight).
    """

    name = "adam"
    state_names = ("m_sum", "v_sum")
    flush_every = 64  # steps between flushes of subnormal moments (see _update)

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7,
                 weight_decay: float = 0.0):
        # eps = 1e-7 as in Keras. Keras puts eps outside the bias correction (it effectively
        # uses eps / sqrt(1 - beta2^t)); we follow the paper, so tiny gradients differ slightly.
        super().__init__(lr, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _update(self, param, grad, m_sum, v_sum, tmp):
        b1, b2, t = self.beta1, self.beta2, self.t
        m_sum *= b1
        m_sum += grad  # m = (1 - b1) m_sum
        v_sum *= b2
        np.square(grad, out=tmp)
        v_sum += tmp  # v = (1 - b2) v_sum
        # The update, lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - b1^t) and
        # v_hat = v / (1 - b2^t), is rewritten so that every constant folds into two numbers:
        #     = step * m_sum / (sqrt(v_sum) + eps_sum), where
        # step = lr * (1 - b1) / (1 - b1^t) * sqrt(1 - b2^t) / sqrt(1 - b2) and
        # eps_sum = eps * sqrt(1 - b2^t) / sqrt(1 - b2).
        correction2 = math.sqrt((1 - b2 ** t) / (1 - b2))
        step = self.lr * (1 - b1) / (1 - b1 ** t) * correction2
        np.sqrt(v_sum, out=tmp)
        tmp += self.eps * correction2
        np.divide(m_sum, tmp, out=tmp)
        tmp *= step
        param -= tmp
        if t % self.flush_every == 0:
            # Where a gradient stays 0 (pixels that are always black), m decays by 0.9 a
            # step into subnormal floats, which the CPU handles ~100x slower than normal
            # ones; NumPy, unlike TensorFlow, does not flush them to zero. Do it here.
            tiny = np.finfo(m_sum.dtype).tiny
            for moment in (m_sum, v_sum):
                np.abs(moment, out=tmp)
                moment *= tmp >= tiny

    def config(self):
        return {**super().config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


def make_optimizer(name: str, lr: float, weight_decay: float = 0.0, **kwargs) -> Optimizer:
    classes = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
    if name not in classes:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return classes[name](lr, weight_decay=weight_decay, **kwargs)
