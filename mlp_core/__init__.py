"""mlp_core: the NumPy engine of MLP Lab.

Pure NumPy (Pillow is imported lazily, only to read image files). Never imports
streamlit, plotly or tensorflow.
"""

from .data import flatten, iterate_minibatches, load_mnist, one_hot, scale, validation_split
from .losses import softmax
from .metrics import accuracy, confusion_matrix, most_confident_mistakes, per_class_accuracy
from .networks import DenseMLP, NotebookNet, build_model
from .optimizers import SGD, Adam, Momentum, make_optimizer
from .trainer import History, Snapshot, TrainConfig, Trainer, TrainerState

__all__ = [
    "load_mnist", "scale", "flatten", "one_hot", "validation_split", "iterate_minibatches",
    "softmax", "NotebookNet", "DenseMLP", "build_model", "SGD", "Momentum", "Adam",
    "make_optimizer", "TrainConfig", "Trainer", "TrainerState", "History", "Snapshot",
    "accuracy", "confusion_matrix", "per_class_accuracy", "most_confident_mistakes",
]
