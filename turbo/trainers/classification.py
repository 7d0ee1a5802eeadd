"""A `transformers.Trainer` for sequence classification with focal loss and classification metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, Trainer

from turbo.metrics.classification import classification_metrics
from turbo.trainers.losses.focal import focal_loss


class ClassificationTrainer(Trainer):
    """compute_loss is the focal loss of the model's logits; alpha (per-class weights) may be None."""

    def __init__(
        self, *args: Any, gamma: float = 0.0, alpha: list[float] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, compute_metrics=compute_classification_metrics, **kwargs)
        self.gamma = gamma
        self.alpha = torch.tensor(alpha, dtype=torch.float32) if alpha is not None else None

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = focal_loss(outputs.logits, labels, gamma=self.gamma, alpha=self.alpha)
        return (loss, outputs) if return_outputs else loss


def compute_classification_metrics(prediction: EvalPrediction) -> dict[str, float]:
    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    probabilities = torch.softmax(torch.as_tensor(np.asarray(logits), dtype=torch.float32), dim=-1).numpy()
    return classification_metrics(np.asarray(prediction.label_ids), probabilities)
