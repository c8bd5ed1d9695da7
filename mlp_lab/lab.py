"""One student's lab: the model, its trainer, the runs in the background, and results.

Nothing here imports streamlit, so it is tested (and could serve other front ends)
without a browser. ``mlp_lab.session`` ties one ``LabSession`` to each browser session.

Training runs in a ``BackgroundRun`` (``mlp_lab.pool``): a daemon thread that waits in
the server's line for a trainer, then only talks to the ``Trainer`` (which is
thread-safe) and to this object under its lock; it never calls Streamlit. The pages
poll ``status()`` about once a second. Every run is capped in steps and in seconds.
A Replay recording is a run too: it waits for a trainer like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mlp_core import Trainer, TrainerState, confusion_matrix
from mlp_core.persistence import model_to_bytes

from . import config
from .budget import ModelRefused, check_model_config, inspect_file, load_file, read_model
from .choices import DEFAULT_STEPS, ModelChoice
from .pool import BackgroundRun, active_runs, trainer_threads
from .replay import Replay, record
from .shared_data import LabData, distorted, get_data, is_shared, prepared
from .store import LabRecord, lab_settings, settings_choice

log = logging.getLogger("mlp_lab")

ENDED_TEXT = ("This session has ended (the page was away for a while), so its model left the "
              "server's memory. Reload the page to get your work back.")


class LabEnded(RuntimeError):
    """A lab used after it was closed and its arrays freed; the message is for the student."""

    def __init__(self, message: str = ENDED_TEXT):
        super().__init__(message)


class _Ended:
    """Stands in for the trainer and the model of a closed lab: any use says so."""

    def __getattr__(self, name):
        raise LabEnded()

    def __repr__(self) -> str:
        return "<ended>"


_ENDED = _Ended()

# Loss points of the history a downloaded file carries (pairs averaged beyond that): the
# curve's shape at ~40 KB of JSON, whatever the length of the training.
FILE_HISTORY_POINTS = 2_000


def _duration(seconds: float) -> str:
    """120 -> "2 minutes", 45 -> "45 seconds"."""
    if seconds >= 120:
        return f"{seconds / 60:.3g} minutes"
    return f"{seconds:.3g} seconds"


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


FRESH_SOURCE = "fresh weights"  # a lab's source when its weights were made here, not loaded


@dataclass(frozen=True)
class LabStatus:
    """What the sidebar and the pages show about the lab, read in one go."""

    description: str  # e.g. "Dense MLP 784-256-128-10 (relu)"
    kind: str
    n_params: int
    step: int  # steps trained since the weights were drawn (a loaded file's own steps included)
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
    preparing: bool = False  # the run waits for the server's copy of the training images (its first time)

    @property
    def untrained(self) -> bool:
        return self.step == 0 and self.source == FRESH_SOURCE


@dataclass
class TestResult:
    step: int
    accuracy: float
    # (10, 10) counts, row = true digit; None when only the accuracy was kept (a saved
    # lab, a model file): the Test page asks to measure again to see the matrix
    confusion: np.ndarray | None = field(default=None, repr=False)


class LabSession:
    """One user's lab. Safe to use from the script thread while a run goes in the background."""

    def __init__(self, choice: ModelChoice | None = None, data: LabData | None = None):
        self.data = data if data is not None else get_data()
        self._lock = threading.RLock()  # guards every attribute below
        self._run: BackgroundRun | None = None  # the current (or last) training run
        self._recording: BackgroundRun | None = None  # the current (or last) Replay recording
        self._generation = 0  # bumped by every reset/load: a late thread of an old model is ignored
        self._notices: list[tuple[str, str]] = []  # (kind, message) for toasts
        self.replay: Replay | None = None  # the last recording (the Replay page)
        self.recording_fraction = 0.0  # of the recording going now
        self.closed = False
        self.released = False  # closed and its arrays dropped (release)
        self.load_note = ""  # about the last file loaded (a float64 file converted), for the page
        # Asked before a new model is built: None, or why not (mlp_lab.keeper's MemoryBudget).
        self.admit: Callable[[LabSession, ModelChoice], str | None] | None = None
        self.train_steps = DEFAULT_STEPS  # what the Train page's Steps slider asks for
        # Bumped by every change worth saving (a new model, a run's end, a learning rate,
        # a test); ``on_change(lab)`` is then called (mlp_lab.keeper saves the lab soon).
        self.revision = 0
        self.on_change: Callable[[LabSession], None] | None = None
        choice = choice or ModelChoice.preset("dense")
        self.reset(choice, seed=0, lr=choice.usual_lr())

    # --- the model ------------------------------------------------------------------------
    def reset(self, choice: ModelChoice | None = None, seed: int | None = None,
              lr: float | None = None) -> None:
        """Fresh weights (stops a run first). ``choice`` None keeps the current settings;
        ``lr`` None keeps the learning rate unless the kind or the optimizer changes.
        Raises ``ModelRefused`` (a network beyond the Model page's, or no room in the
        server's memory) and ``LabEnded``, changing nothing."""
        self._check_open()
        previous = getattr(self, "choice", None)
        choice = choice or previous
        check_model_config(choice.model_config())
        self._admit(choice)
        self.stop(wait=True)
        with self._lock:
            if lr is None:
                lr = choice.lr_after_change(previous, self.lr) if previous else choice.usual_lr()
            self.seed = seed if seed is not None else getattr(self, "seed", 0) + 1
            self._install(choice.build(seed=self.seed), choice, lr, source=FRESH_SOURCE)

    def _check_open(self) -> None:
        if self.closed:
            raise LabEnded()

    def _admit(self, choice: ModelChoice) -> None:
        """Raise ``ModelRefused`` if the server's memory budget has no room for ``choice``."""
        admit = self.admit
        message = admit(self, choice) if admit is not None else None
        if message:
            raise ModelRefused(message)

    def _install(self, model, choice: ModelChoice, lr: float, source: str) -> None:
        """Put ``model`` in place with a new trainer (lock held, no run going)."""
        config_ = choice.train_config(lr, seed=self.seed)
        self.choice = choice
        self.model = model
        # The server's shared copies of the training images as this model reads them (and
        # distorted), made once per server, the first time a run needs them: a page opens
        # without waiting for them.
        shared = is_shared(self.data)
        self.trainer = Trainer(model, self.data.x_train, self.data.y_train, config_, self.data.x_val,
                               self.data.y_val,
                               prepared=(lambda: prepared(model, "x_train", config_.flag_ones)) if shared else None,
                               distorted=(lambda: distorted(model, config_.augmentation, config_.flag_ones))
                               if shared else None)
        self.initial_params = {k: v.copy() for k, v in model.params.items()}
        self.source = source
        self.run_info: RunInfo | None = None
        self.test_result: TestResult | None = None
        self._generation += 1
        self._changed()

    def _prepared(self, model, which: str):
        """The shared set ``which`` as ``model`` reads it, made once per server
        (``shared_data.prepared``), when this lab uses the shared data; else None (the
        trainer then prepares its own images once)."""
        return prepared(model, which) if is_shared(self.data) else None

    def _changed(self) -> None:
        """Something worth saving changed (any thread)."""
        with self._lock:
            self.revision += 1
            hook = self.on_change
        if hook is not None:
            hook(self)

    @property
    def lr(self) -> float:
        """The learning rate the next step uses (the Train page's slider sets it)."""
        return self.trainer.base_lr

    def load_bytes(self, data: bytes, name: str = "the file") -> str | None:
        """Replace the model by one saved with ``to_bytes``. Returns None on success, or a
        message for the user (the current model is then untouched)."""
        if self.closed:
            return ENDED_TEXT
        if len(data) > config.MAX_UPLOAD_BYTES:
            return (f"Could not load {name}: it is {len(data) / 2**20:.0f} MB, and model files "
                    f"up to {config.MAX_UPLOAD_BYTES // 2**20} MB are accepted. Your current "
                    "model is unchanged.")
        data = bytes(data)
        try:
            info = inspect_file(data, name)  # a network too large is refused from its headers
            self._admit_file(info.config, info.meta.get("training"), name)
            model, meta, note = load_file(data, info)
        except ModelRefused as exc:
            return str(exc)
        except ValueError as exc:
            reason = str(exc).rstrip(".")
            end = "" if reason.endswith(("?", "!")) else "."
            return f"Could not load {name}. {reason}{end} Your current model is unchanged."
        except Exception as exc:  # never a traceback for a bad file
            log.exception("unexpected error loading %s", name)
            return (f"Could not load {name}: it is not a model saved by MLP Lab "
                    f"({type(exc).__name__}). Your current model is unchanged.")
        training = meta.get("training") or {}
        choice = ModelChoice.from_model(model.config(), training)
        lr = training.get("lr")
        try:
            choice.train_config(lr)
        except (TypeError, ValueError):
            lr = choice.usual_lr()  # a file without (or with a broken) learning rate
        try:
            self._admit(choice)  # (the choice as loaded: its training settings checked)
        except ModelRefused as exc:
            return f"Could not load {name}. {exc}"
        self.stop(wait=True)
        with self._lock:
            self._install(model, choice, lr, source=name)
            self._restore_file_state(meta, training, lr, name)
            self.load_note = note
        return None

    def _admit_file(self, model_config: dict, training, name: str) -> None:
        """The budget's answer for a file's settings, before its weights are read (settings
        that do not describe a model are left to the loader's own checks)."""
        try:
            choice = ModelChoice.from_model(model_config, training if isinstance(training, dict) else {})
        except Exception:  # noqa: BLE001 (the loader words what is wrong with the file)
            return
        try:
            self._admit(choice)
        except ModelRefused as exc:
            raise ModelRefused(f"Could not load {name}. {exc}") from None

    def _restore_file_state(self, meta: dict, training: dict, lr: float, name: str) -> None:
        """Put the new trainer at the file's own step (and history, if the file has one)
        so that the status says "trained 2,000 steps", not 0 (lock held, no run going).
        A file's state that does not fit is skipped, never an error: the weights are
        what matters. Files without a saved state give their ``training.steps``."""
        saved = (meta.get("extra") or {}).get("trainer_state")
        steps = training.get("steps")
        candidates = []
        if isinstance(saved, dict):
            candidates.append({**saved, "lr": lr})  # the learning rate already checked above
        if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0:
            candidates.append(TrainerState(step=steps, samples_seen=steps * self.choice.batch_size, lr=lr))
        extra = meta.get("extra") or {}
        accuracy, test_step = extra.get("test_accuracy"), extra.get("test_step")
        for state in candidates:
            try:
                self.trainer.restore_state(state)
                break
            except (TypeError, ValueError) as exc:
                log.info("%s: its saved training state is not used (%s)", name, exc)
        if (isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool) and 0 <= accuracy <= 1
                and isinstance(test_step, int) and not isinstance(test_step, bool)
                and 0 <= test_step <= self.trainer.step):
            self.test_result = TestResult(step=test_step, accuracy=float(accuracy))

    def to_bytes(self) -> bytes:
        """The current weights as an ``.npz`` file (see ``mlp_core.persistence``)."""
        return self.to_record().model

    def to_record(self) -> LabRecord:
        """The whole lab as the store keeps it (``mlp_lab.store.LabRecord``): the model file
        (the bytes ``to_bytes`` gives), the settings, the trainer's state with its whole
        history, the test accuracy. Consistent during a run too: the weights and the step
        are taken together, between two training steps."""
        with self._lock:  # a reset cannot swap the trainer half-way
            choice, test, train_steps = self.choice, self.test_result, self.train_steps
            model, state = self.trainer.checkpoint()
            # A run is going until its outcome is recorded: not ``self.running``, which stays
            # True while the run's own thread saves its end (on_end runs in that thread).
            info = self.run_info
            going = self.running and info is not None and info.status in ("waiting", "running")
            settings = {**lab_settings(choice, state.lr, train_steps), "source": self.source,
                        "seed": self.seed, "running": going}
        training = {**choice.train_config(state.lr).to_dict(), "steps": state.step}
        extra = {"saved_by": "MLP Lab dashboard", "last_loss": state.last_loss,
                 "test_accuracy": test.accuracy if test else None, "test_step": test.step if test else None,
                 # step, history (bounded), learning rate: load_bytes puts a trainer back there
                 "trainer_state": state.thinned(FILE_HISTORY_POINTS).to_dict()}
        data = model_to_bytes(model, training=training, extra=extra)
        return LabRecord(model=data, settings=settings, trainer_state=state.to_dict(),
                         test_accuracy=test.accuracy if test else None,
                         test_step=test.step if test else None)

    def restore(self, record: LabRecord, name: str = "your saved model") -> None:
        """Put the lab back as ``record`` (``to_record``) left it: the weights, settings,
        step, history and test accuracy; a run that was going then is not resumed. Raises
        ValueError, changing nothing, if the record does not fit (an older version's), and
        ``ModelRefused`` (a ValueError) for a network beyond the Model page's or no room in
        the server's memory. ``name`` is what the student calls it, for those messages."""
        self._check_open()
        choice, lr, train_steps = settings_choice(record.settings)
        check_model_config(choice.model_config(), what=name[0].upper() + name[1:])
        self._admit(choice)
        model, _, _ = read_model(record.model, name)  # float32, whatever was saved
        described = model.config()
        if any(described.get(key) != value for key, value in choice.model_config().items()):
            raise ValueError(f"the saved settings ({choice.model_config()}) do not describe the saved "
                             f"model ({described})")
        source = record.settings.get("source")
        seed = record.settings.get("seed")
        self.stop(wait=True)
        with self._lock:
            previous = (self.choice, self.model, self.trainer, self.initial_params, self.source,
                        self.run_info, self.test_result, self.seed)
            if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
                self.seed = seed
            self._install(model, choice, lr, source=source if isinstance(source, str) else FRESH_SOURCE)
            try:
                self.trainer.restore_state({**record.trainer_state, "lr": lr})
            except (TypeError, ValueError):
                (self.choice, self.model, self.trainer, self.initial_params, self.source,
                 self.run_info, self.test_result, self.seed) = previous
                raise
            self.train_steps = train_steps
            if record.test_accuracy is not None and record.test_step is not None:
                self.test_result = TestResult(step=record.test_step, accuracy=record.test_accuracy)

    @property
    def trainer_id(self) -> int:
        """Changes whenever a new model (fresh or loaded) is put in place."""
        return self._generation

    def file_name(self) -> str:
        return f"mlp_lab_{self.choice.kind}_step{self.trainer.step}.npz"

    # --- training -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        run = self._run
        return run is not None and run.alive

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
        if not 1 <= steps <= config.MAX_STEPS_PER_RUN:
            return (f"Steps must be between 1 and {config.MAX_STEPS_PER_RUN:,} per run, "
                    f"got {steps:,}.")
        if lr is not None:
            message = self.set_lr(lr)
            if message:
                return message
        with self._lock:
            trainer, generation = self.trainer, self._generation
            self.run_info = RunInfo(start_step=trainer.step, steps=steps,
                                    started=time.perf_counter(), status="waiting")
            self._run = BackgroundRun(
                "run", lambda run: self._train(run, trainer, steps, generation),
                max_wait=config.MAX_WAIT_SECONDS,
                on_end=lambda run: self._run_ended(run, trainer, steps, generation))
            self._run.start()
        self._changed()  # saved at once: a server that dies now brings it back "run cut off"
        return None

    def _train(self, run: BackgroundRun, trainer: Trainer, steps: int, generation: int):
        """The run's work, once it has a trainer (in the run's own thread)."""
        with self._lock:
            if generation == self._generation and self.run_info is not None:
                self.run_info.started = time.perf_counter()  # the wait is not training time
                self.run_info.status = "running"
        log.info("run started: %d steps (active runs: %d)", steps, active_runs())

        # A Stop that came just before run() began would be cleared by it: the progress
        # callback passes the cancel on to the trainer within 0.25 s. A loss that blows up
        # (NaN, or finite but exploding) is the Trainer's own business: it stops the run
        # as "diverged" and restores the last sane weights.
        def pass_cancel_on(t: Trainer, fraction: float) -> None:
            if run.cancel.is_set():
                t.stop()

        return trainer.run(steps=steps, time_budget=config.MAX_SECONDS_PER_RUN,
                           on_progress=pass_cancel_on)

    def _run_ended(self, run: BackgroundRun, trainer: Trainer, steps: int, generation: int) -> None:
        """Whatever happened to the run: record its outcome and the message to show."""
        result, turn = run.result, run.slot.turn
        if run.error is not None:
            notice = ("error", f"Training stopped because of an internal error "
                               f"({type(run.error).__name__}). Your weights are kept; press Reset "
                               "on the Model page if it happens again.")
            outcome = ("error", 0, 0.0)
        elif result is not None:
            notice = self._notice_for(trainer, result)
            outcome = (result.status, result.steps, result.train_seconds)
        elif turn == "timed_out":
            notice = ("info", f"No trainer became free within {_duration(config.MAX_WAIT_SECONDS)} "
                              "(the server is busy), so the run left the line; "
                              "nothing changed. Press Train to queue it again.")
            outcome = ("gave_up_waiting", 0, 0.0)
        else:
            notice = ("info", "The run was cancelled before a trainer became free; "
                              "nothing changed. Press Train to queue it again.")
            outcome = ("stopped", 0, 0.0)
        with self._lock:
            if generation == self._generation and self.run_info is not None:
                info = self.run_info
                info.ended = time.perf_counter()
                info.status, info.result_steps, info.result_seconds = outcome
                if notice and not self.closed:
                    self._notices.append(notice)
        if generation == self._generation:
            self._changed()  # saved at once: the end of every run
        if turn == "acquired":
            log.info("run ended: %s after %d steps (active runs: %d)", outcome[0], outcome[1],
                     active_runs())

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
            return ("info", f"This run reached the limit of {config.MAX_SECONDS_PER_RUN:g} seconds per run, "
                            f"which keeps the server quick for everyone. It trained {result.steps:,} "
                            "steps; press Train to continue.")
        if result.status == "diverged":
            return ("error", result.reason)
        return None

    def stop(self, wait: bool = False, timeout: float = 10.0) -> None:
        """Ask the run to end after its current step (or leave the line if it is still
        waiting for a trainer); ``wait`` for the thread to finish."""
        run = self._run
        if run is None:
            return
        run.cancel.set()
        self.trainer.stop()
        run.stop(wait=wait, timeout=timeout)

    def set_lr(self, lr: float) -> str | None:
        """Change the learning rate, also during a run. Returns None, or why not."""
        try:
            lr = float(lr)
            changed = lr != self.trainer.base_lr
            self.trainer.set_lr(lr)
        except (TypeError, ValueError):
            return f"The learning rate must be a positive number, got {lr!r}."
        if changed:
            self._changed()
        return None

    def set_train_steps(self, steps: int) -> None:
        """What the Train page's Steps slider asks for (kept with the lab)."""
        if steps != self.train_steps:
            self.train_steps = int(steps)
            self._changed()

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
            queue_position=self._run.slot.position if waiting else None,
            max_runs=config.MAX_ACTIVE_RUNS, preparing=self.running and self.trainer.preparing,
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

    def network_input(self, image: np.ndarray) -> np.ndarray:
        """The (28, 28) image ``image`` as the network receives it: straightened and with
        its pen evened out if the current model does that (``Network.prepare``)."""
        return self.trainer.model.prepare(np.asarray(image, dtype=np.float32).reshape(1, 28, 28))[0]

    def network_input_caption(self) -> str:
        """Words under "what the network sees": what was done to the drawing first."""
        model = self.trainer.model
        done = [word for word, on in (("straightened", model.deskew), ("pen evened out", model.strokes)) if on]
        return "28 × 28, as the network receives it" + (f" ({', '.join(done)})" if done else "")

    def evaluate_test(self) -> TestResult:
        """Accuracy and confusion matrix on the 10,000 test images, remembered with the step."""
        step = self.trainer.step
        model = self.trainer.model_copy()
        ready = self._prepared(model, "x_test")
        if ready is None:
            predicted = model.predict_proba(self.data.x_test).argmax(axis=1)
        else:  # the test images as this model reads them, prepared once for the whole server
            predicted = model.predict_proba(ready, prepared=True).argmax(axis=1)
        result = TestResult(step=step, accuracy=float(np.mean(predicted == self.data.y_test)),
                            confusion=confusion_matrix(self.data.y_test, predicted))
        with self._lock:
            self.test_result = result
        self._changed()
        return result

    # --- Replay: a film of a fresh copy learning ------------------------------------------
    @property
    def recording(self) -> bool:
        run = self._recording
        return run is not None and run.alive

    @property
    def recording_waits(self) -> bool:
        """The recording waits in line for a free trainer."""
        run = self._recording
        return run is not None and run.waiting

    def record_replay(self, steps: int) -> str | None:
        """Train a fresh copy of the current settings for ``steps`` steps in the
        background, taking snapshots (``mlp_lab.replay``); the result becomes ``replay``.
        It waits for a trainer like a run. Returns None, or why not."""
        if self.closed:
            return "This session has ended. Reload the page to start again."
        if self.recording:
            return "A recording is already going: wait for it, or press Stop."
        with self._lock:
            choice, lr = self.choice, self.lr
            self.recording_fraction = 0.0

            def work(run: BackgroundRun) -> Replay:
                return record(choice, lr, self.data, int(steps), cancel=run.cancel,
                              progress=lambda f: setattr(self, "recording_fraction", f))

            def ended(run: BackgroundRun) -> None:
                if run.result is not None and not self.closed:
                    self.replay = run.result
                elif run.error is not None:
                    self._notices.append(("error", "The recording stopped because of an internal "
                                                   f"error ({type(run.error).__name__})."))
                elif run.slot.turn == "timed_out":
                    self._notices.append(("info", "No trainer became free within "
                                                  f"{_duration(config.MAX_WAIT_SECONDS)}, so the "
                                                  "recording left the line. Press Record again."))

            self._recording = BackgroundRun("replay", work, max_wait=config.MAX_WAIT_SECONDS,
                                            on_end=ended).start()
        return None

    def stop_recording(self, wait: bool = False) -> None:
        if self._recording is not None:
            self._recording.stop(wait=wait)

    # --- the end of the browser session -----------------------------------------------------
    def close(self) -> None:
        """Stop training for good: the browser tab was closed (or the server is stopping)."""
        if self.released:
            return
        self.closed = True
        running = self.running
        step = self.trainer.step
        self.stop_recording()
        self.stop(wait=True, timeout=5.0)
        self.stop_recording(wait=True)
        log.info("session closed: %s at step %d (thread alive: %s, active runs: %d, "
                 "trainer threads alive: %d)", "stopped the run" if running else "no run going",
                 step, self.running, active_runs(), trainer_threads())

    def release(self) -> None:
        """Drop every big array of a closed lab (``close`` first; the keeper calls this once
        the lab is saved and leaves memory). Something may still hold the object (a
        Streamlit session's state kept for a reconnect, a fragment's closure): from now on
        its trainer and model say ``LabEnded`` ("reload the page") instead of holding the
        weights, and the methods that make a model refuse."""
        if not self.closed:
            self.close()
        with self._lock:
            if self.released:
                return
            self.released = True
            self._generation += 1  # a late thread of the old model is ignored
            self._run = self._recording = None  # their closures hold the trainer
            self.trainer = self.model = _ENDED  # the weights, optimizer state, checkpoint, buffers
            self.initial_params = {}
            self.replay = None
            self.test_result = None
            self.run_info = None
            self._notices = []
            self.on_change = self.admit = None  # (they refer to the keeper)
