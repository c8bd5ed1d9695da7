"""Losses: how wrong the network is (0 = perfect), and which way to move its last layer.

A network computes ``logits`` (its last layer before any output function). What the
output layer then does depends on the model and the loss:

==============  ================  ==========================================================
output          used by           loss
==============  ================  ==========================================================
``"relu"``      NotebookNet, mse  the notebook: scores = relu(logits); squared error between
                                  the 10 scores and the one-hot target, summed over the 10
``"softmax"``   every other pair  probabilities = softmax(logits); ``cross_entropy`` is
                                  -log(probability of the true digit); ``mse`` is the squared
                                  error between the probabilities and the one-hot target
==============  ================  ==========================================================

Both losses are averaged over the batch, so batch size 1 gives exactly the notebook's
per-image loss. Every function returns the gradient with respect to the logits, which is
where a network's ``backward`` starts.
"""

from __future__ import annotations

import numpy as np

LOSSES = ("mse", "cross_entropy")
OUTPUTS = ("relu", "softmax")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, stable for any magnitude (subtracts the row max)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def output_layer(logits: np.ndarray, output: str) -> np.ndarray:
    """What the network shows: relu scores or softmax probabilities, (N, C)."""
    if output == "relu":
        return np.maximum(logits, 0)
    if output == "softmax":
        return softmax(logits)
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def check_labels(labels, n: int, n_classes: int = 10) -> np.ndarray:
    """``labels`` as an array of N integer digits 0..n_classes-1, or a clear ValueError."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "iu" or (n and (labels.min() < 0 or labels.max() >= n_classes)):
        raise ValueError(f"labels must be integers 0..{n_classes - 1}, got {labels.dtype} "
                         f"{labels.min() if n else ''}..{labels.max() if n else ''}")
    return labels


def loss_and_grad(logits: np.ndarray, labels: np.ndarray, loss: str, output: str,
                  checked: bool = False):
    """Return ``(loss, d_logits)``: the batch-mean loss as a Python float and dL/dlogits (N, C).

    ``labels`` are integer digits of shape (N,); ``checked=True`` says the caller has
    already validated them (the trainer does, once, for the whole training set).
    """
    n, n_classes = logits.shape
    if not checked:
        labels = check_labels(labels, n, n_classes)
    rows = np.arange(n)
    if loss == "cross_entropy":
        if output != "softmax":
            raise ValueError("cross_entropy needs the softmax output layer")
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), max entry 0
        e = np.exp(shifted)
        sum_e = e.sum(axis=1, keepdims=True)  # (N, 1), >= 1 so the log is safe
        # -log softmax[true] = log(sum e) - shifted[true], without ever forming log(0)
        value = float(np.mean(np.log(sum_e[:, 0]) - shifted[rows, labels]))
        grad = e / sum_e  # softmax probabilities (N, C)
        grad[rows, labels] -= 1  # d/dlogits of cross-entropy with softmax: p - onehot
        grad /= n
        return value, grad
    if loss == "mse":
        out = output_layer(logits, output)  # (N, C)
        diff = out.copy()  # out - onehot
        diff[rows, labels] -= 1
        value = float(np.vdot(diff, diff)) / n
        d_out = diff * (2 / n)  # dL/dout, (N, C)
        if output == "relu":
            return value, d_out * (logits > 0)
        # Softmax Jacobian-vector product: dz = p * (g - sum_j g_j p_j), with p = out
        return value, out * (d_out - np.sum(d_out * out, axis=1, keepdims=True))
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
