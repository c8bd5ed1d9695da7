"""One user's lab: the model, its trainer, the background training thread, and results.

Nothing here imports streamlit, so it can be tested (and reused by other front ends)
without a browser. ``mlp_lab.session`` ties one ``LabSession`` to each browser session.

Training runs in a daemon thread that only talks to the ``Trainer`` (which is thread-safe)
and to this object under its lock; it never calls Streamlit. The page polls ``status()``
about once a second. Every run is capped in steps and in seconds, and only
``MAX_ACTIVE_RUNS`` runs may go at once in the whole server process, so one classroom
can share a machine.
"""

from __future__ import annotations

import logging
import math
import os
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
MAX_ACTIVE_RUNS = _env_number("MLP_LAB_MAX_RUNS", 8, int)  # runs going at once, all sessions

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
LR_OPTIONS = tuple(round(m * 10.0 ** e, 6) for e in range(-5, 0) for m in (1, 2, 5)) + (1.0,)
STEP_OPTIONS = tuple(s for s in (100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)
                     if s <= MAX_STEPS_PER_RUN)
DEFAULT_STEPS = 2000  # the notebook trained 2,000 steps per run of its cell
EVAL_EVERY = {"dense": 100, "notebook": 500}  # steps between validation checks


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

    @classmethod
    def preset(cls, kind: str) -> "ModelChoice":
        """The settings of ``mlp_core.presets``: the notebook's, or the best dense ones."""
        model_cfg, train_cfg = PRESETS[kind]
        return cls(kind=kind, hidden=tuple(model_cfg.get("hidden", (256, 128))),
                   activation=model_cfg.get("activation", "relu"), loss=model_cfg["loss"],
                   init=model_cfg["init"], optimizer=train_cfg.optimizer,
                   batch_size=train_cfg.batch_size, schedule=train_cfg.schedule, lr=train_cfg.lr)

    @classmethod
    def from_model(cls, model_config: dict, training: dict | None = None) -> "ModelChoice":
        """Rebuild the choice from a saved model's settings (unknown training keys ignored)."""
        base = cls.preset(model_config["kind"])
        training = training or {}
        fields = {"kind": model_config["kind"], "loss": model_config["loss"],
                  "init": model_config["init"]}
        if model_config["kind"] == "dense":
            fields.update(hidden=tuple(model_config["hidden"]), activation=model_config["activation"])
        for name in ("optimizer", "batch_size", "schedule", "lr"):
            if name in training:
                fields[name] = training[name]
        choice = replace(base, **fields)
        try:
            choice.train_config()  # refuse settings the engine would refuse
        except (ValueError, TypeError):
            choice = replace(choice, optimizer=base.optimizer, batch_size=base.batch_size,
                             schedule=base.schedule, lr=base.lr)
        return choice

    def model_config(self) -> dict:
        if self.kind == "notebook":
            return {"kind": "notebook", "loss": self.loss, "init": self.init}
        return {"kind": "dense", "hidden": list(self.hidden), "activation": self.activation,
                "loss": self.loss, "init": self.init}

    def train_config(self, lr: float | None = None, seed: int = 0) -> TrainConfig:
        return TrainConfig(optimizer=self.optimizer, lr=float(lr or self.lr),
                           batch_size=int(self.batch_size), schedule=self.schedule,
                           eval_every=EVAL_EVERY[self.kind], seed=seed)

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
    started: float  # time.perf_counter() at the start
    ended: float | None = None  # time.perf_counter() at the end
    status: str = "running"  # the run's outcome, once it ended
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

    @property
    def untrained(self) -> bool:
        return self.step == 0 and self.source == "fresh weights"


@dataclass
class TestResult:
    step: int
    accuracy: float
    confusion: np.ndarray = field(repr=False)  # (10, 10) counts, row = true digit


# --- the server-wide cap on runs going at once -------------------------------------------
_runs_lock = threading.Lock()
_active_runs: set[int] = set()


def active_runs() -> int:
    with _runs_lock:
        return len(_active_runs)


class LabSession:
    """One user's lab. Safe to use from the script thread while a run goes in the background."""

    def __init__(self, choice: ModelChoice | None = None, data: LabData | None = None):
        self.data = data if data is not None else get_data()
        self._lock = threading.RLock()  # guards every attribute below
        self._thread: threading.Thread | None = None
        self._generation = 0  # bumped by every reset/load: a late thread of an old model is ignored
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
        try:
            model, meta = model_from_bytes(bytes(data))
        except ValueError as exc:
            return f"Could not load {name}. {exc}. Your current model is unchanged."
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

    def start(self, steps: int, lr: float | None = None) -> str | None:
        """Start a run of ``steps`` steps in the background. Returns None, or why not."""
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
        with _runs_lock:
            if len(_active_runs) >= MAX_ACTIVE_RUNS:
                return (f"The server is busy: {len(_active_runs)} runs are going already (the "
                        f"limit is {MAX_ACTIVE_RUNS}). Wait a few seconds and press Train again.")
            _active_runs.add(id(self))
        with self._lock:
            trainer, generation = self.trainer, self._generation
            self.run_info = RunInfo(start_step=trainer.step, steps=steps, started=time.perf_counter())
            self._thread = threading.Thread(
                target=self._work, args=(trainer, steps, generation), daemon=True,
                name=f"mlp-lab-train-{id(self):x}")
            self._thread.start()
        log.info("run started: %d steps (active runs: %d)", steps, active_runs())
        return None

    def _work(self, trainer: Trainer, steps: int, generation: int) -> None:
        """The training thread. Never calls Streamlit; never lets an exception escape."""
        notice = None
        try:
            result = trainer.run(steps=steps, time_budget=MAX_SECONDS_PER_RUN)
            notice = self._notice_for(trainer, result)
            outcome = (result.status, result.steps, result.train_seconds)
        except Exception as exc:  # a bug must not kill the server or show a traceback
            log.exception("training run failed")
            notice = ("error", f"Training stopped because of an internal error ({type(exc).__name__}). "
                               "Your weights are kept; press Reset on the Model page if it happens again.")
            outcome = ("error", 0, 0.0)
        finally:
            with _runs_lock:
                _active_runs.discard(id(self))
                left = len(_active_runs)
        with self._lock:
            if generation == self._generation and self.run_info is not None:
                info = self.run_info
                info.ended = time.perf_counter()
                info.status, info.result_steps, info.result_seconds = outcome
                if notice and not self.closed:
                    self._notices.append(notice)
        log.info("run ended: %s after %d steps (active runs: %d)", outcome[0], outcome[1], left)

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
        """Ask the run to end after its current step; ``wait`` for the thread to finish."""
        thread = self._thread
        if thread is None:
            return
        self.trainer.stop()
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
        speed = None
        if info is not None:
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
            source=self.source,
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
        log.info("session closed: %s at step %d (thread alive: %s, active runs: %d)",
                 "stopped the run" if running else "no run going", step, self.running, active_runs())
