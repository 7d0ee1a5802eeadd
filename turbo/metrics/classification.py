"""Classification metrics from predicted labels (and class probabilities for ROC-AUC)."""

from __future__ import annotations

import numpy as np


def _safe_div(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator > 0)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC-AUC: the probability that a positive scores above a negative (ties count 1/2)."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if not len(positives) or not len(negatives):
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy, and precision / recall / f1 (binary: of class 1; more classes:
    macro averages over the classes present in labels or predictions), plus roc_auc when binary.

    labels: [n] true classes; probabilities: [n, num_labels].
    """
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predictions = probabilities.argmax(axis=-1)
    num_labels = probabilities.shape[-1]
    classes = np.arange(num_labels)
    true_positive = np.array([((predictions == c) & (labels == c)).sum() for c in classes], dtype=float)
    predicted = np.array([(predictions == c).sum() for c in classes], dtype=float)
    actual = np.array([(labels == c).sum() for c in classes], dtype=float)
    precision = _safe_div(true_positive, predicted)
    recall = _safe_div(true_positive, actual)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    metrics = {
        "accuracy": float((predictions == labels).mean()),
        "balanced_accuracy": float(recall[actual > 0].mean()),
    }
    if num_labels == 2:
        metrics.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
        metrics["roc_auc"] = roc_auc(labels, probabilities[:, 1])
    else:
        present = (actual > 0) | (predicted > 0)
        metrics.update(
            precision=float(precision[present].mean()),
            recall=float(recall[present].mean()),
            f1=float(f1[present].mean()),
        )
    return metrics
