"""Metrics on small hand-made cases whose answers are known."""

import numpy as np
import pytest

from mlp_core import metrics


def test_accuracy_confusion_and_per_class():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(3 / 5)
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])  # rows = truth
    per_class = metrics.per_class_accuracy(y_true, y_pred, num_classes=4)
    np.testing.assert_allclose(per_class[:3], [0.5, 1.0, 0.0])
    assert np.isnan(per_class[3])  # digit 3 never appears: no accuracy to speak of


def test_most_confident_mistakes_orders_by_confidence():
    proba = np.array([
        [0.9, 0.1],  # right
        [0.4, 0.6],  # wrong, 0.6 sure
        [0.05, 0.95],  # wrong, 0.95 sure
        [0.3, 0.7],  # right
    ])
    y_true = np.array([0, 0, 0, 1])
    np.testing.assert_array_equal(metrics.most_confident_mistakes(proba, y_true, k=5), [2, 1])
    np.testing.assert_array_equal(metrics.most_confident_mistakes(proba, y_true, k=1), [2])


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="same length"):
        metrics.accuracy(np.array([1, 2]), np.array([1]))
