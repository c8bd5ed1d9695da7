"""MNIST for every session of the dashboard: loaded once per server process, shared read-only.

A class of 30 students on one server must not hold 30 copies of MNIST. The images are
scaled to float32 once (the Trainer passes float images through without copying) and every
array is write-protected, so a bug that writes into the shared data fails loudly instead of
quietly changing every student's training set.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp_core import load_mnist, scale, validation_split
from mlp_core import augment
from mlp_core.augment import distorted_copies

from . import config

log = logging.getLogger("mlp_lab")

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
# (which set, deskew, strokes, flag_ones) -> its images as such a model reads them
_prepared: dict[tuple, np.ndarray] = {}
_prepared_lock = threading.Lock()
DISTORTED_COPIES = 2  # distorted versions of each training image in the shared pool (92 MB for MNIST)
_distorted: dict[tuple, np.ndarray] = {}  # (deskew, strokes, flag_ones, augmentation) -> (2, 59000, 784) uint8
_distorted_lock = threading.Lock()
_making = 0  # shared copies being made now (published for the load test)
_making_lock = threading.Lock()


def is_shared(data) -> bool:
    """True for the server's shared dataset (``get_data``), without loading it."""
    return data is not None and data is _data


def prepared(model, which: str = "x_train", flag_ones: float = 0.0) -> np.ndarray | None:
    """The shared set ``which`` ("x_train" or "x_test") as ``model`` receives it
    (``Network.prepare``: deskewed, strokes evened out), or None for a model that reads
    images as they are and a training set without flagged 1s. ``flag_ones``
    (``TrainConfig.flag_ones``, training set only): that share of its 1s gets a flag first
    (``augment.flag_ones``). Made once per server for each way of preparing (a few seconds
    for the training set) and shared by every student, read-only: uint8 for the training set
    (a quarter of the memory, gathered and scaled a batch at a time), float32 for the test set."""
    flag_ones = flag_ones if which == "x_train" else 0.0
    if not (model.prepares or flag_ones):
        return None
    key = (which, model.deskew, model.strokes, flag_ones)
    if key not in _prepared:
        with _prepared_lock, _making_copy():  # two students making such a model at once prepare it once
            if key not in _prepared:
                _prepared[key] = _prepared_set(model, which, flag_ones)
    return _prepared[key]


def _prepared_set(model, which: str, flag_ones: float) -> np.ndarray:
    data = get_data()
    images = getattr(data, which)
    # The flagged 1s only (a few MB), swapped in chunk by chunk below.
    pick, flagged = augment.flagged_ones(images, data.y_train, flag_ones) if flag_ones else (np.empty(0, int), None)
    # Written a chunk at a time into the result: no full-size temporary (185 MB of floats for
    # the training set) that would stay in the process's memory.
    ready = np.empty(images.shape, np.uint8 if which == "x_train" else np.float32)
    for i in range(0, len(images), 2000):
        part = images[i:i + 2000]
        inside = (pick >= i) & (pick < i + 2000)
        if inside.any():
            part = part.copy()
            part[pick[inside] - i] = flagged[inside]
        part = model.prepare(part)
        ready[i:i + 2000] = np.rint(part * 255.0) if ready.dtype == np.uint8 else part
    ready.flags.writeable = False
    return ready


def distorted(model, augmentation, flag_ones: float = 0.0) -> np.ndarray | None:
    """The shared pool of distorted training images for ``model`` (as it receives them:
    prepared first) and ``augmentation`` (``TrainConfig.augmentation``): (2, 59000, 784)
    uint8, made once per server for each setting (a few seconds) and shared, read-only, by
    every student, so that a student's training steps cost no more with distortions than
    without (``Trainer(distorted=...)``). None when ``augmentation`` distorts nothing."""
    if not augmentation.active:
        return None
    key = (model.deskew, model.strokes, flag_ones, tuple(sorted(augmentation.to_dict().items())))
    if key not in _distorted:
        # the images as the model receives them (or None: as they are)
        source = prepared(model, "x_train", flag_ones)
        with _distorted_lock, _making_copy():
            if key not in _distorted:
                pool = distorted_copies(source if source is not None else get_data().x_train, augmentation,
                                        DISTORTED_COPIES, seed=0)
                pool.flags.writeable = False
                _distorted[key] = pool
    return _distorted[key]


READY_FILE = "shared.json"  # in MLP_LAB_STATUS_DIR: {"mb": ..., "making": ...}


@contextmanager
def _making_copy():
    """Published as being made (``shared.json``'s "making") while the block runs."""
    global _making
    with _making_lock:
        _making += 1
        _publish()
    try:
        yield
    finally:
        with _making_lock:
            _making -= 1
            _publish()


def _publish() -> None:
    """With ``MLP_LAB_STATUS_DIR`` set, write there how many MB of shared training copies
    this server holds and how many it is making now (``shared.json``): the load test counts
    them as the server's, not as the sessions' that happened to open while one was made."""
    directory = config.status_dir()
    if not directory:
        return
    shared = [*_prepared.values(), *_distorted.values()]
    info = {"mb": round(sum(a.nbytes for a in shared) / 2**20, 1), "making": _making}
    try:  # written whole, then renamed: a reader never sees half of it
        tmp = Path(directory, f".{READY_FILE}.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, Path(directory, READY_FILE))
    except OSError:
        log.warning("could not write %s in %s", READY_FILE, directory, exc_info=True)


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
