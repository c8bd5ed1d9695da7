"""Why the network answers what it answers: gradients to the input, occlusion, hidden
activations, and one training step taken apart.

Pure NumPy, like the rest of ``mlp_core``. Every function takes a network (``NotebookNet``
or ``DenseMLP``) and never changes its weights (``one_step`` works on a copy). Images are
what the network receives: for a model that prepares its inputs (deskew, strokes), pass
``model.prepare(x)``.

* ``input_gradient(model, image, digit)``: d score[digit] / d pixel, (28, 28). The score is
  the digit's logit (its value before softmax / the output relu).
* ``saliency(model, image, digit)``: gradient x input: how much each inked pixel pushed
  the score up (positive) or down (negative). Pixels without ink get 0.
* ``occlusion(model, image, digit)``: how much the digit's probability drops when a small
  square of the image is blacked out, for every position of the square.
* ``hidden_activations(model, image)``: what each hidden layer computes, layer by layer.
* ``naive_resize(image)``: the whole drawing shrunk to 28x28, no cropping, no centring:
  what the network would see without MNIST-style preprocessing.
* ``one_step(model, optimizer, x, y)``: the gradients of one batch and the update the
  optimizer made from them.
"""

from __future__ import annotations

import copy

import numpy as np

from .activations import ACTIVATIONS
from .losses import output_layer
from .networks import Network
from .preprocess import _resize_area, _to_gray

SIDE = 28


def _image(image) -> np.ndarray:
    """One image as (1, 28, 28) float in [0, 1], or a ValueError that says what was received."""
    x = np.asarray(image)
    if x.shape not in ((28, 28), (784,), (1, 28, 28), (1, 784)):
        raise ValueError(f"expected one 28x28 image (shape (28, 28) or (784,)), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"expected a float image scaled to [0, 1], got dtype {x.dtype}")
    return x.reshape(1, 28, 28)


def _check_digit(digit) -> int:
    if not (isinstance(digit, (int, np.integer)) and 0 <= digit <= 9):
        raise ValueError(f"digit must be an integer 0-9, got {digit!r}")
    return int(digit)


def logits_of(model: Network, image) -> np.ndarray:
    """The 10 scores before the output function (softmax or relu), (10,)."""
    logits, _ = model.forward_with_cache(_image(image))
    return np.asarray(logits[0], dtype=np.float64)


def input_gradient(model: Network, image, digit: int) -> np.ndarray:
    """d logits[digit] / d image, (28, 28) float64: which way each pixel would have to move
    to raise the score of ``digit``. Backpropagation run one layer further than training
    runs it: down to the pixels instead of stopping at w1."""
    digit = _check_digit(digit)
    _, cache = model.forward_with_cache(_image(image))  # of the (1, 28, 28) image
    d_logits = np.zeros((1, 10), dtype=model.dtype)
    d_logits[0, digit] = 1.0  # (1, 10): the derivative of the chosen score
    p = model.params
    if model.kind == "notebook":
        h2, h1 = cache["h2"], cache["h1"]  # (1, 10, 28), (1, 128, 28)
        dz2 = d_logits[:, :, None] * p["w3"][:, 0]  # (1, 10, 28)
        dz2 = dz2 * (h2 > 0)  # relu'
        dz1 = (p["w2"].T @ dz2) * (h1 > 0)  # (128, 10) @ (1, 10, 28) -> (1, 128, 28)
        dx = p["w1"].T @ dz1  # (28, 128) @ (1, 128, 28) -> (1, 28, 28)
        return np.asarray(dx[0], dtype=np.float64)
    act_backward = ACTIVATIONS[model.activation].backward
    dz = d_logits  # (1, n_out) of the last layer
    for i in range(model.n_layers, 0, -1):
        dh = dz @ p[f"w{i}"].T  # (1, n_out) @ (n_out, n_in) -> (1, n_in)
        if i == 1:
            return np.asarray(dh.reshape(28, 28), dtype=np.float64)  # the pixels
        dz = act_backward(cache[f"z{i - 1}"], cache[f"h{i - 1}"], dh)
    raise AssertionError("unreachable")


def saliency(model: Network, image, digit: int) -> np.ndarray:
    """Gradient x input, (28, 28): each pixel's share in the score of ``digit`` to first
    order. Red (positive): this ink made the network more sure of ``digit``; blue: less."""
    x = _image(image)[0].astype(np.float64)  # (28, 28)
    return input_gradient(model, x.astype(model.dtype), digit) * x


def occlusion(model: Network, image, digit: int, patch: int = 4, stride: int = 2) -> np.ndarray:
    """For every position of a ``patch`` x ``patch`` black square (moved by ``stride``
    pixels), how much the probability of ``digit`` drops when that square is blacked out.
    Returns (28, 28): each pixel gets the mean drop of the squares covering it. Positive:
    hiding this area makes the network less sure (it mattered); negative: more sure."""
    digit = _check_digit(digit)
    if not (1 <= patch <= SIDE and 1 <= stride <= patch):
        raise ValueError(f"need 1 <= stride <= patch <= 28, got patch={patch}, stride={stride}")
    x = _image(image)[0]  # (28, 28)
    starts = list(range(0, SIDE - patch + 1, stride))
    if starts[-1] != SIDE - patch:
        starts.append(SIDE - patch)
    corners = [(r, c) for r in starts for c in starts]
    batch = np.repeat(x[None], len(corners), axis=0).astype(model.dtype)  # (K, 28, 28)
    for k, (r, c) in enumerate(corners):
        batch[k, r:r + patch, c:c + patch] = 0.0
    base = model.predict_proba(x[None].astype(model.dtype), prepared=True)[0, digit]
    hidden = model.predict_proba(batch, prepared=True)[:, digit]  # (K,)
    total = np.zeros((SIDE, SIDE))
    count = np.zeros((SIDE, SIDE))
    for k, (r, c) in enumerate(corners):
        total[r:r + patch, c:c + patch] += base - hidden[k]
        count[r:r + patch, c:c + patch] += 1
    return total / count


def hidden_activations(model: Network, image) -> list[tuple[str, np.ndarray]]:
    """What every hidden layer computes for one image, in order, then the output.

    NotebookNet: ("h1", (128, 28)), ("h2", (10, 28)), ("output", (10,)).
    DenseMLP: ("h1", (n1,)), ..., ("output", (10,)) (probabilities)."""
    logits, cache = model.forward_with_cache(_image(image))
    names = ["h1", "h2"] if model.kind == "notebook" else [f"h{i}" for i in range(1, model.n_layers)]
    layers = [(name, np.array(cache[name][0], dtype=np.float64)) for name in names]
    out = output_layer(logits, model.output)[0]
    return layers + [("output", np.asarray(out, dtype=np.float64))]


def naive_resize(image) -> np.ndarray | None:
    """The whole picture shrunk to 28x28 by averaging blocks of pixels, with no cropping
    and no centring: a small digit drawn in a corner stays small and in the corner.

    ``image``: (H, W) grayscale or (H, W, 3|4) RGB(A), uint8 0-255 or float 0-1, white ink
    on black (as the canvas draws). Returns (28, 28) float32 in [0, 1], or None without ink.
    """
    gray = _to_gray(image)  # (H, W) in [0, 1]; the same reading of the picture as preprocess
    if gray.max() <= 0.1:
        return None
    small = _resize_area(gray, SIDE, SIDE)  # (28, 28)
    return np.clip(small, 0.0, 1.0).astype(np.float32)


def one_step(model: Network, optimizer, x, y, lr: float | None = None) -> dict:
    """One training step on the batch ``(x, y)``, taken on copies (``model`` and
    ``optimizer`` are untouched). Returns ``{"loss", "weights", "grads", "update"}``:
    the weights before the step, dL/dw for the batch, and the change the optimizer made
    (w_after - w_before), each a dict by parameter name. ``lr`` overrides the copy's
    learning rate (e.g. a trainer's base rate, before any schedule)."""
    net = model.copy()
    opt = copy.deepcopy(optimizer)  # settings, step count and moments: the caller's stays untouched
    if lr is not None:
        opt.lr = lr
    before = {k: v.copy() for k, v in net.params.items()}
    loss, grads = net.loss_and_grads(x, y)
    grads = {k: np.array(v) for k, v in grads.items()}  # the buffers are reused: copy
    opt.step(net.params, grads)
    update = {k: net.params[k] - before[k] for k in before}
    return {"loss": float(loss), "weights": before, "grads": grads, "update": update}
