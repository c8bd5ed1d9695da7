"""MNIST, bundled: loading it offline and turning it into what the networks eat.

The project ships a copy of Keras' ``mnist.npz`` (stored uncompressed so it loads in
a fraction of a second), so nothing here needs the internet. ``source="keras"`` asks
TensorFlow's downloader instead, for users who prefer it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

BUNDLED_MNIST = Path(__file__).with_name("data") / "mnist.npz"
NUM_CLASSES = 10
IMAGE_SIDE = 28

_EXPECTED = {
    "x_train": ((60000, 28, 28), np.uint8),
    "y_train": ((60000,), np.uint8),
    "x_test": ((10000, 28, 28), np.uint8),
    "y_test": ((10000,), np.uint8),
}


def load_mnist(source: str = "bundled", path: str | Path | None = None):
    """Return ``((x_train, y_train), (x_test, y_test))`` exactly like
    ``tf.keras.datasets.mnist.load_data()``: uint8 images of shape (60000, 28, 28) and
    (10000, 28, 28) with 0 = black background and 255 = white ink, uint8 labels 0-9.

    ``source="bundled"`` (default) reads the copy inside this package (or ``path``);
    ``source="keras"`` uses TensorFlow's downloader, which needs the internet.
    """
    if source == "keras":
        return _load_from_keras()
    if source != "bundled":
        raise ValueError(f"source must be 'bundled' or 'keras', got {source!r}")
    file = Path(path) if path is not None else BUNDLED_MNIST
    if not file.is_file():
        raise FileNotFoundError(
            f"MNIST file not found at {file}. Reinstall the project, or use "
            "load_mnist(source='keras') where there is internet access."
        )
    with np.load(file, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in _EXPECTED}
    for name, (shape, dtype) in _EXPECTED.items():
        got = arrays[name]
        if got.shape != shape or got.dtype != dtype:
            raise ValueError(f"{file}: {name} should be {dtype.__name__}{shape}, got {got.dtype}{got.shape}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_from_keras():
    try:
        import tensorflow as tf  # noqa: PLC0415 (only for source="keras": heavy and optional)
    except ImportError as exc:
        raise RuntimeError("source='keras' needs TensorFlow: pip install tensorflow") from exc
    try:
        return tf.keras.datasets.mnist.load_data()
    except Exception as exc:  # the downloader raises several kinds of network errors
        raise RuntimeError(
            "Could not download MNIST through Keras (no internet access?). "
            f"The bundled copy works offline: load_mnist(). Cause: {exc}"
        ) from exc


def scale(images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 pixels 0-255 -> float32 in [0, 1], same shape; into ``out`` (float32) if given."""
    if out is None:
        return np.multiply(images, np.float32(1 / 255), dtype=np.float32)
    if out.dtype != np.float32:
        raise ValueError(f"out must be float32, got {out.dtype}")
    # The same float32 numbers in two passes: NumPy converts bytes to floats inside one
    # multiply through a buffer, about twice as slow as a converting copy and a multiply.
    np.copyto(out, images, casting="unsafe")
    out *= np.float32(1 / 255)
    return out


def flatten(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 784); a view when the input is contiguous."""
    return images.reshape(len(images), -1)


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES, dtype=np.float32) -> np.ndarray:
    """Integer labels of shape (N,) -> one-hot rows of shape (N, num_classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    out = np.zeros((len(labels), num_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def validation_split(x: np.ndarray, y: np.ndarray, size: int, seed: int = 0):
    """Hold out ``size`` random samples: returns ``(x_train, y_train), (x_val, y_val)``.

    The same seed always holds out the same samples.
    """
    if not 0 <= size < len(x):
        raise ValueError(f"validation size must be in 0..{len(x) - 1}, got {size}")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:size], order[size:]
    return (x[train], y[train]), (x[val], y[val])


def iterate_minibatches(n_samples: int, batch_size: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield index arrays of ``batch_size`` forever: each epoch is a fresh seeded shuffle.

    Every sample is seen once per epoch; the last incomplete batch of an epoch is
    dropped (as with a fixed batch size every step has the same cost and noise).
    """
    if not 1 <= batch_size <= n_samples:
        raise ValueError(f"batch_size must be in 1..{n_samples}, got {batch_size}")
    rng = np.random.default_rng(seed)
    per_epoch = n_samples // batch_size
    while True:
        order = rng.permutation(n_samples)
        for i in range(per_epoch):
            yield order[i * batch_size:(i + 1) * batch_size]
