"""One user's lab: the model, its trainer, the background training thread, and results.

Nothing here imports streamlit, so it can be tested (and reused by other front ends)
without a browser. ``mlp_lab.session`` ties one ``LabSession`` to each browser session.

Training runs in a daemon thread that only talks to the ``Trainer`` (which is thread-safe)
and to this object under its lock; it never calls Streamlit. The page polls ``status()``
about once a second. Every run is capped in steps and in seconds, and only
``MAX_ACTIVE_RUNS`` runs train at once in the whole server process (one per CPU core by
default), so one classroom can share a machine: a further run waits in line, visibly, and
starts on its own when a trainer is free.

A server can be watched from outside: every training thread is named ``mlp-lab-trainer-*``,
its start and end are logged ("trainer thread started/ended ... trainer threads alive: n"),
and if ``MLP_LAB_STATUS_DIR`` is set, ``trainers.json`` in that folder always holds the
current counts (the browser tests and the load test read it).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from mlp_core import TrainConfig, Trainer, build_model, confusion_matrix
from mlp_core.activations import ACTIVATIONS
from mlp_core.presets import PRESETS

from .shared_data import LabData, get_data

log = logging.getLogger("mlp_lab")


def _env_number(name: str, default, cast):
    try:
        value = cast(os.environ.get(name, default))
        return value if value > 0 else default
    except (TypeError, ValueError):
        return default


MAX_STEPS_PER_RUN = _env_number("MLP_LAB_MAX_STEPS", 50_000, int)  # the Steps slider's top
MAX_SECONDS_PER_RUN = _env_number("MLP_LAB_MAX_SECONDS", 120.0, float)  # wall time of one run
# A run waiting for a free trainer gives up after this long (the student is told and can
# queue again): a tab left open on a busy server does not hold a place in line forever.
MAX_WAIT_SECONDS = _env_number("MLP_LAB_MAX_WAIT_SECONDS", 600.0, float)


def _cpu_count() -> int:
    """Cores this process may use (a container's limit, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# Runs training at once, all sessions together: one per core but one (each run keeps a core
# busy with one BLAS thread), so a core stays free for drawing every student's pages, which
# also need Python's GIL the trainers share with them; further runs wait in line instead of
# slowing everybody down. At least one, of course.
MAX_ACTIVE_RUNS = _env_number("MLP_LAB_MAX_RUNS", max(1, _cpu_count() - 1), int)
TRAINER_THREAD_PREFIX = "mlp-lab-trainer-"
MAX_UPLOAD_BYTES = 20 * 2**20  # uploaded model files; .streamlit/config.toml's maxUploadSize too

# Choices offered by the UI: plain-word labels for every engine setting.
KINDS = {"dense": "Dense MLP", "notebook": "Notebook model"}
LOSS_LABELS = {"cross_entropy": "Cross-entropy", "mse": "Squared error (the notebook's)"}
OPTIMIZER_LABELS = {"sgd": "Plain gradient descent (SGD)", "momentum": "SGD with momentum",
                    "adam": "Adam"}
INIT_LABELS = {"notebook": "Tiny positive numbers (the notebook's)", "he": "He (for ReLU)",
               "xavier": "Xavier / Glorot"}
SCHEDULE_LABELS = {"constant": "Constant", "cosine": "Cosine: slows down towards the end"}
ACTIVATION_NAMES = tuple(ACTIVATIONS)
BATCH_SIZES = (1, 8, 16, 32, 64, 128, 256, 512)
SHIFTS = (0, 1, 2)  # pixels a training image may move (the Model page's choices)
LR_OPTIONS = tuple(round(m * 10.0 ** e, 6) for e in range(-5, 0) for m in (1, 2, 5)) + (1.0,)
STEP_OPTIONS = tuple(s for s in (100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)
                     if s <= MAX_STEPS_PER_RUN)
DEFAULT_STEPS = 2000  # the notebook trained 2,000 steps per run of its cell
EVAL_EVERY = {"dense": 100, "notebook": 500}  # steps between validation checks


def _duration(seconds: float) -> str:
    """120 -> "2 minutes", 45 -> "45 seconds"."""
    if seconds >= 120:
        return f"{seconds / 60:.3g} minutes"
    return f"{seconds:.3g} seconds"


def nearest_option(value: float, options) -> float:
    """The option closest to ``value`` on a log scale (a loaded file may hold any lr)."""
    return min(options, key=lambda o: abs(math.log(o) - math.log(value)))


@dataclass(frozen=True)
class ModelChoice:
    """Everything the user picks before pressing Reset: the network and how to train it."""

    kind: str = "dense"  # "dense" or "notebook"
    hidden: tuple[int, ...] = (256, 128)  # dense only: neurons per hidden layer
    activation: str = "relu"  # dense only: the hidden layers' activation
    loss: str = "cross_entropy"  # "cross_entropy" or "mse"
    init: str = "he"  # how the first weights are drawn
    optimizer: str = "adam"  # "sgd", "momentum" or "adam"
    batch_size: int = 128  # images per training step
    schedule: str = "cosine"  # learning rate over a run: "constant" or "cosine"
    lr: float = 0.001  # the starting learning rate (the slider changes it later)
    shift: int = 0  # training images moved at random by up to this many pixels (augmentation)

    @classmethod
    def preset(cls, kind: str) -> "ModelChoice":
        """The settings of ``mlp_core.presets``: the notebook's, or the best dense ones."""
        model_cfg, train_cfg = PRESETS[kind]
        return cls(kind=kind, hidden=tuple(model_cfg.get("hidden", (256, 128))),
                   activation=model_cfg.get("activation", "relu"), loss=model_cfg["loss"],
                   init=model_cfg["init"], optimizer=train_cfg.optimizer,
                   batch_size=train_cfg.batch_size, schedule=train_cfg.schedule, lr=train_cfg.lr,
                   shift=train_cfg.shift)

    @classmethod
    def from_model(cls, model_config: dict, training: dict | None = None) -> "ModelChoice":
        """Rebuild the choice from a saved model's settings (unknown training keys ignored)."""
        base = cls.preset(model_config["kind"])
        training = training or {}
        fields = {"kind": model_config["kind"], "loss": model_config["loss"],
                  "init": model_config["init"]}
        if model_config["kind"] == "dense":
            fields.update(hidden=tuple(model_config["hidden"]), activation=model_config["activation"])
        for name in ("optimizer", "batch_size", "schedule", "lr", "shift"):
            if name in training:
                fields[name] = training[name]
        choice = replace(base, **fields)
        try:
            choice.train_config()  # refuse settings the engine would refuse
        except (ValueError, TypeError):
            choice = replace(choice, optimizer=base.optimizer, batch_size=base.batch_size,
                             schedule=base.schedule, lr=base.lr, shift=base.shift)
        return choice

    def model_config(self) -> dict:
        if self.kind == "notebook":
            return {"kind": "notebook", "loss": self.loss, "init": self.init}
        return {"kind": "dense", "hidden": list(self.hidden), "activation": self.activation,
                "loss": self.loss, "init": self.init}

    def train_config(self, lr: float | None = None, seed: int = 0) -> TrainConfig:
        return TrainConfig(optimizer=self.optimizer, lr=float(lr or self.lr),
                           batch_size=int(self.batch_size), schedule=self.schedule,
                           shift=self.shift, eval_every=EVAL_EVERY[self.kind], seed=seed)

    def describe_training(self) -> str:
        return (f"{OPTIMIZER_LABELS[self.optimizer]}, batch {self.batch_size}, "
                f"{LOSS_LABELS[self.loss].split(' (')[0].lower()} loss")


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256, 128' -> (256, 128). Raises ValueError with a message for the user."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise ValueError("Give at least one hidden layer size, e.g. 128 or 256, 128.")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"Hidden layer sizes must be whole numbers separated by commas, "
                         f"e.g. 256, 128; got {text!r}.") from None
    if len(sizes) > 4 or any(not 1 <= s <= 1024 for s in sizes):
        raise ValueError(f"Use 1 to 4 hidden layers of 1 to 1024 neurons each; got {text!r}.")
    return sizes


def loss_trend(losses) -> str:
    """How the loss moved over one run: "up" (it grew: the learning rate is too high),
    "stuck" (it did not change at all: a dead network), "down" or "unclear" (too short)."""
    losses = np.asarray(losses, dtype=np.float64)
    if len(losses) < 20 or not np.isfinite(losses).all():
        return "unclear"
    k = max(5, len(losses) // 10)
    first, last = np.median(losses[:k]), losses[-k:].mean()
    if last > 1.5 * first or last > 10 * losses[0] > 0:  # the 2nd: it blew up at once
        return "up"
    if np.ptp(losses[len(losses) // 2:]) == 0:
        return "stuck"
    return "down" if last < first else "unclear"


@dataclass
class RunInfo:
    """The current (or last) run, as the progress bar needs it."""

    start_step: int  # the trainer's step when the run began
    steps: int  # steps asked for
    started: float  # time.perf_counter() when it was queued, then when training began
    ended: float | None = None  # time.perf_counter() at the end
    status: str = "running"  # "waiting" (for a free trainer), "running", then the outcome
    result_steps: int = 0  # steps it actually took
    result_seconds: float = 0.0  # wall time spent on training steps (validation excluded)


@dataclass(frozen=True)
class LabStatus:
    """What the sidebar and the pages show about the lab, read in one go."""

    description: str  # e.g. "Dense MLP 784-256-128-10 (relu)"
    kind: str
    n_params: int
    step: int  # steps trained since the weights were drawn (or loaded)
    epochs: float
    last_loss: float | None
    status: str  # the trainer's: idle, running, finished, stopped, time_up, diverged
    reason: str
    running: bool  # a run is going right now
    lr: float
    run_done: int  # steps done by the current / last run
    run_steps: int  # steps asked for by the current / last run
    samples_per_second: float | None  # training speed of the current / last run
    test_accuracy: float | None  # on the 10,000 test images, if measured
    test_step: int | None  # the step at which it was measured
    source: str  # where the weights came from: "fresh weights" or the uploaded file's name
    waiting: bool = False  # the run waits for a free trainer (``running`` is True meanwhile)
    queue_position: int | None = None  # runs waiting before this one (0: next in line)
    max_runs: int = 0  # runs the server trains at once

    @property
    def untrained(self) -> bool:
        return self.step == 0 and self.source == "fresh weights"


@dataclass
class TestResult:
    step: int
    accuracy: float
    confusion: np.ndarray = field(repr=False)  # (10, 10) counts, row = true digit


# --- the server-wide cap on runs going at once -------------------------------------------
class TrainerPool:
    """At most ``MAX_ACTIVE_RUNS`` runs train at once in this process; the others wait in
    line (first come, first served) and start by themselves when a run ends.

    Each run has a ticket. ``acquire`` blocks the run's own thread (never the page) until
    the ticket's turn comes, or returns False when the run is cancelled while waiting.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: list[int] = []  # tickets waiting, oldest first
        self._running: set[int] = set()  # tickets training now
        self._threads = 0  # live trainer threads, waiting or training
        self._tickets = itertools.count(1)

    def new_ticket(self) -> int:
        return next(self._tickets)

    def acquire(self, ticket: int, cancelled: threading.Event,
                max_wait: float | None = None) -> str:
        """Wait in line for a free trainer: "acquired", "cancelled", or "timed_out" after
        ``max_wait`` seconds (None: no limit)."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        with self._cond:
            self._queue.append(ticket)
            self._changed()
            try:
                while not cancelled.is_set():
                    if self._queue[0] == ticket and len(self._running) < MAX_ACTIVE_RUNS:
                        self._queue.pop(0)
                        self._running.add(ticket)
                        return "acquired"
                    if deadline is not None and time.monotonic() >= deadline:
                        return "timed_out"
                    self._cond.wait(0.5)  # woken by release/wake; the timeout is a safety net
                return "cancelled"
            finally:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._changed()

    def release(self, ticket: int) -> None:
        with self._cond:
            self._running.discard(ticket)
            self._changed()

    def wake(self) -> None:
        """Let waiting threads look again (after a cancel, or a change of the limit)."""
        with self._cond:
            self._cond.notify_all()

    def position(self, ticket: int) -> int | None:
        """How many runs wait before this one (0: next in line), or None if not waiting."""
        with self._cond:
            return self._queue.index(ticket) if ticket in self._queue else None

    def thread_started(self) -> int:
        with self._cond:
            self._threads += 1
            self._changed()
            return self._threads

    def thread_ended(self) -> int:
        with self._cond:
            self._threads -= 1
            self._changed()
            return self._threads

    def counts(self) -> dict:
        with self._cond:
            return {"threads": self._threads, "running": len(self._running),
                    "waiting": len(self._queue), "limit": MAX_ACTIVE_RUNS}

    def _changed(self) -> None:
        """Wake the waiting threads and publish the counts (lock held)."""
        self._cond.notify_all()
        directory = os.environ.get("MLP_LAB_STATUS_DIR")
        if directory:
            _write_status(directory, {"pid": os.getpid(), "time": time.time(),
                                      "threads": self._threads, "running": len(self._running),
                                      "waiting": len(self._queue), "limit": MAX_ACTIVE_RUNS})


def _write_status(directory: str, counts: dict) -> None:
    """``trainers.json`` in ``directory``, replaced atomically (a reader never sees half)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".trainers.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(counts, f)
        os.replace(tmp, os.path.join(directory, "trainers.json"))
    except OSError:
        log.warning("could not write the trainer counts to %s", directory, exc_info=True)


POOL = TrainerPool()


def active_runs() -> int:
    """Runs training right now, in the whole process."""
    return POOL.counts()["running"]


def waiting_runs() -> int:
    """Runs waiting for a free trainer, in the whole process."""
    return POOL.counts()["waiting"]


def trainer_threads() -> int:
    """Live training threads (waiting or training), in the whole process."""
    return POOL.counts()["threads"]


class LabSession:
    """One user's lab. Safe to use from the script thread while a run goes in the background."""

    def __init__(self, choice: ModelChoice | None = None, data: LabData | None = None):
        self.data = data if data is not None else get_data()
        self._lock = threading.RLock()  # guards every attribute below
        self._thread: threading.Thread | None = None
        self._generation = 0  # bumped by every reset/load: a late thread of an old model is ignored
        self._cancel = threading.Event()  # set by stop(): ends the current run, waiting or not
        self._ticket = 0  # the current run's place in the server-wide line (TrainerPool)
        self._notices: list[tuple[str, str]] = []  # (kind, message) for toasts
        self.closed = False
        self.reset(choice or ModelChoice.preset("dense"), seed=0)

    # --- the model ------------------------------------------------------------------------
    def reset(self, choice: ModelChoice | None = None, seed: int | None = None) -> None:
        """Fresh weights (stops a run first). ``choice`` None keeps the current settings."""
        self.stop(wait=True)
        with self._lock:
            choice = choice or self.choice
            self.seed = seed if seed is not None else getattr(self, "seed", 0) + 1
            model = build_model(choice.model_config(), seed=self.seed)
            self._install(model, choice, source="fresh weights")

    def _install(self, model, choice: ModelChoice, source: str) -> None:
        """Put ``model`` in place with a new trainer (lock held, no run going)."""
        self.choice = choice
        self.model = model
        self.trainer = Trainer(model, self.data.x_train, self.data.y_train,
                               choice.train_config(seed=self.seed), self.data.x_val, self.data.y_val)
        self.initial_params = {k: v.copy() for k, v in model.params.items()}
        self.source = source
        self.run_info: RunInfo | None = None
        self.test_result: TestResult | None = None
        self._generation += 1

    def load_bytes(self, data: bytes, name: str = "the file") -> str | None:
        """Replace the model by one saved with ``to_bytes``. Returns None on success, or a
        message for the user (the current model is then untouched)."""
        try:
            from mlp_core.persistence import model_from_bytes
        except ImportError:
            return "Loading models needs mlp_core.persistence, which this installation lacks."
        if len(data) > MAX_UPLOAD_BYTES:
            return (f"Could not load {name}: it is {len(data) / 2**20:.0f} MB, and model files "
                    f"up to {MAX_UPLOAD_BYTES // 2**20} MB are accepted. Your current model is "
                    "unchanged.")
        try:
            model, meta = model_from_bytes(bytes(data))
        except ValueError as exc:
            reason = str(exc).rstrip(".")
            end = "" if reason.endswith(("?", "!")) else "."
            return f"Could not load {name}. {reason}{end} Your current model is unchanged."
        except Exception as exc:  # never a traceback for a bad file
            log.exception("unexpected error loading %s", name)
            return (f"Could not load {name}: it is not a model saved by MLP Lab "
                    f"({type(exc).__name__}). Your current model is unchanged.")
        choice = ModelChoice.from_model(model.config(), meta.get("training"))
        self.stop(wait=True)
        with self._lock:
            self._install(model, choice, source=name)
        return None

    def to_bytes(self) -> bytes:
        """The current weights as an ``.npz`` file (see ``mlp_core.persistence``)."""
        from mlp_core.persistence import model_to_bytes

        snap = self.trainer.snapshot(include_params=False)
        training = {**self.choice.train_config(lr=snap.lr).to_dict(), "steps": snap.step}
        extra = {"saved_by": "MLP Lab dashboard", "last_loss": snap.last_loss,
                 "test_accuracy": self.test_result.accuracy if self.test_result else None}
        return model_to_bytes(self.trainer.model_copy(), training=training, extra=extra)

    @property
    def trainer_id(self) -> int:
        """Changes whenever a new model (fresh or loaded) is put in place."""
        return self._generation

    def file_name(self) -> str:
        return f"mlp_lab_{self.choice.kind}_step{self.trainer.step}.npz"

    # --- training -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def waiting(self) -> bool:
        """The run is queued: every trainer of the server is busy."""
        info = self.run_info
        return self.running and info is not None and info.status == "waiting"

    def start(self, steps: int, lr: float | None = None) -> str | None:
        """Start a run of ``steps`` steps in the background (it waits in line first if the
        server's trainers are all busy). Returns None, or why not."""
        if self.closed:
            return "This session has ended. Reload the page to start again."
        if self.running:
            return "A run is already going. Press Stop first, or wait for it to finish."
        try:
            steps = int(steps)
        except (TypeError, ValueError):
            return f"Steps must be a whole number, got {steps!r}."
        if not 1 <= steps <= MAX_STEPS_PER_RUN:
            return f"Steps must be between 1 and {MAX_STEPS_PER_RUN:,} per run, got {steps:,}."
        if lr is not None:
            message = self.set_lr(lr)
            if message:
                return message
        with self._lock:
            trainer, generation = self.trainer, self._generation
            self._cancel = cancel = threading.Event()
            self._ticket = ticket = POOL.new_ticket()
            self.run_info = RunInfo(start_step=trainer.step, steps=steps,
                                    started=time.perf_counter(), status="waiting")
            self._thread = threading.Thread(
                target=self._work, args=(trainer, steps, generation, ticket, cancel), daemon=True,
                name=f"{TRAINER_THREAD_PREFIX}{ticket}")
            alive = POOL.thread_started()
            self._thread.start()
        log.info("trainer thread started: %s, %d steps (trainer threads alive: %d)",
                 self._thread.name, steps, alive)
        return None

    def _work(self, trainer: Trainer, steps: int, generation: int, ticket: int,
              cancel: threading.Event) -> None:
        """The training thread: wait for a free trainer, train, report. Never calls
        Streamlit; never lets an exception escape."""
        notice, outcome, acquired = None, ("stopped", 0, 0.0), False
        try:
            turn = POOL.acquire(ticket, cancel, max_wait=MAX_WAIT_SECONDS)
            acquired = turn == "acquired"
            if acquired:
                with self._lock:
                    if generation == self._generation and self.run_info is not None:
                        self.run_info.started = time.perf_counter()  # the wait is not training time
                        self.run_info.status = "running"
                log.info("run started: %d steps (active runs: %d)", steps, active_runs())
                # A Stop that came just before run() began would be cleared by it: the
                # progress callback passes the cancel on to the trainer within 0.25 s. A loss
                # that blows up (NaN, or finite but exploding) is the Trainer's own business:
                # it stops the run as "diverged" and restores the last sane weights.
                def pass_cancel_on(t: Trainer, fraction: float) -> None:
                    if cancel.is_set():
                        t.stop()

                result = trainer.run(steps=steps, time_budget=MAX_SECONDS_PER_RUN,
                                     on_progress=pass_cancel_on)
                notice = self._notice_for(trainer, result)
                outcome = (result.status, result.steps, result.train_seconds)
            elif turn == "timed_out":
                notice = ("info", f"No trainer became free within {_duration(MAX_WAIT_SECONDS)} "
                                  "(the server is busy), so the run left the line; "
                                  "nothing changed. Press Train to queue it again.")
                outcome = ("gave_up_waiting", 0, 0.0)
            else:
                notice = ("info", "The run was cancelled before a trainer became free; "
                                  "nothing changed. Press Train to queue it again.")
        except Exception as exc:  # a bug must not kill the server or show a traceback
            log.exception("training run failed")
            notice = ("error", f"Training stopped because of an internal error ({type(exc).__name__}). "
                               "Your weights are kept; press Reset on the Model page if it happens again.")
            outcome = ("error", 0, 0.0)
        finally:
            if acquired:
                POOL.release(ticket)
            with self._lock:
                if generation == self._generation and self.run_info is not None:
                    info = self.run_info
                    info.ended = time.perf_counter()
                    info.status, info.result_steps, info.result_seconds = outcome
                    if notice and not self.closed:
                        self._notices.append(notice)
            if acquired:
                log.info("run ended: %s after %d steps (active runs: %d)", outcome[0], outcome[1],
                         active_runs())
            alive = POOL.thread_ended()
            log.info("trainer thread ended: %s (trainer threads alive: %d)",
                     threading.current_thread().name, alive)

    def _notice_for(self, trainer: Trainer, result) -> tuple[str, str] | None:
        loss = trainer.last_loss
        loss_text = f"the loss is now {loss:.3f}" if loss is not None else ""
        if result.status in ("finished", "time_up", "stopped") and result.steps:
            snap = trainer.snapshot(include_params=False)
            start = snap.step - result.steps
            run_losses = [v for s, v in zip(snap.history.steps, snap.history.losses) if s > start]
            trend = loss_trend(run_losses)
            if trend == "up":
                return ("error", f"The loss went up during this run (from {run_losses[0]:.3g} "
                                 f"to {loss:.3g}) instead of down: the learning rate ({snap.lr:g}) is "
                                 "probably too high, so every step overshoots. Try a learning rate "
                                 "3-10x smaller, or make a fresh model on the Model page.")
            if trend == "stuck":
                return ("error", f"The loss did not move at all during this run (it stayed at {loss:.3f}): "
                                 "the network is stuck. Its neurons answer 0 to every image, so no "
                                 "learning signal gets through (it happens to the notebook's network "
                                 "after a too-big step). Make a fresh model on the Model page and use a "
                                 "smaller learning rate.")
        if result.status == "finished":
            return ("success", f"Finished: trained {result.steps:,} steps in {result.seconds:.1f} s "
                               f"and {loss_text}. Press Train again to keep improving the same "
                               "weights, or try your own handwriting on the Test page.")
        if result.status == "stopped":
            if self.closed:
                return None
            return ("info", f"Stopped after {result.steps:,} steps, as you asked. "
                            "Press Train to continue from here.")
        if result.status == "time_up":
            return ("info", f"This run reached the limit of {MAX_SECONDS_PER_RUN:g} seconds per run, "
                            f"which keeps the server quick for everyone. It trained {result.steps:,} "
                            "steps; press Train to continue.")
        if result.status == "diverged":
            return ("error", result.reason)
        return None

    def stop(self, wait: bool = False, timeout: float = 10.0) -> None:
        """Ask the run to end after its current step (or leave the line if it is still
        waiting for a trainer); ``wait`` for the thread to finish."""
        thread = self._thread
        if thread is None:
            return
        self._cancel.set()
        self.trainer.stop()
        POOL.wake()
        if wait and thread is not threading.current_thread():
            thread.join(timeout)

    def set_lr(self, lr: float) -> str | None:
        """Change the learning rate, also during a run. Returns None, or why not."""
        try:
            self.trainer.set_lr(float(lr))
        except (TypeError, ValueError):
            return f"The learning rate must be a positive number, got {lr!r}."
        return None

    def pop_notices(self) -> list[tuple[str, str]]:
        """Messages about runs that ended since the last call (each shown once)."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def status(self) -> LabStatus:
        snap = self.trainer.snapshot(include_params=False)
        with self._lock:
            info, test, model = self.run_info, self.test_result, self.model
        run_done = snap.step - info.start_step if info else 0
        waiting = self.waiting
        speed = None
        if info is not None and not waiting:
            if info.ended is None:  # during a run: steps so far over wall time so far
                seconds = time.perf_counter() - info.started
                speed = run_done * self.choice.batch_size / seconds if seconds > 0.5 else None
            elif info.result_seconds > 0:
                speed = info.result_steps * self.choice.batch_size / info.result_seconds
        return LabStatus(
            description=model.describe(), kind=model.kind, n_params=model.n_params,
            step=snap.step, epochs=snap.epochs, last_loss=snap.last_loss,
            status=snap.status, reason=snap.reason, running=self.running, lr=snap.lr,
            run_done=max(0, run_done), run_steps=info.steps if info else 0,
            samples_per_second=speed,
            test_accuracy=test.accuracy if test else None, test_step=test.step if test else None,
            source=self.source, waiting=waiting,
            queue_position=POOL.position(self._ticket) if waiting else None,
            max_runs=MAX_ACTIVE_RUNS,
        )

    def snapshot(self, include_params: bool = True):
        """The trainer's consistent copy: params, history, step, loss (see mlp_core.Snapshot)."""
        return self.trainer.snapshot(include_params=include_params)

    # --- using the model ------------------------------------------------------------------
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) or (28, 28) float images -> (N, 10) probabilities, from a copy of the
        current weights (so it works during a run without disturbing it)."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        return self.trainer.model_copy().predict_proba(images)

    def evaluate_test(self) -> TestResult:
        """Accuracy and confusion matrix on the 10,000 test images, remembered with the step."""
        step = self.trainer.step
        predicted = self.predict_proba(self.data.x_test).argmax(axis=1)
        result = TestResult(step=step, accuracy=float(np.mean(predicted == self.data.y_test)),
                            confusion=confusion_matrix(self.data.y_test, predicted))
        with self._lock:
            self.test_result = result
        return result

    # --- the end of the browser session -----------------------------------------------------
    def close(self) -> None:
        """Stop training for good: the browser tab was closed (or the server is stopping)."""
        self.closed = True
        running = self.running
        step = self.trainer.step
        self.stop(wait=True, timeout=5.0)
        log.info("session closed: %s at step %d (thread alive: %s, active runs: %d, "
                 "trainer threads alive: %d)", "stopped the run" if running else "no run going",
                 step, self.running, active_runs(), trainer_threads())
