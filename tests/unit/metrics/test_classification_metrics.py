import numpy as np
import pytest

from turbo.metrics.classification import classification_metrics, roc_auc


def one_hot_probs(predictions: list[int], num_labels: int) -> np.ndarray:
    probs = np.full((len(predictions), num_labels), 0.1)
    probs[np.arange(len(predictions)), predictions] = 0.9
    return probs


def test_binary_metrics_by_hand() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    predictions = [1, 1, 0, 1, 0, 0, 0, 0]  # tp=2, fn=1, fp=1, tn=4
    metrics = classification_metrics(labels, one_hot_probs(predictions, 2))
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert "roc_auc" in metrics


def test_roc_auc_counts_ordered_pairs_and_ties() -> None:
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)


def test_multiclass_macro_averages() -> None:
    labels = np.array([0, 1, 2, 2])
    predictions = [0, 2, 2, 2]
    metrics = classification_metrics(labels, one_hot_probs(predictions, 3))
    # per class precision: 1, 0, 2/3; recall: 1, 0, 1
    assert metrics["precision"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert metrics["recall"] == pytest.approx((1 + 0 + 1) / 3)
    assert metrics["f1"] == pytest.approx((1 + 0 + 0.8) / 3)
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    assert "roc_auc" not in metrics
