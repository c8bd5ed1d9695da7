"""Teaching: the ladder from the notebook to a modern network, the lessons, and settings
written into a link. No Streamlit here, so all of it can be tested without a browser.

The ladder changes one thing at a time, starting from the notebook's network and settings:

    notebook -> cross-entropy -> He init -> Adam -> batches of 64 -> a dense MLP

Each rung is trained for the same number of steps on the same data. The results depend
only on (rung, steps), so they are computed once per server process by one background
worker and shared by every session: a class of 30 pays for one ladder, not 30. Each rung
takes a slot of the server's trainer pool (``mlp_lab.pool``) like a student's run, so the
ladder never adds a trainer beyond ``MLP_LAB_MAX_RUNS``: it waits in the same line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from mlp_core import Trainer

from .choices import (BATCH_SIZES, DEFAULT_STEPS, LR_OPTIONS, SHIFTS, STEP_OPTIONS, ModelChoice,
                      nearest_option, parse_hidden)
from .pool import SharedJobs, server_wide
from .shared_data import get_data
from .text import quoted

log = logging.getLogger("mlp_lab")

LADDER_STEPS = (1000, 2000, 5000)  # steps per rung the Compare page offers
DEFAULT_LADDER_STEPS = 2000  # one run of the notebook's cell
RUNG_SECONDS = 60.0  # no rung may train longer than this (a busy server stays usable)
NOTEBOOK_RERUNS = 10  # "the notebook, its cell re-run 10 times": 20,000 steps


@dataclass(frozen=True)
class Rung:
    key: str  # short id, also used in links
    title: str  # "2 · Cross-entropy"
    change: str  # what this rung changes, in plain words
    why: str  # why that helps
    choice: ModelChoice  # the model and its training settings
    lr: float = 0.001  # every rung learns at the notebook's rate: only one thing changes


_NB = ModelChoice.preset("notebook")

LADDER: tuple[Rung, ...] = (
    Rung("notebook", "1 · The notebook",
         "The notebook's network and settings: squared error, weights rand/100, plain SGD "
         "(lr 0.001), one image per step.",
         "Every weight starts tiny and positive, so all neurons start alike and the squared-error "
         "signal that reaches them is tiny: thousands of steps pass before anything is learned.",
         _NB),
    Rung("loss", "2 · Cross-entropy",
         "Squared error → cross-entropy (with softmax). Nothing else changes.",
         "Cross-entropy punishes a confident wrong answer hard, so the learning signal stays "
         "strong. But with the notebook's tiny positive start, the signal still barely reaches the "
         "first layers: the loss alone is not enough.",
         replace(_NB, loss="cross_entropy")),
    Rung("init", "3 · He initialisation",
         "Weights rand/100 → He init (random, positive and negative, scaled to the layer size).",
         "Neurons now start different from each other and the signal keeps its size from layer "
         "to layer, so every layer starts learning at once.",
         replace(_NB, loss="cross_entropy", init="he")),
    Rung("adam", "4 · Adam",
         "Plain SGD → Adam (same learning rate, 0.001).",
         "Adam gives every weight its own step size, big where gradients are small and steady: "
         "weights that SGD moved far too slowly now move.",
         replace(_NB, loss="cross_entropy", init="he", optimizer="adam")),
    Rung("batch", "5 · Batches of 64",
         "One image per step → 64 images per step.",
         "Each step averages 64 examples, so its direction is far less noisy (and it sees 64x "
         "more images in the same number of steps).",
         replace(_NB, loss="cross_entropy", init="he", optimizer="adam", batch_size=64)),
    Rung("dense", "6 · A modern network",
         "The notebook's matrix network → a dense MLP (784 → 128 → 64 → 10).",
         "Every pixel connects to every neuron, instead of the same small layer being applied "
         "to each column of the image: the network can use where ink is, not just how much.",
         ModelChoice(kind="dense", hidden=(128, 64), activation="relu", loss="cross_entropy",
                     init="he", optimizer="adam", batch_size=64, schedule="constant")),
)
RUNGS = {rung.key: rung for rung in LADDER}
RERUN_KEY = "notebook_rerun"  # the notebook trained NOTEBOOK_RERUNS times longer

NOTEBOOK_STORY = (
    "Three things slowed the notebook down, and they add up:\n\n"
    "1. **One run of the cell could only do about 2,000 steps.** The notebook trained by a "
    "function calling itself once per step, and Python stops such a chain after about a "
    "thousand or two calls. So training meant pressing *run* again: each run continued from the "
    "weights of the last one.\n"
    "2. **Each step learns very little.** The weights started as tiny positive numbers "
    "(`rand/100`), squared error gives a small signal, and the learning rate 0.001 with one "
    "image per step takes small, noisy steps. After 2,000 steps the network still guesses at "
    "chance (about 10 %).\n"
    "3. **It only starts moving after a long, flat start.** Once the weights have drifted "
    "apart, accuracy climbs: about 60 % after 20,000 steps (ten runs of the cell). 66.8 % was "
    "simply where the notebook's author stopped pressing *run*.\n\n"
    "The ladder above (press *Train all six* if it is empty) shows that each modern fix removes one "
    "of these brakes: together they reach about 97 % in the same 2,000 steps that leave the "
    "notebook at chance.")


# --- running the ladder ---------------------------------------------------------------------
@dataclass
class RungResult:
    """One trained rung: its curves and how well it did."""

    key: str
    steps: int  # steps trained
    seconds: float  # wall time of the training
    loss_steps: list[int]
    losses: list[float]
    val_steps: list[int]
    val_accuracy: list[float]  # on the 1,000 validation images, during training
    test_accuracy: float  # on the 10,000 test images, at the end
    status: str  # the trainer's: finished, time_up, diverged

    @property
    def images_seen(self) -> int:
        return self.steps * job_choice(self.key).batch_size


def job_rung(key: str) -> Rung:
    """The rung of a ladder job: the notebook re-run is the first rung, trained longer."""
    return LADDER[0] if key == RERUN_KEY else RUNGS[key]


def job_choice(key: str) -> ModelChoice:
    return job_rung(key).choice


def train_rung(key: str, steps: int, data=None, seconds: float = RUNG_SECONDS,
               progress=None, seed: int = 0) -> RungResult:
    """Train rung ``key`` (or the notebook re-run) for ``steps`` steps from fresh weights."""
    data = data if data is not None else get_data()
    rung = job_rung(key)
    config = rung.choice.train_config(rung.lr, seed=seed, eval_every=max(1, steps // 20))
    trainer = Trainer(rung.choice.build(seed=seed), data.x_train, data.y_train, config,
                      data.x_val, data.y_val)
    callback = (lambda t, fraction: progress(fraction)) if progress else None
    result = trainer.run(steps=steps, time_budget=seconds, on_progress=callback)
    snap = trainer.snapshot(include_params=False)
    test = trainer.evaluate(data.x_test, data.y_test)
    return RungResult(key, snap.step, result.train_seconds, list(snap.history.steps),
                      list(snap.history.losses), list(snap.history.val_steps),
                      list(snap.history.val_accuracy), test, result.status)


class Experiments(SharedJobs):
    """The server's one ladder worker and its results, shared by every session: a job is
    (rung key, steps). ``request(keys, steps)`` queues rungs not yet computed;
    ``results(steps)`` returns what is done; ``progress()`` what runs."""

    thread_name = "mlp-lab-ladder"

    def __init__(self, data=None):
        super().__init__()
        self._data = data

    def request(self, keys, steps: int) -> None:
        if steps not in LADDER_STEPS and list(keys) != [RERUN_KEY]:
            raise ValueError(f"steps must be one of {LADDER_STEPS}, got {steps}")
        super().request([(key, int(steps)) for key in keys])

    def run_job(self, job: tuple[str, int]) -> RungResult:
        key, steps = job
        result = train_rung(key, steps, self._data, progress=lambda f: self.report(fraction=f))
        log.info("ladder: %s, %d steps: %.1f%% in %.1f s", key, steps,
                 100 * result.test_accuracy, result.seconds)
        return result

    def results(self, steps: int) -> dict[str, RungResult]:  # type: ignore[override]
        return {key: r for (key, s), r in super().results().items() if s == steps}

    def result(self, key: str, steps: int) -> RungResult | None:  # type: ignore[override]
        return super().result((key, steps))

    def progress(self) -> tuple[tuple[str, int] | None, float, list[tuple[str, int]]]:
        """(the job running or None, its fraction done, the jobs still queued)."""
        return self.current, self.fraction, self.queued()


get_experiments = server_wide(Experiments)  # the server-wide ladder worker


def ladder_summary(results: dict[str, RungResult]) -> list[dict]:
    """One row per finished rung, in ladder order, with what it bought over the rung before."""
    rows, previous = [], None
    for rung in LADDER:
        result = results.get(rung.key)
        if result is None:
            previous = None
            continue
        gain = None if previous is None else result.test_accuracy - previous.test_accuracy
        steps = f"{result.steps:,}" + ("" if result.status == "finished" else
                                       f" (stopped early: {result.status.replace('_', ' ')})")
        rows.append({"rung": rung.title, "test accuracy": f"{result.test_accuracy:.1%}",
                     "gain": "" if gain is None else f"{gain * 100:+.1f} points",
                     "steps": steps, "images seen": f"{result.images_seen:,}",
                     "seconds": f"{result.seconds:.1f}", "change": rung.change})
        previous = result
    return rows


# --- lessons ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lesson:
    key: str  # used in links: ?lesson=<key>
    title: str  # "1 · The notebook"
    goal: str  # what the class should see
    steps: tuple[str, ...]  # what to do, in order
    choice: ModelChoice  # the model and training settings it sets up
    train_steps: int  # the Train page's Steps slider
    page: str  # the page to go to next
    lr: float = 0.001  # the learning rate it starts with


LESSONS: tuple[Lesson, ...] = (
    Lesson("notebook", "1 · The notebook",
           "See how slowly the notebook's network learns.",
           ("Go to **Train** and press **Train** (2,000 steps, like one run of the notebook's cell).",
            "The accuracy stays near 10 %: chance. Press **Train** again a few times: it "
            "continues from the same weights, like re-running the cell."),
           _NB, 2000, "pages/train.py"),
    Lesson("loss", "2 · Fix the loss",
           "Swap squared error for cross-entropy and see that it is not enough on its own.",
           ("Go to **Train**, press **Train**.", "Compare with lesson 1 on the **Notebook vs modern** "
            "page: the loss changed, the tiny start did not."),
           RUNGS["loss"].choice, 2000, "pages/train.py"),
    Lesson("init", "3 · A better start",
           "He initialisation: the same network, started from better random weights.",
           ("Go to **Train**, press **Train**: the accuracy now rises in the first run.",
            "On **Weights**, compare the colours with lesson 1: positive and negative now."),
           RUNGS["init"].choice, 2000, "pages/train.py"),
    Lesson("adam", "4 · Adam",
           "A smarter optimizer: every weight gets its own step size.",
           ("Go to **Train**, press **Train**: 2,000 steps now reach about 75 %.",),
           RUNGS["adam"].choice, 2000, "pages/train.py"),
    Lesson("batch", "5 · Batches",
           "64 images per step: calmer steps, more images seen.",
           ("Go to **Train**, press **Train**: the loss curve is much smoother.",),
           RUNGS["batch"].choice, 2000, "pages/train.py"),
    Lesson("dense", "6 · A modern network",
           "The dense MLP: 97 % in a few seconds. Then test it with your own handwriting.",
           ("Go to **Train**, press **Train**.", "Go to **Test** and draw a digit; then "
            "**Why this answer** shows which pixels made it decide."),
           ModelChoice.preset("dense"), 2000, "pages/train.py", lr=ModelChoice.preset("dense").usual_lr()),
)
LESSONS_BY_KEY = {lesson.key: lesson for lesson in LESSONS}


# --- settings in a link --------------------------------------------------------------------
# Short query-parameter names: a link a teacher can read out loud.
_PARAMS = ("lesson", "model", "hidden", "act", "loss", "init", "opt", "batch", "sched", "shift",
           "deskew", "pen", "distort", "ones", "lr", "steps")


def _flag(text: str) -> bool:
    """'1' -> True, '0' -> False (a setting that is on or off, in a link); ValueError otherwise."""
    if text not in ("0", "1"):
        raise ValueError(f"expected 0 or 1, got {text!r}")
    return text == "1"


def settings_to_params(choice: ModelChoice, lr: float, steps: int) -> dict[str, str]:
    """The model, its training settings, the learning rate and the steps as query parameters."""
    params = {"model": choice.kind}
    if choice.kind == "dense":
        params["hidden"] = "-".join(str(h) for h in choice.hidden)
        params["act"] = choice.activation
    params.update(loss=choice.loss, init=choice.init, opt=choice.optimizer,
                  batch=str(choice.batch_size), sched=choice.schedule, shift=str(choice.shift),
                  deskew=str(int(choice.deskew)), pen=str(int(choice.strokes)), distort=str(int(choice.distort)),
                  ones=str(int(choice.flag_ones)), lr=f"{lr:g}", steps=str(steps))
    return params


# Query parameter -> (ModelChoice field, how to read its text). Choices are then checked
# by the engine itself (build_model and TrainConfig refuse what they cannot do).
_LINK_FIELDS = {"hidden": ("hidden", parse_hidden), "act": ("activation", str),
                "loss": ("loss", str), "init": ("init", str), "opt": ("optimizer", str),
                "batch": ("batch_size", int), "sched": ("schedule", str), "shift": ("shift", int),
                "deskew": ("deskew", _flag), "pen": ("strokes", _flag), "distort": ("distort", _flag),
                "ones": ("flag_ones", _flag)}
_OFFERED = {"batch_size": BATCH_SIZES, "shift": SHIFTS}  # fields the pages offer a few values of
MAX_LINK_VALUE = 200  # characters: a real link's values are a few; a longer one is ignored unread


def params_to_settings(params) -> tuple[ModelChoice, float, int, list[str]] | None:
    """Query parameters back to ``(choice, lr, steps, problems)``; None when the link holds
    no settings. A lesson key sets everything; other parameters then adjust it. Unknown or
    invalid values are skipped and listed in ``problems`` (a mistyped link still opens)."""
    params = {k: str(v[-1] if isinstance(v, list) else v) for k, v in dict(params).items()
              if k in _PARAMS and (not isinstance(v, list) or v)}
    if not params:
        return None
    problems: list[str] = []
    for name, value in list(params.items()):
        if len(value) > MAX_LINK_VALUE:  # never parsed, never echoed
            problems.append(f"{name}= is too long ({len(value):,} characters)")
            del params[name]
    lesson = LESSONS_BY_KEY.get(params.get("lesson", ""))
    if "lesson" in params and lesson is None:
        problems.append(f"there is no lesson called {quoted(params['lesson'])}")
    kind = params.get("model", lesson.choice.kind if lesson else "dense")
    if kind not in ("dense", "notebook"):
        problems.append(f"model must be dense or notebook, not {quoted(kind)}")
        kind = "dense"
    if lesson and lesson.choice.kind == kind:
        choice, lr = lesson.choice, lesson.lr
    else:
        choice = ModelChoice.preset(kind)
        lr = choice.usual_lr()
    steps = lesson.train_steps if lesson else DEFAULT_STEPS
    for name, (field_name, parse) in _LINK_FIELDS.items():
        if name not in params:
            continue
        try:
            value = parse(params[name])
        except ValueError:
            problems.append(f"{name}={quoted(params[name])} is not valid")
            continue
        if field_name in _OFFERED and value not in _OFFERED[field_name]:
            problems.append(f"{name}={quoted(params[name])} is not one of {_OFFERED[field_name]}")
            continue
        candidate = replace(choice, **{field_name: value})
        try:
            candidate.build()  # the engine refuses bad names
            candidate.train_config(lr)
        except (ValueError, TypeError):
            problems.append(f"{name}={quoted(params[name])} is not valid")
            continue
        choice = candidate
    if "lr" in params:
        try:
            value = float(params["lr"])
            if not 0 < value < float("inf"):
                raise ValueError
            lr = nearest_option(value, LR_OPTIONS)
        except ValueError:
            problems.append(f"lr={quoted(params['lr'])} is not a positive number")
    if "steps" in params:
        try:
            steps = min(STEP_OPTIONS, key=lambda s: abs(s - int(params["steps"])))
        except ValueError:
            problems.append(f"steps={quoted(params['steps'])} is not a whole number")
    return choice, lr, steps, problems
