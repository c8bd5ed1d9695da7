"""What a model may be on this server, what a lab costs in memory, and giving memory back.

Every model a lab holds goes through here, wherever it comes from (the Model page, a link,
a lesson, an uploaded file, a kept model, a saved lab):

- ``check_model_config``: within what the Model page offers (``choices.MAX_HIDDEN_LAYERS``
  hidden layers of at most ``choices.MAX_HIDDEN_SIZE`` neurons), else ``ModelRefused``;
- ``read_model``: a model file checked from its headers and settings alone (no weights
  read, no network built) before it is loaded, always as float32;
- ``estimate_bytes``: what a lab with a model costs, which ``MemoryBudget`` (owned by the
  keeper) adds up over every lab in memory against ``config.MEMORY_BUDGET_BYTES``;
- ``give_back_memory``: after labs leave memory, collect cycles and hand the freed heap
  back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

No streamlit here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading

import numpy as np

from mlp_core.persistence import ModelFileInfo, inspect_model_bytes, model_from_bytes

from . import config
from .choices import MAX_HIDDEN_LAYERS, MAX_HIDDEN_SIZE, ModelChoice

log = logging.getLogger("mlp_lab")

DTYPE = np.float32  # every model the server holds
BYTES_PER_VALUE = 4
# Copies of the parameters a lab holds once it trained: the weights, Adam's two moments,
# the trainer's checkpoint, the initial weights (the Weights page's "change since the
# start"), the gradients.
PARAM_COPIES = 6
# Per image of a batch and per neuron (input, hidden, output): the forward pass keeps each
# layer's input and output, the backward pass a delta and a mask of the same size.
ACTIVATION_COPIES = 4
# Measured (tracemalloc, after 20 steps): the default 784-256-128-10 at batch 128 takes
# 9.1 MB (estimate 9.7), 784-1024x4-10 at batch 512 takes 132 MB (estimate 131); testing
# on the 10,000 test images adds a passing 140 MB (a copy and 2,000 images at a time).
LAB_OVERHEAD_BYTES = 2 * 2**20  # the trainer's history, Python objects, small buffers


class ModelRefused(ValueError):
    """A model the server will not hold; the message is for the student."""


def _n(value: int) -> str:
    return f"{value:,}"


def describe_hidden(hidden) -> str:
    """(3000, 3000) -> "2 hidden layers of 3,000 neurons"; (512, 2048) -> "2 hidden layers
    of 512 to 2,048 neurons"."""
    hidden = list(hidden)
    layers = f"{len(hidden)} hidden layer{'s' if len(hidden) != 1 else ''}"
    if not hidden:
        return "no hidden layer"
    low, high = min(hidden), max(hidden)
    sizes = _n(low) if low == high else f"{_n(low)} to {_n(high)}"
    return f"{layers} of {sizes} neuron{'s' if high != 1 else ''}"


LIMIT_TEXT = f"MLP Lab trains up to {MAX_HIDDEN_LAYERS} layers of {MAX_HIDDEN_SIZE:,}"


def limit_problem(model_config: dict) -> str | None:
    """Why a network is beyond what the Model page offers (words to follow "its network
    has"), or None."""
    if model_config.get("kind") != "dense":
        return None  # the notebook's network has one fixed, small shape
    hidden = model_config.get("hidden")
    if not isinstance(hidden, (list, tuple)) or not all(
            isinstance(h, int) and not isinstance(h, bool) for h in hidden):
        return None  # not a size problem: the loader's own checks word it
    if len(hidden) > MAX_HIDDEN_LAYERS or any(h > MAX_HIDDEN_SIZE for h in hidden):
        return describe_hidden(hidden)
    return None


def check_model_config(model_config: dict, what: str = "This model") -> None:
    """Raise ``ModelRefused`` if the network is larger than the Model page offers."""
    problem = limit_problem(model_config)
    if problem:
        raise ModelRefused(f"{what} cannot be used: its network has {problem}; {LIMIT_TEXT}.")


def inspect_file(data: bytes, name: str) -> ModelFileInfo:
    """A model file's settings and array headers, without its weights. Raises
    ``ModelRefused`` for a network larger than the Model page offers (before anything of
    its size is allocated), or the loader's ``ValueError`` for a file that is no model."""
    info = inspect_model_bytes(data)
    problem = limit_problem(info.config)
    if problem:
        raise ModelRefused(f"Could not load {name}: its network has {problem}; {LIMIT_TEXT}. "
                           "Your current model is unchanged.")
    return info


def load_file(data: bytes, info: ModelFileInfo):
    """``(model, meta, note)`` of a file ``inspect_file`` passed, always float32; ``note``:
    words for the success message when float64 weights were converted, else ""."""
    model, meta = model_from_bytes(data, dtype=DTYPE)
    stored = {np.dtype(dtype).name for dtype in info.dtypes.values()} | {info.config.get("dtype", "float32")}
    note = ""
    if stored - {"float32"}:
        note = ("Its weights were stored in float64; MLP Lab trains in float32, so they were "
                "converted (a difference far smaller than one training step makes).")
    return model, meta, note


def read_model(data: bytes, name: str):
    """``inspect_file`` then ``load_file``: ``(model, meta, note)``."""
    return load_file(data, inspect_file(data, name))


def n_params(choice: ModelChoice) -> int:
    if choice.kind == "notebook":
        return _notebook_params()
    sizes = [784, *choice.hidden, 10]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


_NOTEBOOK_PARAMS: int | None = None


def _notebook_params() -> int:
    global _NOTEBOOK_PARAMS
    if _NOTEBOOK_PARAMS is None:
        _NOTEBOOK_PARAMS = ModelChoice.preset("notebook").build().n_params
    return _NOTEBOOK_PARAMS


def estimate_bytes(choice: ModelChoice) -> int:
    """A lab's memory with this model once it trained: ``PARAM_COPIES`` float32 copies of
    the parameters, the batch's activations, and a small overhead."""
    widths = 784 + 10 + (sum(choice.hidden) if choice.kind == "dense" else 28 * 2)
    activations = choice.batch_size * widths * BYTES_PER_VALUE * ACTIVATION_COPIES
    return n_params(choice) * BYTES_PER_VALUE * PARAM_COPIES + activations + LAB_OVERHEAD_BYTES


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MB"


class MemoryBudget:
    """What the labs in memory may take together (``config.MEMORY_BUDGET_BYTES``), and what
    each takes now (its model's ``estimate_bytes``). ``admit`` is asked before a lab
    builds a new model."""

    def __init__(self, limit_bytes: int | None = None):
        self.limit = int(limit_bytes or config.MEMORY_BUDGET_BYTES)
        self._labs: dict[int, int] = {}  # id(lab) -> bytes
        self._lock = threading.Lock()

    def used(self) -> int:
        with self._lock:
            return sum(self._labs.values())

    def count(self, lab, choice: ModelChoice) -> None:
        """A lab in memory (attached, restored): counted, never refused (its own work)."""
        with self._lock:
            self._labs[id(lab)] = estimate_bytes(choice)

    def forget(self, lab) -> None:
        with self._lock:
            self._labs.pop(id(lab), None)

    def admit(self, lab, choice: ModelChoice) -> str | None:
        """Reserve the memory for ``lab`` to hold a model made with ``choice``: None, or the
        message for the student (the lab keeps its current model)."""
        need = estimate_bytes(choice)
        with self._lock:
            others = sum(b for key, b in self._labs.items() if key != id(lab))
            current = self._labs.get(id(lab), 0)
            if need <= current or others + need <= self.limit:
                self._labs[id(lab)] = need
                return None
            labs = len(self._labs)
        log.warning("memory budget: refused a %s model of %s (labs in memory: %d, using %s of %s)",
                    _describe(choice), mb(need), labs, mb(others + current),
                    mb(self.limit))
        return (f"The server has no room for a network this large right now: it would need "
                f"about {mb(need)}, and the labs of the students working now already use "
                f"{mb(others + current)} of the {mb(self.limit)} this server gives them. Your "
                "current model is unchanged. Try a smaller network (fewer or narrower hidden "
                "layers, or a smaller batch), or try again later.")


def _describe(choice: ModelChoice) -> str:
    if choice.kind == "notebook":
        return "notebook"
    return "784-" + "-".join(map(str, choice.hidden)) + f"-10 batch {choice.batch_size}"


# --- giving memory back -------------------------------------------------------------------
_libc = None
_libc_lock = threading.Lock()


def _glibc():
    """glibc's handle if this process uses glibc (it has ``malloc_trim``), else False."""
    global _libc
    with _libc_lock:
        if _libc is None:
            _libc = False
            try:
                name = ctypes.util.find_library("c")
                libc = ctypes.CDLL(name) if name else None
                if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
                    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                    _libc = libc
            except (OSError, AttributeError):
                _libc = False
        return _libc


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def tune_malloc(threshold_bytes: int = 1 << 20) -> bool:
    """Make glibc give every allocation of ``threshold_bytes`` or more its own mapping,
    returned to the system the moment it is freed. (glibc otherwise raises that threshold
    to the size of each large block freed, up to 32 MB, so a network's arrays end up in
    the heap, where freed memory mostly stays with the process.) True if done."""
    libc = _glibc()
    if not libc:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)))


def give_back_memory() -> None:
    """After labs left memory: free reference cycles now, then return the heap's free
    pages to the system (glibc only)."""
    gc.collect()
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
