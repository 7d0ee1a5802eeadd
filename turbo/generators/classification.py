"""Batched forward passes of sequence-classification models (classifiers and reward models)."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def sequence_logits(
    model: Any, tokenizer: Any, sequences: list[list[int]], batch: int, progress: bool = False
) -> list[list[float]]:
    """The head's logits for each token-id sequence, in order (right-padded batches, eval mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits: list[list[float]] = []
    for start in tqdm(range(0, len(sequences), batch), desc="scoring", disable=not progress):
        padded = tokenizer.pad(
            {"input_ids": sequences[start : start + batch]}, padding=True, return_tensors="pt"
        )
        output = model(
            input_ids=padded["input_ids"].to(device), attention_mask=padded["attention_mask"].to(device)
        )
        logits.extend(output.logits.float().cpu().tolist())
    model.train(was_training)
    return logits
