"""Weight-evolution replay: train a fresh model and keep snapshots of its weight matrices,
to scrub through time afterwards. No Streamlit.

Memory matters on a classroom server: snapshots are kept as int8 colour levels (the same
-127..127 levels the heatmaps draw anyway), scaled per layer by the largest weight that
layer ever had, so colours mean the same thing in every snapshot. A dense 784-256-128-10
model's 21 snapshots take about 4 MB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mlp_core import Trainer

from .choices import ModelChoice

SNAPSHOTS = 21  # step 0 and 20 more, evenly spread over the run
MAX_SECONDS = 20.0  # a recording never trains longer than this
REPLAY_STEPS = (200, 500, 1000, 2000, 5000)
WEIGHTS = ("w1", "w2", "w3")


@dataclass
class Replay:
    """Snapshots of w1, w2, w3 taken during one training run."""

    description: str  # the model, e.g. "Dense MLP 784-256-128-10 (relu)"
    kind: str  # "dense" or "notebook"
    steps: list[int]  # the step of each snapshot, ascending, starting at 0
    levels: dict[str, list[np.ndarray]]  # name -> one int8 array per snapshot
    limits: dict[str, float]  # name -> the weight value of level 127
    loss_steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # validation accuracy at each snapshot
    seconds: float = 0.0
    stopped_early: bool = False
    sizes: tuple[int, ...] = ()  # dense: (784, hidden..., 10)

    def weights(self, name: str, index: int) -> np.ndarray:
        """The weights ``name`` at snapshot ``index``, back in their own units (float32)."""
        return self.levels[name][index].astype(np.float32) * (self.limits[name] / 127)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for arrays in self.levels.values() for a in arrays)


def record(choice: ModelChoice, lr: float, data, steps: int, snapshots: int = SNAPSHOTS,
           seconds: float = MAX_SECONDS, seed: int = 0, cancel=None, progress=None) -> Replay:
    """Train a fresh model with ``choice`` at learning rate ``lr`` for ``steps`` steps (or
    ``seconds``), taking ``snapshots`` evenly spaced copies of w1, w2, w3 (the first at
    step 0). ``cancel`` (a threading.Event) ends it early; ``progress(fraction)`` hears how
    far it is. Run it through the trainer pool (``LabSession.record_replay`` does)."""
    if steps < 1 or snapshots < 2:
        raise ValueError(f"need steps >= 1 and snapshots >= 2, got {steps} and {snapshots}")
    model = choice.build(seed=seed)
    trainer = Trainer(model, data.x_train, data.y_train, choice.train_config(lr, seed=seed))
    marks = sorted(set(np.linspace(0, steps, snapshots).round().astype(int).tolist()))
    names = [name for name in WEIGHTS if name in model.params]  # a 1-hidden-layer MLP has no w3
    raw: dict[str, list[np.ndarray]] = {name: [] for name in names}
    taken, accuracy = [], []
    start = time.perf_counter()
    stopped = False
    x_val, y_val = data.x_val[:500], data.y_val[:500]

    def on_progress(t: Trainer, fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            t.stop()
        if progress is not None:
            progress(min(1.0, t.step / steps))

    for mark in marks:
        todo = mark - trainer.step
        if todo > 0:
            left = seconds - (time.perf_counter() - start)
            if left <= 0 or (cancel is not None and cancel.is_set()):
                stopped = True
                break
            result = trainer.run(steps=todo, time_budget=left, on_progress=on_progress)
            if result.status != "finished":
                stopped = True
        for name in names:
            raw[name].append(model.params[name].astype(np.float32).copy())
        taken.append(trainer.step)
        accuracy.append(float(np.mean(model.predict(x_val) == y_val)))
        if progress is not None:
            progress(min(1.0, trainer.step / steps))
        if stopped:
            break
    limits = {name: max(float(max(np.abs(a).max() for a in arrays)), 1e-12)
              for name, arrays in raw.items()}
    levels = {name: [np.round(a / limits[name] * 127).astype(np.int8) for a in arrays]
              for name, arrays in raw.items()}
    history = trainer.snapshot(include_params=False).history
    return Replay(model.describe(), model.kind, taken, levels, limits, list(history.steps),
                  list(history.losses), accuracy, time.perf_counter() - start, stopped,
                  tuple(getattr(model, "sizes", ())))
