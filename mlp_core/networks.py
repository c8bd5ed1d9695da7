"""The two networks: the notebook's, made right, and a modern MLP.

Both hold their parameters in ``params`` (a dict name -> array: w1, b1, w2, ...), run on a
whole batch at once, keep the activations of the last ``forward`` for ``backward``, and
return gradients by name. Neither knows about optimizers: training state lives elsewhere.

Shapes, with N the batch size:

* ``NotebookNet`` keeps the notebook's matrix layout: the image is a 28x28 matrix X and
  w1 (128, 28) multiplies it from the left, so every column of the image goes through
  the same layer; w3 (28, 1) finally folds the 28 columns into one score per digit.
* ``DenseMLP`` is batch-first: X (N, 784), w (n_in, n_out), z = X @ w + b.
"""

from __future__ import annotations

import math

import numpy as np

from .activations import ACTIVATIONS
from .losses import LOSSES, check_labels, loss_and_grad, output_layer
from .preprocess import deskew_images, normalise_strokes

INITS = ("notebook", "he", "xavier")


def _init_weight(rng, shape, fan_in, fan_out, init, dtype):
    if init == "notebook":
        return (rng.random(shape) / 100).astype(dtype)  # np.random.rand(...)/100
    if init == "he":
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
    if init == "xavier":  # Glorot uniform, Keras' default for Dense layers
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(dtype)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def _init_bias(rng, shape, init, dtype):
    # The notebook drew its biases like its weights; modern inits start biases at zero.
    return (rng.random(shape) / 100).astype(dtype) if init == "notebook" else np.zeros(shape, dtype)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


class ParamDict(dict):
    """Arrays by name (w1, b1, ...) that are all views into one flat array, ``flat``.

    A network's parameters live in one; so do an optimizer's moments. That lets the
    optimizer update every parameter with a handful of whole-array operations instead of
    a handful per parameter. Assigning ``params[name] = value`` copies the values in, so
    the views (and the link to ``flat``) are never broken.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype, buffer: np.ndarray | None = None):
        """Zeros, or views into ``buffer`` (a 1-D array of the right size and dtype, used as
        it is: e.g. shared memory, see parallel.py)."""
        super().__init__()
        sizes = [math.prod(shape) for shape in shapes.values()]
        if buffer is None:
            self.flat = np.zeros(sum(sizes), dtype=dtype)
        elif buffer.shape != (sum(sizes),) or buffer.dtype != np.dtype(dtype):
            raise ValueError(f"buffer must be ({sum(sizes)},) {np.dtype(dtype)}, got {buffer.shape} {buffer.dtype}")
        else:
            self.flat = buffer
        self._start = {}  # name -> where its values begin in flat
        offset = 0
        for (name, shape), size in zip(shapes.items(), sizes):
            super().__setitem__(name, self.flat[offset:offset + size].reshape(shape))
            self._start[name] = offset
            offset += size

    def __deepcopy__(self, memo):
        # The default deepcopy would rebuild a dict of independent arrays; keep the layout.
        clone = ParamDict({name: value.shape for name, value in self.items()}, self.flat.dtype)
        clone.flat[...] = self.flat
        return clone

    def stacked(self, first: str, second: str) -> np.ndarray:
        """One 2-D view of two neighbours in ``flat`` whose rows have the same length, the
        second's rows under the first's: ``stacked("w1", "b1")`` is [w1; b1], (n_in + 1, n_out)."""
        a, b = self[first], self[second]
        width, start = a.shape[-1], self._start[first]
        if b.shape[-1] != width or self._start[second] != start + a.size:
            raise ValueError(f"{first} and {second} are not neighbours with rows of the same length")
        return self.flat[start:start + a.size + b.size].reshape(-1, width)

    def __setitem__(self, name, value):
        if name not in self:
            raise KeyError(f"no parameter named {name!r}; have {list(self)}")
        if np.shape(value) != self[name].shape:
            raise ValueError(f"{name} must have shape {self[name].shape}, got {np.shape(value)}")
        self[name][...] = value


class Network:
    """What both models share. Subclasses define ``_forward`` and ``backward``."""

    kind: str
    params: dict[str, np.ndarray]

    def __init__(self, loss: str, init: str, dtype, deskew: bool = False, strokes: bool = False):
        _check_choice("loss", loss, LOSSES)
        for name, value in (("deskew", deskew), ("strokes", strokes)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        # How every image is prepared before the network reads it (``prepare``): a model
        # trained on prepared images must see its test images and drawings prepared alike.
        # deskew: straightened (preprocess.deskew_images); strokes: the pen evened out
        # (preprocess.normalise_strokes). Each is part of config() only when True, so the
        # settings of older models (which have neither) stay as they were.
        self.deskew = deskew
        self.strokes = strokes
        _check_choice("init", init, INITS)
        self.loss = loss
        self.init = init
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.cache: dict[str, np.ndarray] = {}
        self._grads: ParamDict | None = None  # gradient buffers reused by loss_and_grads
        self._input: np.ndarray | None = None  # see input_buffer

    @property
    def output(self) -> str:
        """The output layer: 'relu' scores (the notebook under mse) or 'softmax'."""
        return "softmax"

    @property
    def param_names(self) -> list[str]:
        return list(self.params)

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def config(self) -> dict:
        """The architecture as plain JSON-able values: ``build_model(config)`` rebuilds it."""
        raise NotImplementedError

    def _with_input_settings(self, config: dict) -> dict:
        extra = {name: True for name in ("deskew", "strokes") if getattr(self, name)}
        return {**config, **extra}

    @property
    def prepares(self) -> bool:
        """True when ``prepare`` changes images (the model deskews or evens out strokes)."""
        return self.deskew or self.strokes

    def prepare(self, x) -> np.ndarray:
        """What the network receives for the images ``x`` ((N, 784) or (N, 28, 28) floats in
        [0, 1], same shape out): deskewed if this model deskews, then with its strokes evened
        out if it does that; else ``x`` itself. Every ``predict``/``predict_proba`` does this
        first; a page showing "what the network sees" shows this."""
        x = self._as_input(x)
        if self.deskew:
            x = deskew_images(x)
        if self.strokes:
            x = normalise_strokes(x)
        return x.astype(self.dtype, copy=False)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: p.shape for name, p in self.params.items()}

    def keep_params_in(self, buffer: np.ndarray) -> None:
        """Make the parameters views into ``buffer``, a flat array of ``n_params`` values of
        this model's dtype (e.g. shared memory, see parallel.py), taking the values it
        holds: copy ``params.flat`` into it first to keep the current ones."""
        self.params = ParamDict(self.param_shapes(), self.dtype, buffer=buffer)

    def forward_with_cache(self, x) -> tuple[np.ndarray, dict]:
        """The forward pass of ``x`` ((N, 784) or (N, 28, 28) float images, checked):
        ``(logits (N, 10), every layer's values by name: h1, z1, ...)``, for explanations.
        Unlike ``forward``, it leaves the cache a training step uses untouched. ``x`` is
        what the network receives (``prepare`` it first, as ``predict`` does)."""
        return self._forward(self._as_input(x))

    def _as_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "f":
            raise ValueError(
                f"inputs must be float images scaled to [0, 1] (use mlp_core.scale), got dtype {x.dtype}"
            )
        if x.ndim not in (2, 3) or x.shape[1:] not in ((784,), (28, 28)):
            raise ValueError(f"inputs must have shape (N, 784) or (N, 28, 28), got {x.shape}")
        return x.astype(self.dtype, copy=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run a batch through the network, keep the activations for ``backward``.

        ``x`` holds N images as floats in [0, 1], shape (N, 784) or (N, 28, 28), as the
        network receives them (training: already ``prepare``d, e.g. deskewed).
        Returns the output layer (N, 10): relu scores or softmax probabilities.
        """
        logits, self.cache = self._forward(self._as_input(x))
        return output_layer(logits, self.output)

    def backward(self, d_logits: np.ndarray, out: ParamDict | None = None) -> dict[str, np.ndarray]:
        """Gradients of the loss w.r.t. every parameter, by name, given dL/dlogits (N, 10)
        for the batch of the last ``forward``; written into ``out`` if given."""
        raise NotImplementedError

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray, checked: bool = False):
        """One forward and backward pass: ``(batch-mean loss, gradients by name)``.

        The gradients are written into buffers this model reuses: the next call
        overwrites them (copy them to keep them). ``checked=True`` skips validating the
        labels (for a caller that validated them once already)."""
        logits, self.cache = self._forward(self._as_input(x))
        value, d_logits = loss_and_grad(logits, labels, self.loss, self.output, checked)
        return value, self.backward(d_logits, out=self._grad_buffers())

    def input_buffer(self, n: int) -> np.ndarray:
        """An (n, 784) array of this model's dtype, kept for batches of ``n``: the trainer
        gathers each batch into it rather than into a new array every step."""
        if self._input is None or len(self._input) != n:
            self._input = np.empty((n, 784), self.dtype)
        return self._input

    def _grad_buffers(self) -> ParamDict:
        if self._grads is None:
            self._grads = ParamDict(self.param_shapes(), self.dtype)
        return self._grads

    def loss_value(self, x: np.ndarray, labels: np.ndarray) -> float:
        logits, _ = self._forward(self._as_input(x))
        return loss_and_grad(logits, labels, self.loss, self.output)[0]

    def predict_proba(self, x: np.ndarray, batch_size: int = 2000, prepared: bool = False) -> np.ndarray:
        """Probabilities (N, 10), rows summing to 1. Leaves the training cache alone.

        The images are first ``prepare``d (deskewed if the model deskews), unless
        ``prepared`` says the caller did it already (a trainer's validation set).
        For the notebook's relu output the 10 scores are divided by their sum (each
        digit's share of the total score); all-zero scores give 0.1 each.
        """
        x = self._as_input(x) if prepared else self.prepare(x)
        out = np.empty((len(x), 10), dtype=self.dtype)
        for start in range(0, len(x), batch_size):
            logits, _ = self._forward(x[start:start + batch_size])
            out[start:start + batch_size] = output_layer(logits, self.output)
        if self.output == "relu":
            total = out.sum(axis=1, keepdims=True)
            out = np.divide(out, total, out=np.full_like(out, 0.1), where=total > 0)
        return out

    def predict(self, x: np.ndarray, prepared: bool = False) -> np.ndarray:
        """The predicted digit for each image, (N,) int64 (``prepared``: as ``predict_proba``)."""
        return self.predict_proba(x, prepared=prepared).argmax(axis=1)

    def copy(self) -> "Network":
        """An independent model with the same architecture and a copy of the weights (no
        weights are drawn: the dashboard copies the model on every canvas stroke)."""
        return build_model(self.config(), params=self.params)

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy values into this model's parameters (in place, so views stay valid)."""
        if set(params) != set(self.params):
            raise ValueError(f"expected parameters {sorted(self.params)}, got {sorted(params)}")
        for name, value in params.items():
            if np.shape(value) != self.params[name].shape:
                raise ValueError(f"{name} must have shape {self.params[name].shape}, got {np.shape(value)}")
        for name, value in params.items():
            self.params[name][...] = value

    def describe(self) -> str:
        """A one-line summary, e.g. 'Dense MLP 784-128-64-10 (relu)'."""
        raise NotImplementedError


class NotebookNet(Network):
    """The notebook's network, faithful: the image X (28x28) is treated as a matrix.

    h1  = relu(w1 @ X + b1)    (128, 28)
    h2  = relu(w2 @ h1 + b2)   (10, 28)
    out = relu(h2 @ w3)        (10, 1) -> the 10 scores

    With ``loss="mse"`` (the notebook) the scores are relu(h2 @ w3) and the loss is the
    squared error against the one-hot target. With ``loss="cross_entropy"`` the output
    relu is dropped and softmax(h2 @ w3) gives probabilities: a relu before a softmax
    would stop every negative logit from ever learning.
    """

    kind = "notebook"

    def __init__(self, loss: str = "mse", init: str = "notebook", seed: int = 0, dtype=np.float32,
                 params: dict[str, np.ndarray] | None = None, deskew: bool = False, strokes: bool = False):
        """``params``: weights to copy in; without, they are drawn with ``seed``. ``deskew``,
        ``strokes``: how every image is prepared first (see ``Network.prepare``)."""
        super().__init__(loss, init, dtype, deskew, strokes)
        dt = self.dtype
        self.params = ParamDict({"w1": (128, 28), "b1": (128, 28), "w2": (10, 128),
                                 "b2": (10, 28), "w3": (28, 1)}, dt)
        if params is not None:
            self.set_params(params)
        else:
            rng = np.random.default_rng(seed)
            # Drawn in this order, so a seed gives the same weights as before the flat layout.
            self.params["w1"] = _init_weight(rng, (128, 28), 28, 128, init, dt)
            self.params["b1"] = _init_bias(rng, (128, 28), init, dt)
            self.params["w2"] = _init_weight(rng, (10, 128), 128, 10, init, dt)
            self.params["b2"] = _init_bias(rng, (10, 28), init, dt)
            self.params["w3"] = _init_weight(rng, (28, 1), 28, 1, init, dt)
        # h1, h2, dL/dh2, dL/dh1 of the one-image fast path
        self._one_image_buffers = [np.empty(shape, dt) for shape in ((128, 28), (10, 28), (10, 28), (128, 28))]

    @property
    def output(self) -> str:
        return "relu" if self.loss == "mse" else "softmax"

    def config(self) -> dict:
        return self._with_input_settings(
            {"kind": self.kind, "loss": self.loss, "init": self.init, "dtype": self.dtype.name})

    def describe(self) -> str:
        return "Notebook net 28x28 -> 128x28 -> 10x28 -> 10"

    def _forward(self, x):
        p = self.params
        x = x.reshape(len(x), 28, 28)  # (N, 28, 28): rows x columns of each image
        h1 = p["w1"] @ x  # (128, 28) @ (N, 28, 28) -> (N, 128, 28)
        h1 += p["b1"]
        np.maximum(h1, 0, out=h1)  # relu in place: relu'(z) = [relu(z) > 0], z not needed
        h2 = p["w2"] @ h1  # (10, 128) @ (N, 128, 28) -> (N, 10, 28)
        h2 += p["b2"]
        np.maximum(h2, 0, out=h2)
        logits = (h2 @ p["w3"])[:, :, 0]  # (N, 10, 28) @ (28, 1) -> (N, 10)
        return logits, {"x": x, "h1": h1, "h2": h2}

    def backward(self, d_logits, out=None):
        c, p = self.cache, self.params
        h2, h1, x = c["h2"], c["h1"], c["x"]
        g = out if out is not None else ParamDict(self.param_shapes(), self.dtype)
        # logits[n, i] = sum_k h2[n, i, k] w3[k]
        np.matmul(h2.reshape(-1, 28).T, d_logits.reshape(-1), out=g["w3"][:, 0])  # (28,)
        dz2 = d_logits[:, :, None] * p["w3"][:, 0]  # (N, 10, 1) * (28,) -> (N, 10, 28)
        dz2 *= h2 > 0  # relu'
        dz2.sum(axis=0, out=g["b2"])  # (10, 28)
        _sum_of_products(dz2, h1, out=g["w2"])  # sum_n dz2[n] @ h1[n].T: (10, 128)
        dz1 = p["w2"].T @ dz2  # (128, 10) @ (N, 10, 28) -> (N, 128, 28)
        dz1 *= h1 > 0
        dz1.sum(axis=0, out=g["b1"])  # (128, 28)
        _sum_of_products(dz1, x, out=g["w1"])  # sum_n dz1[n] @ x[n].T: (128, 28)
        return g


    def loss_and_grads(self, x, labels, checked: bool = False):
        """As ``Network.loss_and_grads``; for one image under squared error (the notebook's
        training) a fused path. Tests check both paths give the same numbers."""
        x = self._as_input(x)
        if len(x) != 1 or self.loss != "mse":
            return super().loss_and_grads(x, labels, checked)
        if not checked:
            labels = check_labels(labels, 1)
        return self._one_image_mse_step(x.reshape(28, 28), int(labels[0]))

    def _one_image_mse_step(self, x, label):
        # The math of _forward + loss_and_grad + backward for N = 1, on 2-D matrices: at
        # batch size 1 each NumPy call costs more in overhead (~1 us) than in arithmetic,
        # so this path makes as few calls as it can and reuses its buffers.
        p, g = self.params, self._grad_buffers()
        h1, h2, dz2, dz1 = self._one_image_buffers
        np.matmul(p["w1"], x, out=h1)  # (128, 28) @ (28, 28)
        h1 += p["b1"]
        np.maximum(h1, 0, out=h1)  # relu
        np.matmul(p["w2"], h1, out=h2)  # (10, 128) @ (128, 28)
        h2 += p["b2"]
        np.maximum(h2, 0, out=h2)
        scores = h2 @ p["w3"]  # (10, 28) @ (28, 1): the 10 scores (before the output relu)
        diff = np.maximum(scores, 0)  # out = relu(scores); diff = out - onehot
        diff[label] -= 1
        loss = float(np.vdot(diff, diff))  # squared error, summed over the 10 digits
        d_scores = diff * (scores > 0)  # dL/dscores / 2
        d_scores *= 2
        np.matmul(h2.T, d_scores, out=g["w3"])  # (28, 10) @ (10, 1)
        np.multiply(d_scores, p["w3"].T, out=dz2)  # (10, 1) * (1, 28): dL/dh2
        np.multiply(dz2, h2 > 0, out=g["b2"])  # relu': dL/dz2, which is also dL/db2
        np.matmul(g["b2"], h1.T, out=g["w2"])  # (10, 28) @ (28, 128)
        np.matmul(p["w2"].T, g["b2"], out=dz1)  # (128, 10) @ (10, 28): dL/dh1
        np.multiply(dz1, h1 > 0, out=g["b1"])  # dL/dz1 == dL/db1
        np.matmul(g["b1"], x.T, out=g["w1"])  # (128, 28) @ (28, 28)
        return loss, g


def _sum_of_products(a, b, out):
    """sum_n a[n] @ b[n].T for a (N, I, K) and b (N, J, K), into out (I, J)."""
    if len(a) == 1:  # the notebook's batch of one: a single small matmul, least overhead
        return np.matmul(a[0], b[0].T, out=out)
    out[...] = np.tensordot(a, b, axes=([0, 2], [0, 2]))  # one large matmul over n and k
    return out


class DenseMLP(Network):
    """A modern multilayer perceptron: 784 -> hidden sizes -> 10 with a softmax output.

    The default 784-128-64-10 has three weight layers, so w1, w2, w3 exist as in the
    notebook (but batch-first: w1 is (784, 128)). Under ``loss="mse"`` the softmax
    probabilities are compared with the one-hot target.
    """

    kind = "dense"

    def __init__(self, hidden=(128, 64), activation: str = "relu", loss: str = "cross_entropy",
                 init: str = "he", seed: int = 0, dtype=np.float32, params: dict[str, np.ndarray] | None = None,
                 deskew: bool = False, strokes: bool = False):
        """``params``: weights to copy in; without, they are drawn with ``seed``. ``deskew``,
        ``strokes``: how every image is prepared first (see ``Network.prepare``)."""
        super().__init__(loss, init, dtype, deskew, strokes)
        _check_choice("activation", activation, ACTIVATIONS)
        hidden = tuple(int(h) for h in hidden)
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden sizes must be one or more positive integers, got {hidden}")
        self.hidden = hidden
        self.activation = activation
        self.sizes = (784, *hidden, 10)
        self.n_layers = len(self.sizes) - 1
        layers = list(enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1))
        shapes = {}
        for i, (n_in, n_out) in layers:
            shapes[f"w{i}"], shapes[f"b{i}"] = (n_in, n_out), (n_out,)
        self.params = ParamDict(shapes, self.dtype)
        if params is not None:
            self.set_params(params)
        else:
            rng = np.random.default_rng(seed)
            for i, (n_in, n_out) in layers:
                self.params[f"w{i}"] = _init_weight(rng, (n_in, n_out), n_in, n_out, init, self.dtype)
                self.params[f"b{i}"] = _init_bias(rng, (n_out,), init, self.dtype)
        self._workspace: dict = {}  # the fast path's activation buffers, for one batch size

    def config(self) -> dict:
        return self._with_input_settings(
            {"kind": self.kind, "hidden": list(self.hidden), "activation": self.activation,
             "loss": self.loss, "init": self.init, "dtype": self.dtype.name})

    def describe(self) -> str:
        return f"Dense MLP {'-'.join(map(str, self.sizes))} ({self.activation})"

    def _forward(self, x):
        act = ACTIVATIONS[self.activation].forward
        h = x.reshape(len(x), 784)  # (N, 784)
        cache = {"h0": h}
        for i in range(1, self.n_layers + 1):
            z = h @ self.params[f"w{i}"] + self.params[f"b{i}"]  # (N, n_in) @ (n_in, n_out)
            if i == self.n_layers:
                return z, cache  # logits (N, 10): the output layer is applied by the caller
            h = act(z)
            cache[f"z{i}"], cache[f"h{i}"] = z, h

    def backward(self, d_logits, out=None):
        act_backward = ACTIVATIONS[self.activation].backward
        c = self.cache
        grads = out if out is not None else ParamDict(self.param_shapes(), self.dtype)
        dz = d_logits  # (N, n_out) of the current layer
        for i in range(self.n_layers, 0, -1):
            h_prev = c[f"h{i - 1}"]  # (N, n_in)
            grads[f"w{i}"] = h_prev.T @ dz  # (n_in, N) @ (N, n_out)
            grads[f"b{i}"] = dz.sum(axis=0)  # (n_out,)
            if i > 1:
                dh = dz @ self.params[f"w{i}"].T  # (N, n_out) @ (n_out, n_in)
                dz = act_backward(c[f"z{i - 1}"], h_prev, dh)
        return grads


    def loss_and_grads(self, x, labels, checked: bool = False):
        """As ``Network.loss_and_grads``; for relu with cross-entropy (the usual case) a
        fused path. Tests check both paths give the same numbers."""
        if self.activation != "relu" or self.loss != "cross_entropy":
            return super().loss_and_grads(x, labels, checked)
        x = self._as_input(x)
        n = len(x)
        if not checked:
            labels = check_labels(labels, n)
        return self._relu_cross_entropy_step(x, labels, self._grad_buffers())

    def partial_loss_and_grads(self, x, labels, batch_size: int, out: ParamDict,
                               checked: bool = False) -> float:
        """Images ``x`` as one part of a batch of ``batch_size`` images: returns their share
        of the batch's mean loss and writes their share of its gradient into ``out`` (a
        ParamDict laid out like ``params``), so that the parts' shares add up to the whole
        batch's. For a batch split between processes (parallel.py); relu with
        cross-entropy only."""
        if self.activation != "relu" or self.loss != "cross_entropy":
            raise ValueError("partial_loss_and_grads needs relu with cross-entropy, "
                             f"got {self.activation} with {self.loss}")
        shapes = self.param_shapes()
        if not (isinstance(out, ParamDict) and out.flat.dtype == self.dtype
                and {name: value.shape for name, value in out.items()} == shapes):
            got = (f"{out.flat.dtype} {({name: value.shape for name, value in out.items()})}"
                   if isinstance(out, ParamDict) else type(out).__name__)
            raise ValueError(f"out must be a {self.dtype} ParamDict of shapes {shapes}, got {got}")
        x = self._as_input(x)
        if not 1 <= len(x) <= batch_size:
            raise ValueError(f"a part of a batch of {batch_size} must hold 1 to {batch_size} images, got {len(x)}")
        if not checked:
            labels = check_labels(labels, len(x))
        return self._relu_cross_entropy_step(x, labels, out, mean_over=batch_size)[0]

    def _buffers(self, n):
        """Buffers for a batch of ``n``, allocated once per batch size.

        Each hidden layer's output lives in ``wide[i]``, (n, size + 1), whose last column
        is always 1: a bias is a weight on an input that is always 1, so with that column
        the next layer's ``[h, 1] @ [w; b]`` adds the bias inside the matrix product, and
        its weight gradient ``[h, 1].T @ dz`` brings the bias gradient (the column sums of
        dz) with it. ``h[i]`` is the view of ``wide[i]`` without that column. These arrays
        are column-major (order "F"), so that ``h[i]`` is one contiguous block: NumPy's
        element-wise work on the row-by-row view a row-major ``wide`` would give is 2-4x
        slower (matrix products take either layout).

        The batch ``x`` itself is a plain row-major array (images are gathered into it a row
        at a time; a column of ones beside it would make every write into it a slow
        row-by-row one), so the first layer adds its bias and sums its bias gradient apart.
        """
        if self._workspace.get("n") != n:
            dt, hidden = self.dtype, self.sizes[1:-1]
            wide = [None] + [np.ones((n, size + 1), dt, order="F") for size in hidden]
            self._workspace = {
                "n": n,
                "pick": np.arange(n) * self.sizes[-1],  # flat index of row r's logits, + label
                "ones": np.ones(n, dt),
                "wide": wide,
                "h": [None] + [w[:, :-1] for w in wide[1:]] + [np.empty((n, self.sizes[-1]), dt)],
                "dh": [None] + [np.empty((n, size), dt, order="F") for size in hidden],
                "relu'": [None] + [np.empty((n, size), dt, order="F") for size in hidden],
            }
        return self._workspace

    def _relu_cross_entropy_step(self, x, labels, g: ParamDict, mean_over: int | None = None):
        # The same math as _forward + loss_and_grad + backward, written into preallocated
        # buffers (no allocation per step) in as few NumPy calls as the math allows. The
        # tricks: biases ride inside the matrix products (see _buffers); relu is applied as
        # z *= relu'(z), where relu'(z) = [z > 0] is a float array the backward pass needs
        # anyway (np.maximum alone costs more than the compare and the multiply together:
        # it also has to propagate NaNs); and the softmax cross-entropy gradient is formed
        # in place on the logits.
        ws = self._buffers(len(x))
        p, L = self.params, self.n_layers
        n, hs, wide, relu_grad = ws["n"], ws["h"], ws["wide"], ws["relu'"]
        made_from = ws.get("stacked_from", (None, None))
        if made_from[0] is not p.flat or made_from[1] is not g.flat:  # made once, not every step
            ws["stacked_from"] = (p.flat, g.flat)
            ws["w_and_b"] = [None] + [p.stacked(f"w{i}", f"b{i}") for i in range(1, L + 1)]  # (n_in + 1, n_out)
            ws["dw_and_db"] = [None] + [g.stacked(f"w{i}", f"b{i}") for i in range(1, L + 1)]
        w_and_b, dw_and_db = ws["w_and_b"], ws["dw_and_db"]
        x = x.reshape(n, 784)
        for i in range(1, L + 1):  # forward
            z = hs[i]
            if i == 1:
                np.matmul(x, p["w1"], out=z)
                z += p["b1"]
            else:
                np.matmul(wide[i - 1], w_and_b[i], out=z)  # [h_{i-1}, 1] @ [w_i; b_i]
            if i < L:
                np.greater(z, 0, out=relu_grad[i], casting="unsafe")  # relu'(z) as 0.0 / 1.0
                z *= relu_grad[i]  # h_i = relu(z_i), in place
        # Softmax cross-entropy on the logits (n, 10), in place:
        logits = hs[L]
        flat, pick = logits.reshape(-1), ws["pick"] + labels  # pick: each row's true digit
        # The loss is the mean over the batch, or a part of the mean over ``mean_over``
        # images when the batch is part of a larger one (parallel.py sums the parts).
        total = mean_over or n
        logits -= logits.max(axis=1, keepdims=True)  # max entry 0: exp cannot overflow
        true_logit_sum = float(flat[pick].sum())
        np.exp(logits, out=logits)
        sums = logits.sum(axis=1)  # (n,), each >= 1
        loss = (float(np.log(sums).sum()) - true_logit_sum) / total  # mean of -log softmax[true]
        sums *= total
        logits /= sums[:, None]  # softmax / total
        flat[pick] -= 1.0 / total  # dL/dlogits = (softmax - onehot) / total
        dz = logits
        for i in range(L, 1, -1):  # backward
            np.matmul(wide[i - 1].T, dz, out=dw_and_db[i])  # [h, 1].T @ dz: dw_i and db_i
            dh = ws["dh"][i - 1]
            np.matmul(dz, p[f"w{i}"].T, out=dh)  # (n, n_out) @ (n_out, n_in)
            dh *= relu_grad[i - 1]
            dz = dh
        np.matmul(x.T, dz, out=g["w1"])
        np.matmul(ws["ones"], dz, out=g["b1"])  # the column sums of dz (a product beats .sum)
        return loss, g


def build_model(config: dict, seed: int = 0, params: dict[str, np.ndarray] | None = None) -> Network:
    """Rebuild a network from ``Network.config()``, with copies of ``params`` or fresh
    weights drawn with ``seed``."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind == "notebook":
        allowed = {"loss", "init", "dtype", "deskew", "strokes"}
        cls = NotebookNet
    elif kind == "dense":
        allowed = {"hidden", "activation", "loss", "init", "dtype", "deskew", "strokes"}
        cls = DenseMLP
    else:
        raise ValueError(f"model kind must be 'notebook' or 'dense', got {kind!r}")
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"unknown settings for a {kind} model: {sorted(unknown)}")
    return cls(seed=seed, params=params, **config)
