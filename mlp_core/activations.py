"""Hidden-layer activations: each is a forward function and its derivative.

``backward(z, a, grad)`` returns ``grad * f'(z)``; it receives both the input ``z`` and
the output ``a = f(z)`` because some derivatives are cheapest in terms of one, some of
the other (sigmoid' = a(1-a), tanh' = 1-a^2, relu' = [z > 0]).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

LEAKY_SLOPE = 0.01  # the slope of leaky_relu for negative inputs, as in most frameworks


class Activation(NamedTuple):
    forward: Callable[[np.ndarray], np.ndarray]
    backward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _relu(z):
    return np.maximum(z, 0)


def _relu_backward(z, a, grad):
    return grad * (z > 0)  # the kink at 0 gets derivative 0, as in TensorFlow


def _leaky_relu(z):
    return np.where(z > 0, z, z * LEAKY_SLOPE)


def _leaky_relu_backward(z, a, grad):
    return np.where(z > 0, grad, grad * LEAKY_SLOPE)


def _sigmoid(z):
    # Split by sign so that exp never overflows: for z < 0 use e^z / (1 + e^z).
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_backward(z, a, grad):
    return grad * a * (1 - a)


def _tanh_backward(z, a, grad):
    return grad * (1 - a * a)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(_relu, _relu_backward),
    "leaky_relu": Activation(_leaky_relu, _leaky_relu_backward),
    "sigmoid": Activation(_sigmoid, _sigmoid_backward),
    "tanh": Activation(np.tanh, _tanh_backward),
}
