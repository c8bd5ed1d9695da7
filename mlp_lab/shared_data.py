"""MNIST for every session of the dashboard: loaded once per server process, shared read-only.

A class of 30 students on one server must not hold 30 copies of MNIST. The images are
scaled to float32 once (the Trainer passes float images through without copying) and every
array is write-protected, so a bug that writes into the shared data fails loudly instead of
quietly changing every student's training set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from mlp_core import load_mnist, scale, validation_split

VAL_SIZE = 1000  # images held out of training to draw the validation-accuracy curve


@dataclass(frozen=True)
class LabData:
    """The dataset as the dashboard uses it. All arrays are read-only."""

    x_train: np.ndarray  # (59000, 28, 28) float32 in [0, 1], white ink on black
    y_train: np.ndarray  # (59000,) uint8 digits 0-9
    x_val: np.ndarray  # (1000, 28, 28) float32: checked during training, never trained on
    y_val: np.ndarray  # (1000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) float32: the official test set
    y_test: np.ndarray  # (10000,) uint8

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).nbytes for f in self.__dataclass_fields__)


_lock = threading.Lock()
_data: LabData | None = None


def get_data() -> LabData:
    """The shared dataset, loaded on first use (about 1 s), then returned as is."""
    global _data
    if _data is None:
        with _lock:  # two sessions starting at once load it only once
            if _data is None:
                _data = _load()
    return _data


def _load() -> LabData:
    (x_train, y_train), (x_test, y_test) = load_mnist()
    (x_train, y_train), (x_val, y_val) = validation_split(x_train, y_train, VAL_SIZE, seed=0)
    arrays = {
        "x_train": scale(x_train), "y_train": y_train,
        "x_val": scale(x_val), "y_val": y_val,
        "x_test": scale(x_test), "y_test": y_test,
    }
    for array in arrays.values():
        array.flags.writeable = False
    return LabData(**arrays)
