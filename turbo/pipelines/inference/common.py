"""Steps the inference pipelines (and evaluate) share, as plain functions: where each output file goes,
and the rows scored with the cherry-pick metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.metrics.registry import compute_scores, summarize
from turbo.metrics.samples import output_eval_samples


def output_path(save_path: Path, model_index: int, generation_index: int, source: str) -> Path:
    return save_path / f"model_{model_index}" / f"generation_{generation_index}" / f"{source}.jsonl"


def score_rows(metrics: list[Any], rows: list[dict], source: str) -> tuple[dict[str, Any], list[dict]]:
    """The means of `metrics` over inference output rows, and the rows each with its own 'metrics'."""
    samples, answers = output_eval_samples(rows, source)
    per_sample = compute_scores(metrics, samples, answers, None, per_sample=True)
    text = compute_scores(metrics, samples, answers, None, per_sample=False)
    scores = [{**t, **p} for t, p in zip(text, per_sample, strict=True)]
    means, _ = summarize(metrics, scores)
    every = {label: values for metric in scores for label, values in metric.items()}
    scored = []
    for index, sample in enumerate(samples):
        given = rows[index].get("answers", [])  # each answer keeps its other fields (log-probs, ...)
        row = {
            **sample.row,
            "answers": [{**given[k], "id": str(k), "content": a} for k, a in enumerate(answers[index])],
        }
        row["metrics"] = {label: values[index] for label, values in every.items()}
        scored.append(row)
    return means, scored
