"""Cherry-picks of scoring models: at each evaluation, score the records and write
cherry_picks/step_N.jsonl (reward models: both answers of a pair; classifiers: label and probabilities)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from turbo.generators.classification import sequence_logits
from turbo.io import write_jsonl

# (the record's output row, its token-id sequences) -> the row with the scores of those sequences
Scorer = Callable[[dict[str, Any], list[list[float]]], dict[str, Any]]


def pair_scores(row: dict[str, Any], logits: list[list[float]]) -> dict[str, Any]:
    return {**row, "rewards": {"answer_w": logits[0][0], "answer_l": logits[1][0]}}


def class_scores(row: dict[str, Any], logits: list[list[float]]) -> dict[str, Any]:
    probabilities = torch.tensor(logits[0]).softmax(-1).tolist()
    return {**row, "predicted_label": int(torch.tensor(logits[0]).argmax()), "probabilities": probabilities}


class ScoringCherryPickCallback(TrainerCallback):
    """`items` are (output row, sequences) per record; `scorer` adds the scores to the row."""

    def __init__(
        self,
        items: list[tuple[dict[str, Any], list[list[int]]]],
        scorer: Scorer,
        tokenizer: Any,
        folder: Path,
    ) -> None:
        self.items, self.scorer, self.tokenizer, self.folder = items, scorer, tokenizer, folder

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None or not state.is_world_process_zero:
            return
        sequences = [ids for _, record_sequences in self.items for ids in record_sequences]
        logits = sequence_logits(model, self.tokenizer, sequences, args.per_device_eval_batch_size)
        rows, cursor = [], 0
        for row, record_sequences in self.items:
            rows.append(self.scorer(row, logits[cursor : cursor + len(record_sequences)]))
            cursor += len(record_sequences)
        write_jsonl(self.folder / f"step_{state.global_step}.jsonl", rows)


def record_row(sample: Any) -> dict[str, Any]:
    """The record as read, with the source it came from (a pair or classification sample)."""
    return {**sample.record.record.model_dump(mode="json", exclude_none=True), "dataset_name": sample.source}
