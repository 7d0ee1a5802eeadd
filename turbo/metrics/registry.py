"""The metric registry: the `type` an experiment file uses -> the function that computes it.

Every function takes (parameters, samples, answers, context) and returns label -> one value per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from turbo.metrics.base import EvalSample, ModelContext, Scores, mean
from turbo.metrics.model import kl, perplexity, retrieval_utility, reward
from turbo.metrics.text import (
    accuracy,
    dist_n,
    diversity,
    length,
    meteor,
    rouge,
    self_bleu,
    tool_call_metrics,
)

METRICS: dict[str, Callable[..., Scores]] = {
    "accuracy": accuracy,
    "dist_n": dist_n,
    "diversity": diversity,
    "length": length,
    "kl": kl,
    "meteor": meteor,
    "perplexity": perplexity,
    "reward": reward,
    "rouge": rouge,
    "self_bleu": self_bleu,
    "tool_call_metrics": tool_call_metrics,
    "retrieval_utility": retrieval_utility,
}


def compute_scores(
    metric_settings: Sequence[Any],
    samples: list[EvalSample],
    answers: list[list[str]],
    ctx: ModelContext | None,
    per_sample: bool,
) -> list[Scores]:
    """Each metric's scores (in the order of metric_settings; {} for the other kind of metric)."""
    results: list[Scores] = []
    for metric in metric_settings:
        if metric.per_sample != per_sample:  # the settings class says which kind it is
            results.append({})
            continue
        results.append(METRICS[metric.type](metric.parameters, samples, answers, ctx))
    return results


def summarize(metric_settings: Sequence[Any], scores: list[Scores]) -> tuple[dict[str, float], Scores]:
    """(label -> mean, for metrics whose need_average holds true; label -> per-sample values, for those
    whose need_average holds false)."""
    means: dict[str, float] = {}
    element_wise: Scores = {}
    for metric, metric_scores in zip(metric_settings, scores, strict=True):
        need = metric.parameters.need_average
        keep_elements = False in need and getattr(metric.parameters, "compute_element_wise_meteor", True)
        for label, values in metric_scores.items():
            value = mean(values)
            if True in need and value is not None:
                means[label] = value
            if keep_elements:
                element_wise[label] = values
    return means, element_wise
