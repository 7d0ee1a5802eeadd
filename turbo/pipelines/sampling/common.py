"""Steps every sampling command shares: read the records, score answers, write the kept ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from turbo.data.sampling import SamplingItem, answer_sequences, read_sampling_records, sampled_row
from turbo.io import write_jsonl
from turbo.settings.datasets.sampling import SamplingDatasetSettings
from turbo.settings.pipelines.sampling import BaseSamplingSettings, RewardModelSettings

logger = logging.getLogger("turbo")

# (record, its rewards per answer id or None) -> the ids of the answers to keep
Selector = Callable[[SamplingItem, dict[str, float] | None], list[str]]


def read_records(settings: BaseSamplingSettings) -> list[SamplingItem]:
    items, report = read_sampling_records(settings.dataset_settings, settings.seed)
    logger.info("data: %s", report.summary())
    return items


def score_answers(
    items: list[SamplingItem], rm_settings: RewardModelSettings, dataset_settings: SamplingDatasetSettings
) -> list[dict[str, float]]:
    """The reward model's score of every answer, per record: {answer id: reward}."""
    from turbo.generators.classification import sequence_logits
    from turbo.modeling.loading import load_model
    from turbo.modeling.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(rm_settings.tokenizer_settings, rm_settings.model_settings)
    sequences, truncated = answer_sequences(items, dataset_settings, tokenizer)
    if truncated:
        logger.info("%d of %d answers were truncated to max_tokens_count", truncated, len(sequences))
    model = load_model(rm_settings.model_settings, tokenizer, rm_settings.tokenizer_settings)
    logits = sequence_logits(model, tokenizer, sequences, rm_settings.batch, progress=True)
    scores = iter(row[0] for row in logits)
    return [{answer.id: next(scores) for answer in item.record.record.answers} for item in items]


def output_path(save_path: Path, source: str) -> Path:
    return Path(save_path) / f"{source}.jsonl"


def write_samples(
    settings: BaseSamplingSettings,
    items: list[SamplingItem],
    rewards: list[dict[str, float] | None],
    select: Selector,
) -> dict[str, Path]:
    """Apply `select` to every record and write one JSONL per source; returns the paths."""
    rows = [
        sampled_row(item, select(item, scores), scores) for item, scores in zip(items, rewards, strict=True)
    ]
    paths = {}
    for source in settings.dataset_settings.sources:
        path = output_path(settings.save_path, source.name)
        chosen = (row for row, item in zip(rows, items, strict=True) if item.source == source.name)
        count = write_jsonl(path, chosen)
        logger.info("wrote %d sampled records to %s", count, path)
        paths[source.name] = path
    return paths
