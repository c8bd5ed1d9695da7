"""How good the predictions are: accuracy, confusion matrix, per-class accuracy, and the
mistakes the network was most sure about (the most instructive ones to look at)."""

from __future__ import annotations

import numpy as np


def _labels(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the truth, 0-1."""
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, num_classes: int = 10) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true digit, column = predicted digit."""
    y_true, y_pred = _labels(y_true, y_pred)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return counts


def per_class_accuracy(y_true, y_pred, num_classes: int = 10) -> np.ndarray:
    """(num_classes,) accuracy on the images of each true digit; NaN for a digit never seen."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    totals = cm.sum(axis=1)
    return np.divide(np.diag(cm), totals, out=np.full(num_classes, np.nan), where=totals > 0)


def most_confident_mistakes(proba, y_true, k: int = 10) -> np.ndarray:
    """Indices of the (at most) ``k`` wrong predictions with the highest confidence, most sure first.

    ``proba`` is (N, C) as from ``predict_proba``; ``y_true`` is (N,).
    """
    proba, y_true = np.asarray(proba), np.asarray(y_true)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"proba must be (N, C) with N = len(y_true), got {proba.shape} and {y_true.shape}")
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = proba[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:k]]
