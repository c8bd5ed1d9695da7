"""What a student can choose, in plain words, and the one path from those choices to a
model and its training settings.

``ModelChoice`` is what the Model page picks (the network and how it learns). The
learning rate is not part of it: the Train page's slider sets it, also during a run, and
the trainer is its one owner (``LabSession.lr``). A new model takes the learning rate it
is given, or ``ModelChoice.usual_lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mlp_core import TrainConfig, build_model
from mlp_core.activations import ACTIVATIONS
from mlp_core.presets import DRAWING_AUGMENTATION, FLAGGED_ONES, PRESETS
from mlp_core.presets import parse_hidden as _parse_hidden

from . import config

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
MAX_HIDDEN_LAYERS, MAX_HIDDEN_SIZE = 4, 1024  # the biggest dense network the pages offer
LR_OPTIONS = tuple(round(m * 10.0 ** e, 6) for e in range(-5, 0) for m in (1, 2, 5)) + (1.0,)
STEP_OPTIONS = tuple(s for s in (100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000)
                     if s <= config.MAX_STEPS_PER_RUN)
DEFAULT_STEPS = 2000  # the notebook trained 2,000 steps per run of its cell
EVAL_EVERY = {"dense": 100, "notebook": 500}  # steps between validation checks

# The Model page's form: one widget per field of ModelChoice, keyed "m_<field>". These
# widgets, the Train page's sliders, and nothing else, must refill from a new model
# (a lesson, a link, an upload, the Make button): FOLLOWER_KEYS is that one list.
FORM_FIELDS = ("kind", "hidden", "activation", "loss", "init", "optimizer", "batch_size",
               "schedule", "shift", "deskew", "strokes", "distort", "flag_ones")
FORM_KEYS = {name: f"m_{name}" for name in FORM_FIELDS}
FOLLOWER_KEYS = ("train_lr", "train_steps", *FORM_KEYS.values())
# What the form's menus offer. A menu's value comes from the browser, and a hand-made
# message can send any text there (Streamlit passes an unknown selectbox value through).
FORM_OPTIONS = {"kind": tuple(KINDS), "activation": ACTIVATION_NAMES, "loss": tuple(LOSS_LABELS),
                "init": tuple(INIT_LABELS), "optimizer": tuple(OPTIMIZER_LABELS),
                "batch_size": BATCH_SIZES, "schedule": tuple(SCHEDULE_LABELS), "shift": SHIFTS,
                "deskew": (False, True), "strokes": (False, True), "distort": (False, True),
                "flag_ones": (False, True)}
FORM_WORDS = {"kind": "the model", "activation": "the activation", "loss": "the loss",
              "init": "the initialisation", "optimizer": "the optimizer",
              "batch_size": "the batch size", "schedule": "the learning-rate schedule",
              "shift": "the shift", "deskew": "straightening", "strokes": "evening out the pen",
              "distort": "distorting training images", "flag_ones": "flagged 1s"}
MAX_HIDDEN_TEXT = 200  # characters in the hidden layer sizes box
# The Model page's dense default leaves "Distort training images" off, though the CLI's
# dense preset distorts: distortions pay off only in longer runs. Measured (2026-12-02,
# seed 0; benchmarks/bench_drawings.py): after the Train page's 2,000 steps, with them the
# canvas set read 95.4 % and the UCI digits 91.0 %, without 96.4 % and 92.7 %; after 10,000
# steps both read the canvas set 96.6 %, and MNIST's test set 99.24 % with, 98.98 % without;
# in the 30-second CLI run (about 9,600 steps) they raise the UCI digits from 91.5 % to 93.2 %.
DISTORT_BY_DEFAULT = False


def offered(value, options, default):
    """``value`` if it is one of ``options`` (same type too: True is not 1), else ``default``:
    for a widget's value read by a page (a hand-made message can send anything)."""
    if any(type(value) is type(option) and value == option for option in options):
        return value
    return default


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def nearest_option(value: float, options) -> float:
    """The option closest to ``value`` on a log scale (a loaded file may hold any lr)."""
    return min(options, key=lambda o: abs(math.log(o) - math.log(value)))


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256, 128' -> (256, 128), within what the pages offer. Raises ValueError with a
    message for the user."""
    if len(str(text)) > MAX_HIDDEN_TEXT:  # never echoed back whole
        raise ValueError("That is far too long for hidden layer sizes: write a few numbers, "
                         "e.g. 256, 128.")
    try:
        return _parse_hidden(text, MAX_HIDDEN_LAYERS, MAX_HIDDEN_SIZE)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message[0].upper() + message[1:] + ".") from None


@dataclass(frozen=True)
class ModelChoice:
    """Everything the Model page picks: the network and how to train it."""

    kind: str = "dense"  # "dense" or "notebook"
    hidden: tuple[int, ...] = (256, 128)  # dense only: neurons per hidden layer
    activation: str = "relu"  # dense only: the hidden layers' activation
    loss: str = "cross_entropy"  # "cross_entropy" or "mse"
    init: str = "he"  # how the first weights are drawn
    optimizer: str = "adam"  # "sgd", "momentum" or "adam"
    batch_size: int = 128  # images per training step
    schedule: str = "cosine"  # learning rate over a run: "constant" or "cosine"
    shift: int = 0  # training images moved at random by up to this many pixels (augmentation)
    deskew: bool = False  # every image straightened before the network reads it (a model setting)
    strokes: bool = False  # every image's pen evened out before the network reads it (a model setting)
    distort: bool = False  # training images turned, resized, slanted, bent, re-inked (presets.DRAWING_AUGMENTATION)
    flag_ones: bool = False  # a share (presets.FLAGGED_ONES) of the training 1s given a flag (augment.flag_ones)

    @classmethod
    def preset(cls, kind: str) -> ModelChoice:
        """The settings of ``mlp_core.presets``: the notebook's, or the best dense ones for
        the dashboard -- the preset's, but with its distortions off (``DISTORT_BY_DEFAULT``)."""
        model_cfg, train_cfg = PRESETS[kind]
        return cls(kind=kind, hidden=tuple(model_cfg.get("hidden", (256, 128))),
                   activation=model_cfg.get("activation", "relu"), loss=model_cfg["loss"],
                   init=model_cfg["init"], optimizer=train_cfg.optimizer,
                   batch_size=train_cfg.batch_size, schedule=train_cfg.schedule,
                   shift=train_cfg.shift, deskew=bool(model_cfg.get("deskew", False)),
                   strokes=bool(model_cfg.get("strokes", False)),
                   distort=train_cfg.augmentation.active and DISTORT_BY_DEFAULT,
                   flag_ones=train_cfg.flag_ones > 0)

    @classmethod
    def from_model(cls, model_config: dict, training: dict | None = None) -> ModelChoice:
        """The choice behind a saved model's settings (unknown training keys are ignored;
        training settings the engine refuses, or the Model page does not offer, fall back to
        the preset's)."""
        base = cls.preset(model_config["kind"])
        training = training or {}
        fields = {"kind": model_config["kind"], "loss": model_config["loss"],
                  "init": model_config["init"], "deskew": model_config.get("deskew") is True,
                  "strokes": model_config.get("strokes") is True,
                  # A file from before distortions has none of their settings: not distorted.
                  "distort": any(_positive(training.get(name)) for name in DRAWING_AUGMENTATION
                                 if name != "augment_fraction"),
                  "flag_ones": _positive(training.get("flag_ones"))}
        if model_config["kind"] == "dense":
            fields.update(hidden=tuple(model_config["hidden"]), activation=model_config["activation"])
        fields.update({name: training[name] for name in ("optimizer", "batch_size", "schedule", "shift")
                       if name in training})
        choice = replace(base, **fields)
        try:
            choice.train_config(choice.usual_lr())  # refuse settings the engine would refuse
            if choice.batch_size not in BATCH_SIZES or choice.shift not in SHIFTS:
                raise ValueError("beyond what the Model page offers")  # (a batch of 60,000...)
        except (ValueError, TypeError):
            choice = replace(choice, optimizer=base.optimizer, batch_size=base.batch_size,
                             schedule=base.schedule, shift=base.shift)
        return choice

    def usual_lr(self) -> float:
        """The learning rate this choice starts with: the preset's for its kind."""
        return PRESETS[self.kind][1].lr

    def model_config(self) -> dict:
        """The settings ``mlp_core.build_model`` takes."""
        prepare = {name: True for name in ("deskew", "strokes") if getattr(self, name)}
        if self.kind == "notebook":
            return {"kind": "notebook", "loss": self.loss, "init": self.init, **prepare}
        return {"kind": "dense", "hidden": list(self.hidden), "activation": self.activation,
                "loss": self.loss, "init": self.init, **prepare}

    def train_config(self, lr: float, seed: int = 0, eval_every: int | None = None) -> TrainConfig:
        """The ``TrainConfig`` for this choice at learning rate ``lr`` (raises ValueError
        for settings the engine refuses)."""
        distortions = DRAWING_AUGMENTATION if self.distort else {}
        return TrainConfig(optimizer=self.optimizer, lr=float(lr), batch_size=int(self.batch_size),
                           schedule=self.schedule, shift=self.shift,
                           flag_ones=FLAGGED_ONES if self.flag_ones else 0.0,
                           eval_every=eval_every or EVAL_EVERY[self.kind], seed=seed, **distortions)

    def build(self, seed: int = 0):
        """A network with fresh random weights drawn from ``seed``."""
        return build_model(self.model_config(), seed=seed)

    def describe_training(self) -> str:
        return (f"{OPTIMIZER_LABELS[self.optimizer]}, batch {self.batch_size}, "
                f"{LOSS_LABELS[self.loss].split(' (')[0].lower()} loss")

    def form_values(self) -> dict:
        """The Model page's widget values for this choice, by widget key."""
        return {key: ", ".join(map(str, self.hidden)) if name == "hidden" else getattr(self, name)
                for name, key in FORM_KEYS.items()}

    @classmethod
    def from_form(cls, values: dict, current: ModelChoice) -> ModelChoice:
        """The choice the Model page's widgets describe (``values`` by widget key). A
        notebook model keeps ``current``'s hidden sizes for when the student switches back.
        Raises ValueError with a message for the user."""
        fields = {name: values[key] for name, key in FORM_KEYS.items()}
        for name, options in FORM_OPTIONS.items():
            if offered(fields[name], options, None) is None:
                raise ValueError(f"That is not one of the choices for {FORM_WORDS[name]}: pick it "
                                 "again from its menu.")
        fields["hidden"] = (parse_hidden(fields["hidden"]) if fields["kind"] == "dense"
                            else current.hidden)
        return cls(**fields)

    def lr_after_change(self, previous: ModelChoice, lr: float) -> float:
        """The learning rate a new model made from this choice starts with, when the model
        it replaces had ``previous`` at ``lr``: kept, unless the kind or the optimizer
        changed (then this choice's usual one: Adam and SGD want very different rates)."""
        if (self.kind, self.optimizer) != (previous.kind, previous.optimizer):
            return self.usual_lr()
        return lr
