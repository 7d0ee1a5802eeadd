"""random_sample: keep num_answers answers per record, chosen uniformly at random (seeded)."""

from __future__ import annotations

import random

from turbo.data.sampling import SamplingItem
from turbo.pipelines.sampling.common import read_records, write_samples
from turbo.settings.pipelines.sampling import RandomSamplingSettings


def random_choice(answer_ids: list[str], num_answers: int, rng: random.Random) -> list[str]:
    """num_answers distinct ids (all of them when there are fewer), in their original order."""
    if len(answer_ids) <= num_answers:
        return list(answer_ids)
    chosen = set(rng.sample(range(len(answer_ids)), num_answers))
    return [answer_id for index, answer_id in enumerate(answer_ids) if index in chosen]


def run(settings: RandomSamplingSettings) -> None:
    items = read_records(settings)

    def select(item: SamplingItem, _: dict[str, float] | None) -> list[str]:
        rng = random.Random(f"{settings.seed}:{item.source}:{item.record.record.id}")
        return random_choice([a.id for a in item.record.record.answers], settings.num_answers, rng)

    write_samples(settings, items, [item.record.record.rewards for item in items], select)
