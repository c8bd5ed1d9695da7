"""Optimizers: turn gradients into weight updates. Each owns its state (velocities,
moments) and updates the parameters in place through one method, ``step(params, grads)``.

``lr`` is a plain attribute: change it between steps (the dashboard's slider does) and the
next step uses the new value. ``weight_decay`` adds the L2 penalty ``wd/2 * |w|^2`` to the
loss, i.e. ``wd * w`` to the gradient of every weight matrix (names starting with "w";
biases are not decayed, as usual).
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    def __init__(self, lr: float, weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.t = 0  # steps taken

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # 0 is allowed here: a schedule may decay the rate to 0 at the very end of a run.
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"learning rate must be a finite number >= 0, got {value}")
        self._lr = float(value)

    def _grad(self, name, param, grad):
        if self.weight_decay and name.startswith("w"):
            return grad + self.weight_decay * param
        return grad

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for name, param in params.items():
            self._update(name, param, self._grad(name, param, grads[name]))

    def _update(self, name, param, grad):
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the state (velocities, moments), keep the settings."""
        self.t = 0

    def config(self) -> dict:
        return {"optimizer": self.name, "lr": self.lr, "weight_decay": self.weight_decay}


class SGD(Optimizer):
    """Plain gradient descent: w <- w - lr * g (the notebook's)."""

    name = "sgd"

    def _update(self, name, param, grad):
        param -= self.lr * grad


class Momentum(Optimizer):
    """Heavy-ball momentum: v <- beta * v + g;  w <- w - lr * v."""

    name = "momentum"

    def __init__(self, lr: float, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.beta = float(beta)
        self.velocity: dict[str, np.ndarray] = {}

    def _update(self, name, param, grad):
        v = self.velocity.get(name)
        if v is None:
            v = self.velocity[name] = np.zeros_like(param)
        v *= self.beta
        v += grad
        param -= self.lr * v

    def reset(self):
        super().reset()
        self.velocity.clear()

    def config(self):
        return {**super().config(), "beta": self.beta}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): running means of the gradient (m) and of its square (v),
    bias-corrected, w <- w - lr * m_hat / (sqrt(v_hat) + eps)."""

    name = "adam"

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7,
                 weight_decay: float = 0.0):
        # eps = 1e-7 as in Keras. Keras puts eps outside the bias correction (it effectively
        # uses eps / sqrt(1 - beta2^t)); we follow the paper, so tiny gradients differ slightly.
        super().__init__(lr, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def _update(self, name, param, grad):
        if name not in self.m:
            self.m[name] = np.zeros_like(param)
            self.v[name] = np.zeros_like(param)
        m, v = self.m[name], self.v[name]
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        # Fold both bias corrections into one step size, sparing two full-size divisions:
        # lr * m_hat / (sqrt(v_hat) + eps) == lr_t * m / (sqrt(v) + eps * sqrt(1 - beta2^t)).
        correction2 = np.sqrt(1 - self.beta2 ** self.t)
        lr_t = self.lr * correction2 / (1 - self.beta1 ** self.t)
        param -= lr_t * m / (np.sqrt(v) + self.eps * correction2)

    def reset(self):
        super().reset()
        self.m.clear()
        self.v.clear()

    def config(self):
        return {**super().config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


def make_optimizer(name: str, lr: float, weight_decay: float = 0.0, **kwargs) -> Optimizer:
    classes = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
    if name not in classes:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return classes[name](lr, weight_decay=weight_decay, **kwargs)
