"""Named settings: the notebook's, and the best we know for the dense MLP.

Each preset is the model's architecture (for ``build_model``) and a ``TrainConfig``.
The CLI, the dashboard and the benchmarks all start from these, so they agree.
"""

from __future__ import annotations

from .trainer import TrainConfig

# The notebook: 28x28 matrix network, squared error, rand/100 init, SGD at 0.001, one image a step.
NOTEBOOK_MODEL = {"kind": "notebook", "loss": "mse", "init": "notebook"}
NOTEBOOK_TRAINING = TrainConfig(optimizer="sgd", lr=0.001, batch_size=1)

# The dense MLP as fast as we know how to make it good: a wider net, Adam, batch 128, a
# cosine decay of the learning rate over the run (or over the time budget), which lets the
# last steps settle into a minimum instead of bouncing around it, and training images
# shifted by up to one pixel (so the net cannot learn pixels by heart). Measured over 11
# epochs (about what 30 s allow): lr 1e-3 98.23 %, lr 2e-3 98.32 %, lr 2e-3 with the
# shift 98.83 % test accuracy (seed 0; benchmarks/bench_accuracy.py measures the preset).
DENSE_MODEL = {"kind": "dense", "hidden": [256, 128], "activation": "relu",
               "loss": "cross_entropy", "init": "he", "deskew": True, "strokes": True}
# Distortions of the training images that make drawn digits read right (mlp_core.augment).
DRAWING_AUGMENTATION = {"rotation": 12.0, "scale": 0.15, "shear": 0.3, "elastic": 1.5, "thickness": 0.5,
                        "augment_fraction": 0.5}
FLAGGED_ONES = 0.25  # a quarter of MNIST's 1s get a flag (augment.flag_ones): see bench_drawings
DENSE_TRAINING = TrainConfig(optimizer="adam", lr=0.002, batch_size=128, schedule="cosine", shift=1,
                             flag_ones=FLAGGED_ONES, **DRAWING_AUGMENTATION)

PRESETS = {
    "notebook": (NOTEBOOK_MODEL, NOTEBOOK_TRAINING),
    "dense": (DENSE_MODEL, DENSE_TRAINING),
}


def parse_hidden(text: str, max_layers: int | None = None,
                 max_size: int | None = None) -> tuple[int, ...]:
    """Hidden layer sizes written as text -> a tuple: '256, 128', '256,128' and '256-128'
    all give (256, 128). Raises ValueError with a message for the user, saying what was
    expected and what was given, also when there are more than ``max_layers`` layers or
    a layer is wider than ``max_size`` (None: no limit)."""
    parts = [p for p in str(text).replace(";", ",").replace("-", ",").replace(" ", ",").split(",") if p]
    if not parts:
        raise ValueError(f"give at least one hidden layer size, e.g. 128 or 256, 128; got {text!r}")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"hidden layer sizes must be whole numbers separated by commas, "
                         f"e.g. 256, 128; got {text!r}") from None
    too_many = max_layers is not None and len(sizes) > max_layers
    if too_many or any(s < 1 or (max_size is not None and s > max_size) for s in sizes):
        layers = f"1 to {max_layers} hidden layers" if max_layers else "hidden layers"
        width = f"1 to {max_size}" if max_size else "at least 1"
        raise ValueError(f"use {layers} of {width} neurons each; got {text!r}")
    return sizes
