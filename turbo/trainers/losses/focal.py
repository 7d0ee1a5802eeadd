"""Focal loss for classification (Lin et al. 2017, "Focal Loss for Dense Object Detection",
arXiv:1708.02002)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 0.0, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean focal loss over the batch.

        FL_i = -alpha[y_i] * (1 - p_i) ** gamma * log p_i,   p_i = softmax(logits_i)[y_i]
        loss = mean_i FL_i

    gamma = 0 and alpha = None is the (mean) cross-entropy; gamma > 0 down-weights examples the
    model already classifies well; alpha weights the classes (shape [num_labels]).

    logits: [batch, num_labels]; labels: [batch] class indices.
    """
    log_probs = F.log_softmax(logits.float(), dim=-1)
    log_p = log_probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    loss = -log_p
    if gamma:
        loss = (1.0 - log_p.exp()).clamp(min=0.0).pow(gamma) * loss
    if alpha is not None:
        loss = alpha.to(loss.device, loss.dtype)[labels.long()] * loss
    return loss.mean()


def balanced_class_weights(labels: list[int], num_labels: int) -> list[float]:
    """'auto' alpha: n / (num_labels * n_c) per class c (a class with no record gets weight 1)."""
    counts = [0] * num_labels
    for label in labels:
        counts[label] += 1
    total = len(labels)
    return [total / (num_labels * count) if count else 1.0 for count in counts]
