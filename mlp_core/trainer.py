"""Training, one step at a time, in a loop (the notebook's recursion hit Python's limit).

A ``Trainer`` owns a model, its optimizer, the order of the batches and the history.
``run`` advances by any number of steps or seconds and can be called again to continue
with the same weights (the notebook's "run the cell again"). It is safe to ``run`` in a
background thread while another thread calls ``snapshot``, ``set_lr`` or ``stop``: every
step happens under a lock, so a snapshot never sees half an update.
"""

from __future__ import annotations

import collections
import itertools
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import numpy as np

from .augment import Augmentation, augment, flag_ones
from .data import iterate_minibatches, scale
from .losses import check_labels
from .networks import Network
from .optimizers import OPTIMIZERS, Optimizer, make_optimizer

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are the notebook's: plain SGD, lr 0.001, one image a step."""

    optimizer: str = "sgd"  # "sgd", "momentum" or "adam"
    lr: float = 0.001  # learning rate: the size of each step downhill
    batch_size: int = 1  # images averaged per step; 1 is the notebook's
    momentum: float = 0.9  # velocity decay for "momentum" (ignored otherwise)
    weight_decay: float = 0.0  # L2 penalty on weight matrices; 0 = none
    schedule: str = "constant"  # "cosine" decays lr to 0 over each run's steps or time budget
    shift: int = 0  # move each training image by up to this many pixels (random, per image)
    # Random distortions of training images (mlp_core.augment; each a maximum, 0 = none):
    rotation: float = 0.0  # degrees either way
    scale: float = 0.0  # bigger or smaller by up to this fraction (0.2: 80-120 %)
    shear: float = 0.0  # slant: pixels sideways per row
    elastic: float = 0.0  # rubber-sheet bending: pixels a point moves at most
    thickness: float = 0.0  # 0-1: toward a pen a pixel thicker or thinner
    augment_fraction: float = 1.0  # the share of each batch distorted (the rest as it is)
    flag_ones: float = 0.0  # the share of the training set's 1s given a flag (augment.flag_ones)
    processes: int = 1  # 2: each step on two processes, half the batch each (parallel.py)
    eval_every: int = 1000  # steps between validation-accuracy checks (needs validation data)
    checkpoint_every: int = 100  # steps between copies of known-good weights (for divergence)
    blowup_patience: int = 50  # steps in a row with an exploding (finite) loss before stopping
    max_history: int = 20_000  # loss points kept; beyond that neighbours are averaged
    seed: int = 0  # the order of the batches

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("batch_size", "checkpoint_every", "max_history", "blowup_patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (isinstance(self.shift, int) and 0 <= self.shift <= 4):
            raise ValueError(f"shift must be a whole number of pixels from 0 to 4, got {self.shift!r}")
        self.augmentation  # checks the distortions' strengths (ValueError)
        if not (isinstance(self.flag_ones, (int, float)) and 0 <= self.flag_ones <= 1):
            raise ValueError(f"flag_ones must be a share from 0 to 1, got {self.flag_ones!r}")
        if self.processes not in (1, 2):
            raise ValueError(f"processes must be 1 or 2, got {self.processes!r}")
        if self.max_history < 2:
            raise ValueError(f"max_history must be >= 2, got {self.max_history}")

    @property
    def augmentation(self) -> Augmentation:
        """The distortions as ``mlp_core.augment`` takes them."""
        return Augmentation(rotation=self.rotation, scale=self.scale, shear=self.shear, elastic=self.elastic,
                            thickness=self.thickness, fraction=self.augment_fraction)

    def to_dict(self) -> dict:
        return asdict(self)


class History:
    """Loss per step and validation accuracy, bounded in memory.

    Every loss is recorded until ``max_points`` are held; then neighbouring points are
    averaged in pairs and from then on each point is the mean of twice as many steps.
    A 1,000,000-step run therefore costs no more memory than a 20,000-step one.
    """

    def __init__(self, max_points: int = 20_000):
        self.max_points = max_points - max_points % 2
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_accuracy: list[float] = []
        self.stride = 1  # steps averaged into one point
        self._sum, self._count = 0.0, 0

    def add_loss(self, step: int, loss: float) -> None:
        self._sum += loss
        self._count += 1
        if self._count >= self.stride:
            self.steps.append(step)
            self.losses.append(self._sum / self._count)
            self._sum, self._count = 0.0, 0
            if len(self.steps) >= self.max_points:
                self.steps = self.steps[1::2]
                self.losses = [(a + b) / 2 for a, b in zip(self.losses[::2], self.losses[1::2])]
                self.stride *= 2

    def add_validation(self, step: int, accuracy: float) -> None:
        self.val_steps.append(step)
        self.val_accuracy.append(accuracy)

    def truncate(self, step: int) -> None:
        """Forget everything recorded after ``step`` (used when weights are rolled back)."""
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.losses[keep:]
        keep = sum(1 for s in self.val_steps if s <= step)
        del self.val_steps[keep:], self.val_accuracy[keep:]
        self._sum, self._count = 0.0, 0

    def to_dict(self) -> dict:
        """The history as plain JSON values (lists of numbers), ``from_dict``'s input."""
        return {"steps": list(self.steps), "losses": list(self.losses), "val_steps": list(self.val_steps),
                "val_accuracy": list(self.val_accuracy), "stride": self.stride,
                "pending_sum": self._sum, "pending_count": self._count}

    @classmethod
    def from_dict(cls, data: dict, max_points: int, step: int) -> "History":
        """The history ``to_dict`` wrote, for a trainer at ``step`` keeping ``max_points``
        points. Raises ValueError (expected vs received) for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"history must be a dict, got {type(data).__name__}")
        history = cls(max_points)
        steps, losses = _number_list(data, "steps", int), _number_list(data, "losses", float)
        val_steps, val_acc = _number_list(data, "val_steps", int), _number_list(data, "val_accuracy", float)
        if len(steps) != len(losses) or len(val_steps) != len(val_acc):
            raise ValueError(f"history needs as many steps as values: {len(steps)} steps for "
                             f"{len(losses)} losses, {len(val_steps)} for {len(val_acc)} accuracies")
        if len(steps) >= history.max_points:
            raise ValueError(f"history must hold fewer than {history.max_points} loss points, got {len(steps)}")
        for name, seq in (("steps", steps), ("val_steps", val_steps)):
            if any(b <= a for a, b in zip(seq, seq[1:])) or (seq and not 1 <= seq[0] <= seq[-1] <= step):
                raise ValueError(f"history {name} must increase, from 1 up to the trainer's step {step}")
        if not all(0.0 <= a <= 1.0 for a in val_acc):
            raise ValueError("history val_accuracy must be fractions from 0 to 1")
        stride, count = data.get("stride", 1), data.get("pending_count", 0)
        if not (_is_int(stride) and stride >= 1 and stride & (stride - 1) == 0):
            raise ValueError(f"history stride must be a power of two >= 1, got {stride!r}")
        if not (_is_int(count) and 0 <= count < stride):
            raise ValueError(f"history pending_count must be 0 to {stride - 1}, got {count!r}")
        pending = data.get("pending_sum", 0.0)
        if not (isinstance(pending, (int, float)) and not isinstance(pending, bool) and math.isfinite(pending)):
            raise ValueError(f"history pending_sum must be a finite number, got {pending!r}")
        history.steps, history.losses, history.val_steps, history.val_accuracy = steps, losses, val_steps, val_acc
        history.stride, history._sum, history._count = stride, float(pending), count
        return history

    def copy(self) -> "History":
        clone = History.__new__(History)
        clone.__dict__.update({k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()})
        return clone


@dataclass
class Snapshot:
    """A consistent copy of a trainer's state at one moment, safe to read in any thread."""

    step: int
    epochs: float
    status: str  # "idle", "running", "finished", "stopped", "time_up" or "diverged"
    reason: str  # why the last run ended, in words for the user
    lr: float
    last_loss: float | None
    history: History
    params: dict[str, np.ndarray] = field(default_factory=dict)
    train_seconds: float = 0.0


@dataclass
class RunResult:
    steps: int  # steps taken by this run
    seconds: float  # wall time of this run, evaluation included
    train_seconds: float  # wall time spent on training steps only
    status: str
    reason: str


@dataclass(frozen=True)
class TrainerState:
    """Where a trainer stands, as plain JSON values: ``Trainer.state()`` makes it and
    ``Trainer.restore_state`` puts a trainer (with the same model weights, loaded
    separately) back there. ``to_dict``/``from_dict`` give and take a JSON object.

    Restored: the step count, samples seen, training time (seconds), the last loss, the
    learning rate, the loss/validation history, and the order of the batches (and random
    shifts) from that step on. Not restored: the optimizer's state -- momentum's velocity
    and Adam's moments and step count start again from zero, as after a divergence (they
    are as large as the weights and would triple the saved size). Plain SGD has no such
    state, so an SGD trainer restored at step N trains on to exactly the weights of one
    that never stopped; momentum and Adam take a few steps to rebuild their averages.
    """

    step: int  # training steps taken
    samples_seen: int  # training images used (step x batch size, unless settings changed)
    lr: float  # the base learning rate the next step uses
    train_seconds: float = 0.0  # wall time spent on training steps
    last_loss: float | None = None  # the loss of the last step
    history: dict = field(default_factory=dict)  # History.to_dict(); empty: none kept

    def to_dict(self) -> dict:
        """A JSON object (fresh lists: changing it leaves this state alone). Not ``asdict``,
        whose deep copy of a 20,000-point history takes ~0.3 s."""
        history = {k: list(v) if isinstance(v, list) else v for k, v in self.history.items()}
        return {"step": self.step, "samples_seen": self.samples_seen, "lr": self.lr,
                "train_seconds": self.train_seconds, "last_loss": self.last_loss, "history": history}

    @classmethod
    def from_dict(cls, data) -> "TrainerState":
        """The state ``to_dict`` wrote; ValueError (expected vs received) for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"a trainer state must be a dict, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        if not {"step", "samples_seen", "lr"} <= data.keys() <= known:
            raise ValueError(f"a trainer state needs the keys step, samples_seen, lr (optional: "
                             f"train_seconds, last_loss, history), got {sorted(data)}")
        state = cls(**data)
        state.check()
        return state

    def check(self) -> None:
        """Raise ValueError (expected vs received) if a field is not what ``Trainer.state`` gives."""
        for name in ("step", "samples_seen"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 0):
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if not (_is_number(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (_is_number(self.train_seconds) and self.train_seconds >= 0):
            raise ValueError(f"train_seconds must be a number >= 0, got {self.train_seconds!r}")
        if self.last_loss is not None and not _is_number(self.last_loss):
            raise ValueError(f"last_loss must be a finite number or None, got {self.last_loss!r}")
        if not isinstance(self.history, dict):
            raise ValueError(f"history must be a dict, got {type(self.history).__name__}")

    def thinned(self, max_points: int) -> "TrainerState":
        """This state with its loss history averaged down to fewer than ``max_points``
        points (neighbours in pairs, as ``History`` does when full): a bounded copy for a file."""
        if not self.history or len(self.history.get("steps", ())) < max_points:
            return self
        history = History.from_dict(self.history, 2 ** 62, self.step)
        while len(history.steps) >= max_points:
            history.steps = history.steps[1::2]
            history.losses = [(a + b) / 2 for a, b in zip(history.losses[::2], history.losses[1::2])]
            history.stride *= 2
        thinned = {**history.to_dict(), "pending_sum": 0.0, "pending_count": 0}  # a part-point dropped
        return TrainerState(**{**self.to_dict(), "history": thinned})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_list(data: dict, key: str, kind) -> list:
    """``data[key]`` as a list of finite numbers of ``kind`` (int: whole numbers only)."""
    values = data.get(key, [])
    check = _is_int if kind is int else _is_number
    if not isinstance(values, list) or not all(check(v) for v in values):
        what = "whole numbers" if kind is int else "finite numbers"
        raise ValueError(f"history {key} must be a list of {what}, got {str(values)[:80]}")
    return [kind(v) for v in values]


# ``images(idx, out=None)``: the training images ``idx`` as float rows (n, 784), written
# into ``out`` or the model's input buffer (Trainer._images). Given to every call rather
# than kept by the step, which would tie the trainer and its step in a reference cycle.
BatchImages = Callable[..., np.ndarray]


class TrainingStep(Protocol):
    """How ``Trainer.run`` takes one step, whichever process(es) do the work.

    Each step is ``gradients`` then, once the trainer has looked at the loss, ``update``;
    after a divergence the trainer calls ``roll_back_to`` instead of ``update``. Every
    method is called with the trainer's lock held. ``OneProcessStep`` is the plain step;
    ``parallel.TwoProcessStep`` splits every step between this process and a helper.
    """

    def gradients(self, idx: np.ndarray, labels: np.ndarray, images: BatchImages) -> float:
        """The loss and gradients of the current weights on the training images ``idx``
        (their ``labels`` validated already), which ``images`` gathers; returns the
        batch's mean loss."""

    def update(self) -> None:
        """The optimizer's update of the weights from the last ``gradients``."""

    def roll_back_to(self, params: dict[str, np.ndarray]) -> None:
        """Put ``params`` back into the model, forget the optimizer's state (its moments
        may hold inf/NaN) and drop the last ``gradients`` if not applied."""

    def close(self) -> None:
        """Free what the step holds beyond the model and optimizer (the model keeps its weights)."""


class OneProcessStep:
    """Each step on this process: ``model.loss_and_grads``, then ``optimizer.step``."""

    def __init__(self, model: Network, optimizer: Optimizer):
        self.model, self.optimizer = model, optimizer
        self._grads: dict[str, np.ndarray] | None = None

    def gradients(self, idx: np.ndarray, labels: np.ndarray, images: BatchImages) -> float:
        loss, self._grads = self.model.loss_and_grads(images(idx), labels, checked=True)
        return loss

    def update(self) -> None:
        self.optimizer.step(self.model.params, self._grads)

    def roll_back_to(self, params: dict[str, np.ndarray]) -> None:
        self.model.set_params(params)
        self.optimizer.reset()

    def close(self) -> None:
        pass


class Trainer:
    """Trains ``model`` on ``(x_train, y_train)``.

    A run stops by itself, as "diverged", when training blows up: at the first loss or
    weight that is not finite, or when the loss stays huge -- above ``BLOWUP_FACTOR`` times
    the run's first loss and above ``BLOWUP_FLOOR`` -- for ``config.blowup_patience`` steps
    in a row (with a learning rate far too high, some networks see the loss grow to
    millions without ever becoming NaN). Either way the weights are restored to the last
    checkpoint taken while the loss was finite and sane, the optimizer's moments are reset,
    and ``reason`` says what happened in words a student follows.

    Parameters
    ----------
    model : NotebookNet or DenseMLP
    x_train : array of shape (N, 28, 28) or (N, 784); uint8 0-255 (kept as bytes and scaled a
        batch at a time: a quarter of the memory, and faster to gather) or float in [0, 1]
    y_train : int array of shape (N,), digits 0-9
    config : TrainConfig
    x_val, y_val : optional validation set, checked every ``config.eval_every`` steps
    prepared : optional, ``x_train`` as the model receives it (``model.prepare``: deskewed,
        strokes evened out, as the model does; its 1s flagged first if ``config.flag_ones``),
        uint8 or float, if the caller has it already:
        the dashboard keeps one prepared copy for every student. Without it the trainer of a
        model that prepares its images does it once, here (a few seconds for MNIST).
    distorted : optional, a pool of distorted copies of the (prepared) training images,
        (K, N, 784) uint8 (``augment.distorted_copies`` with ``config.augmentation``). With
        it, the share ``augment_fraction`` of each batch is read from a random copy instead
        of being distorted at that step: a step costs what a plain one does. The dashboard
        keeps one pool for every student; without it, each step distorts its own images.
        Either may be given as a function that returns it, called once, when the first step
        needs the images (the dashboard's shared copies take seconds to make the first time:
        a page then opens without waiting for them, and the first run waits instead).
    """

    # restore_state replays the batch order (and random shifts) up to the restored step,
    # so a restored trainer picks the very batches it would have; past this many steps
    # (about 1 s of replay) it starts a fresh order seeded by the step instead, so that a
    # crafted state cannot keep the server busy.
    REPLAY_LIMIT = 1_000_000
    BLOWUP_FACTOR = 50.0  # "huge": this many times the run's first loss...
    BLOWUP_FLOOR = 50.0  # ...and at least this (cross-entropy starts near 2.3, squared error below 1)

    def __init__(self, model: Network, x_train, y_train, config: TrainConfig = TrainConfig(),
                 x_val=None, y_val=None, prepared=None, distorted=None):
        self.model = model
        self.config = config
        self.x_train = np.asarray(x_train)
        if self.x_train.dtype not in (np.uint8,) and self.x_train.dtype.kind != "f":
            raise ValueError(f"x_train must be uint8 0-255 or float in [0, 1], got {self.x_train.dtype}")
        if self.x_train.shape[1:] not in ((784,), (28, 28)):
            raise ValueError(f"x_train must have shape (N, 784) or (N, 28, 28), got {self.x_train.shape}")
        if len(self.x_train) != len(y_train):
            raise ValueError(f"x_train has {len(self.x_train)} images but y_train {len(y_train)} labels")
        self.y_train = check_labels(y_train, len(self.x_train))  # once, not every step
        # The validation images as the network receives them, prepared once.
        self.x_val = None if x_val is None else model.prepare(_as_float_images(x_val))
        self._augmentation = config.augmentation
        # The training images as the network receives them (and the pool of distorted
        # ones), set by _load_images: now, or at the first step when given as functions.
        self._sources = (prepared, distorted)
        self._rows: np.ndarray | None = None
        self._distorted: np.ndarray | None = None
        if not (callable(prepared) or callable(distorted)) or config.processes == 2:
            self._load_images()
        self.y_val = None if y_val is None else np.asarray(y_val)
        extra = {"beta": config.momentum} if config.optimizer == "momentum" else {}
        self.optimizer = make_optimizer(config.optimizer, config.lr, config.weight_decay, **extra)
        self.base_lr = float(config.lr)
        self._batches = iterate_minibatches(len(self.x_train), config.batch_size, config.seed)
        self._shifts = np.random.default_rng([config.seed, 1])  # its own stream: batches stay as without
        self._padded: np.ndarray | None = None  # the batch with a black border, for shifting
        self.step = 0
        self.samples_seen = 0
        self.train_seconds = 0.0
        self.last_loss: float | None = None
        self.history = History(config.max_history)
        self.status = "idle"
        self.reason = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpoint = (0, {k: v.copy() for k, v in model.params.items()})
        self._training_step: TrainingStep
        if config.processes == 2:
            from .parallel import TwoProcessStep  # noqa: PLC0415 (starts a process: only when asked)

            # Shifted or distorted images are gathered here: the helper draws no random numbers.
            moved = config.shift or self._augmentation.active
            self._training_step = TwoProcessStep(model, self.optimizer, config.batch_size,
                                                 rows=None if moved else self._rows)
        else:
            self._training_step = OneProcessStep(model, self.optimizer)

    # -- called from any thread -------------------------------------------------------
    @property
    def epochs(self) -> float:
        return self.samples_seen / len(self.x_train)

    def set_lr(self, lr: float) -> None:
        """Change the learning rate; the next step uses it (also during a run)."""
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a positive number, got {lr}")
        with self._lock:
            self.base_lr = float(lr)

    def stop(self) -> None:
        """Ask a running ``run`` to end after its current step."""
        self._stop.set()

    def snapshot(self, include_params: bool = True) -> Snapshot:
        with self._lock:
            return Snapshot(
                step=self.step, epochs=self.epochs, status=self.status, reason=self.reason,
                lr=self.base_lr, last_loss=self.last_loss, history=self.history.copy(),
                params={k: v.copy() for k, v in self.model.params.items()} if include_params else {},
                train_seconds=self.train_seconds,
            )

    def state(self) -> TrainerState:
        """Where this trainer stands (step, history, learning rate...), as JSON values;
        the weights are the model's, saved separately (``mlp_core.persistence``)."""
        with self._lock:
            return self._state()

    def _state(self) -> TrainerState:  # (lock held)
        return TrainerState(step=self.step, samples_seen=self.samples_seen, lr=self.base_lr,
                            train_seconds=self.train_seconds, last_loss=self.last_loss,
                            history=self.history.to_dict())

    def restore_state(self, state: TrainerState | dict) -> None:
        """Put this trainer back at ``state`` (a ``TrainerState`` or its ``to_dict``), with
        the weights already in its model. Raises ValueError (expected vs received) and
        changes nothing if the state is not valid. The optimizer's state starts again
        from zero (see ``TrainerState``); the model's current weights become the
        checkpoint a divergence returns to. Not during a run."""
        if not isinstance(state, TrainerState):
            state = TrainerState.from_dict(state)
        state.check()
        max_points = self.config.max_history
        history = (History.from_dict(state.history, max_points, state.step) if state.history
                   else History(max_points))
        batches, shifts = self._order_at(state.step)
        with self._lock:
            if self.status == "running":
                raise ValueError("cannot restore a trainer's state during a run")
            self.step, self.samples_seen = state.step, state.samples_seen
            self.base_lr, self.train_seconds = float(state.lr), float(state.train_seconds)
            self.last_loss = None if state.last_loss is None else float(state.last_loss)
            self.history = history
            self._batches, self._shifts = batches, shifts
            self.optimizer.reset()
            self._training_step.roll_back_to(self.model.params)  # the helper process's copy too
            self._checkpoint = (self.step, {k: v.copy() for k, v in self.model.params.items()})
            self.status, self.reason = "idle", ""

    def _order_at(self, step: int):
        """The batch iterator and the shifts' generator as they stand after ``step`` steps."""
        cfg = self.config
        if step > self.REPLAY_LIMIT:
            seed = [cfg.seed, step]  # a fresh order: replaying would take too long
            return (iterate_minibatches(len(self.x_train), cfg.batch_size, seed),
                    np.random.default_rng([*seed, 1]))
        batches = iterate_minibatches(len(self.x_train), cfg.batch_size, cfg.seed)
        shifts = np.random.default_rng([cfg.seed, 1])
        collections.deque(itertools.islice(batches, step), maxlen=0)  # skip ``step`` batches
        if cfg.shift:  # each step drew (2, batch) whole numbers for its shifts
            for _ in range(step):
                shifts.integers(0, 2 * cfg.shift + 1, size=(2, cfg.batch_size))
        return batches, shifts

    def model_copy(self) -> Network:
        """An independent copy of the model as it is now (for predicting during a run)."""
        with self._lock:
            return self.model.copy()

    def checkpoint(self) -> tuple[Network, TrainerState]:
        """A copy of the model and the state it was trained to, taken together (also during
        a run, between two steps): what a save needs to put a trainer back exactly there."""
        with self._lock:
            return self.model.copy(), self._state()

    # -- the training loop --------------------------------------------------------------
    def run(self, steps: int | None = None, time_budget: float | None = None,
            on_progress: Callable[["Trainer", float], None] | None = None,
            progress_interval: float = 0.25) -> RunResult:
        """Train for ``steps`` steps or ``time_budget`` seconds, whichever ends first.

        ``on_progress(trainer, fraction_done)`` is called about every ``progress_interval``
        seconds from this thread. Returns how the run ended; the weights stay in the model.
        """
        if steps is None and time_budget is None:
            raise ValueError("give steps, time_budget or both")
        if steps is not None and steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if time_budget is not None and not time_budget > 0:
            raise ValueError(f"time_budget must be > 0 seconds, got {time_budget}")
        cfg, model, optimizer, training_step = self.config, self.model, self.optimizer, self._training_step
        images = self._images
        cosine = cfg.schedule == "cosine"
        self._stop.clear()
        with self._lock:
            self.status, self.reason = "running", ""
        if self._rows is None:  # the first run of a trainer given its images as functions
            self._load_images()
        start = last_report = time.perf_counter()
        eval_seconds, done, status, reason = 0.0, 0, "finished", f"trained {steps} steps"
        first_loss, huge_limit, huge_steps = None, math.inf, 0
        # Overflow on the way to divergence is expected and handled below: keep logs quiet.
        with np.errstate(over="ignore", invalid="ignore"):
            while True:
                now = time.perf_counter()
                elapsed = now - start
                fraction = max(done / steps if steps else 0.0,
                               elapsed / time_budget if time_budget else 0.0)
                if steps is not None and done >= steps:
                    break
                if time_budget is not None and elapsed >= time_budget:
                    status, reason = "time_up", f"used the time budget of {time_budget:g} s"
                    break
                if self._stop.is_set():
                    status, reason = "stopped", "stopped by request"
                    break
                if on_progress is not None and now - last_report >= progress_interval:
                    on_progress(self, fraction)
                    last_report = now
                idx = next(self._batches)
                with self._lock:
                    lr_factor = 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0))) if cosine else 1.0
                    optimizer.lr = self.base_lr * lr_factor
                    loss = training_step.gradients(idx, self.y_train[idx], images)  # loss of the current weights
                    if not math.isfinite(loss):
                        status, reason = "diverged", self._roll_back(f"the loss became {loss} at step {self.step}")
                        break
                    if first_loss is None:
                        first_loss = loss
                        huge_limit = max(self.BLOWUP_FLOOR, self.BLOWUP_FACTOR * loss)
                    if loss > huge_limit:
                        huge_steps += 1
                        if huge_steps >= cfg.blowup_patience:
                            status, reason = "diverged", self._roll_back(
                                f"the loss grew to {loss:.3g} (it began this run at {first_loss:.3g})")
                            break
                    else:
                        huge_steps = 0
                        if self.step % cfg.checkpoint_every == 0:  # these weights are known to be good
                            self._checkpoint = (self.step, {k: v.copy() for k, v in model.params.items()})
                    training_step.update()
                    self.step += 1
                    self.samples_seen += len(idx)
                    self.last_loss = loss
                    self.history.add_loss(self.step, loss)
                    done += 1
                if self.y_val is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    t0 = time.perf_counter()
                    self._record_validation()
                    eval_seconds += time.perf_counter() - t0
        seconds = time.perf_counter() - start
        with self._lock:
            # The last update may have produced inf/NaN weights that no loss has seen yet.
            if status != "diverged" and not all(np.isfinite(p).all() for p in model.params.values()):
                status, reason = "diverged", self._roll_back(f"the weights became non-finite at step {self.step}")
            self.train_seconds += seconds - eval_seconds
            self.status, self.reason = status, reason
        if on_progress is not None:
            on_progress(self, 1.0)
        return RunResult(done, seconds, seconds - eval_seconds, status, reason)

    @property
    def preparing(self) -> bool:
        """True while a run waits for its training images (given as functions, being fetched)."""
        return self._rows is None and self.status == "running"

    def _load_images(self) -> None:
        """Set ``_rows`` (the training images as the network receives them, one per row) and
        ``_distorted`` (the pool, or None) from what ``__init__`` was given."""
        prepared, distorted = (source() if callable(source) else source for source in self._sources)
        n = len(self.x_train)
        if prepared is not None:
            prepared = np.asarray(prepared)
            if prepared.shape[0] != n or prepared.shape[1:] not in ((784,), (28, 28)):
                raise ValueError(f"prepared must hold the {n} training images, got shape {prepared.shape}")
        else:  # made here: the 1s flagged (if asked), then as the model receives them
            train = flag_ones(self.x_train, self.y_train, self.config.flag_ones) if self.config.flag_ones else None
            if self.model.prepares:
                prepared = _prepared_like(self.model, self.x_train if train is None else train)
            else:
                prepared = train
        if distorted is not None:
            distorted = np.asarray(distorted)
            if distorted.ndim != 3 or distorted.shape[1:] != (n, 784) or distorted.dtype != np.uint8:
                raise ValueError(f"distorted must be uint8 copies of the {n} training images, "
                                 f"shape (K, {n}, 784), got {distorted.dtype} {distorted.shape}")
        # One image per row, for gathering batches (a view of x_train, unless it is not
        # contiguous or the model prepares its images).
        train = self.x_train if prepared is None else prepared
        self._distorted = distorted if self._augmentation.active else None
        self._rows = np.ascontiguousarray(train).reshape(n, 784)

    def _images(self, idx, out: np.ndarray | None = None) -> np.ndarray:
        """The batch ``idx`` as float images in [0, 1], (n, 784), as the network receives them
        (deskewed if the model deskews), shifted if ``config.shift`` and distorted if
        ``config.augmentation`` is active, written into ``out`` or the model's input buffer
        (valid until the next batch)."""
        n = len(idx)
        out = self.model.input_buffer(n) if out is None else out
        if self._rows is None:
            self._load_images()
        if self._distorted is not None:
            x = self._from_pool(idx, np.random.default_rng([self.config.seed, 2, self.step]))
            if self.config.shift:
                x = self._shift_randomly(x).reshape(n, 784)
        elif self._augmentation.active:
            # Its own random numbers for each step, so a restored trainer needs no replay.
            rng = np.random.default_rng([self.config.seed, 2, self.step])
            x = self._shift_randomly(self._rows[idx]) if self.config.shift else self._rows[idx]
            x = augment(_as_float_images(x), rng, self._augmentation)  # (n, 784) float32
        elif self.config.shift:
            x = self._shift_randomly(self._rows[idx]).reshape(n, 784)
        elif self._rows.dtype == out.dtype:
            # mode="clip": no bounds check (the indices come from a permutation), and
            # unlike the default it writes straight into ``out``.
            return np.take(self._rows, idx, axis=0, out=out, mode="clip")
        else:
            x = np.take(self._rows, idx, axis=0, mode="clip")
        if x.dtype == np.uint8 and out.dtype == np.float32:
            scale(x, out=out)  # gathering bytes and scaling them costs less than ready floats
        else:
            out[...] = _as_float_images(x)
        return out

    def _from_pool(self, idx, rng: np.random.Generator) -> np.ndarray:
        """The batch ``idx`` (n, 784), a share ``augment_fraction`` of it (drawn from ``rng``)
        read from a random copy in the pool of distorted images, the rest as they are."""
        x = np.take(self._rows, idx, axis=0, mode="clip")  # (n, 784), our own copy
        pick = rng.random(len(idx)) < self._augmentation.fraction  # (n,) which ones are distorted
        copy = rng.integers(len(self._distorted), size=int(pick.sum()))
        distorted = self._distorted[copy, np.asarray(idx)[pick]]  # (k, 784) uint8
        x[pick] = distorted if x.dtype == np.uint8 else _as_float_images(distorted)
        return x

    def _shift_randomly(self, x) -> np.ndarray:
        """Each image moved by a random whole number of pixels, up to ``config.shift`` in each
        direction (data augmentation). A digit drawn a little off-centre is the same digit;
        seeing its training images move teaches the network that, and it then reads new
        digits better (about +0.4 points of test accuracy in the same time, for shift 1)."""
        n, s = len(x), self.config.shift
        if self._padded is None or self._padded.shape[0] != n or self._padded.dtype != x.dtype:
            self._padded = np.zeros((n, 28 + 2 * s, 28 + 2 * s), x.dtype)  # the border stays 0
        self._padded[:, s:s + 28, s:s + 28] = x.reshape(n, 28, 28)
        windows = np.lib.stride_tricks.sliding_window_view(self._padded, (28, 28), axis=(1, 2))
        rows, cols = self._shifts.integers(0, 2 * s + 1, size=(2, n))  # (n, 2s+1, 2s+1, 28, 28)
        return windows[np.arange(n), rows, cols].reshape(x.shape)

    def _roll_back(self, what: str) -> str:
        """Restore the last known-good weights (lock held); return the message for the user."""
        step, params = self._checkpoint
        self._training_step.roll_back_to(params)
        self.history.truncate(step)
        self.step = step
        self.last_loss = self.history.losses[-1] if self.history.losses else None
        return (f"Training diverged: {what}, so the learning rate ({self.base_lr:g}) is probably "
                f"too high. The weights were restored to step {step}, the last ones known to be "
                "finite. Try a learning rate 3-10x smaller.")

    def close(self) -> None:
        """End the second process of ``processes=2``: the model keeps its weights and the
        optimizer its state, and further runs train on this process alone."""
        with self._lock:
            self._training_step.close()
            self._training_step = OneProcessStep(self.model, self.optimizer)

    def _record_validation(self) -> None:
        accuracy = float(np.mean(self.model.predict(self.x_val, prepared=True) == self.y_val))
        with self._lock:
            self.history.add_validation(self.step, accuracy)

    def evaluate(self, x, y) -> float:
        """Accuracy of the current weights on (x, y)."""
        x = _as_float_images(x)
        with self._lock:
            return float(np.mean(self.model.predict(x) == np.asarray(y)))


def _prepared_like(model: Network, x: np.ndarray) -> np.ndarray:
    """``model.prepare`` of the training images ``x``, kept as bytes when ``x`` is bytes
    (a quarter of the memory; rounding to 1/255 changes no digit)."""
    ready = model.prepare(_as_float_images(x).reshape(len(x), 784))  # (N, 784) float
    if x.dtype != np.uint8:
        return ready
    return np.rint(ready * 255.0).astype(np.uint8)


def _as_float_images(x) -> np.ndarray:
    """Float images pass through untouched (no copy); uint8 0-255 is scaled to [0, 1]."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else scale(x)
