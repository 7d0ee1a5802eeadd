"""rm_sample: score every answer with a reward model and keep the num_answers best (best-of-N)."""

from __future__ import annotations

from turbo.data.sampling import SamplingItem
from turbo.pipelines.sampling.common import read_records, score_answers, write_samples
from turbo.settings.pipelines.sampling import RmSamplingSettings


def best_answers(rewards: dict[str, float], num_answers: int) -> list[str]:
    """The ids of the num_answers highest rewards (ties: the earlier answer first)."""
    order = sorted(rewards, key=lambda answer_id: -rewards[answer_id])
    return order[:num_answers]


def run(settings: RmSamplingSettings) -> None:
    items = read_records(settings)
    rewards = score_answers(items, settings.rm_settings, settings.dataset_settings)

    def select(_: SamplingItem, scores: dict[str, float] | None) -> list[str]:
        assert scores is not None
        return best_answers(scores, settings.num_answers)

    write_samples(settings, items, list(rewards), select)
