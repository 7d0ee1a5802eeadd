"""rso_sample: statistical rejection sampling (Liu et al. 2023, "Statistical Rejection Sampling
Improves Preference Optimization", arXiv:2309.06657, Algorithm 1)."""

from __future__ import annotations

import math
import random

from turbo.data.sampling import SamplingItem
from turbo.pipelines.sampling.common import read_records, score_answers, write_samples
from turbo.settings.pipelines.sampling import RsoSamplingSettings


def accept_probability(reward: float, max_reward: float, beta: float) -> float:
    """exp((r - r_max) / beta): 1 for the best remaining answer, smaller for worse ones."""
    return math.exp((reward - max_reward) / beta)


def rejection_sample(
    rewards: dict[str, float], num_answers: int, beta: float, rng: random.Random
) -> list[str]:
    """Accepted answer ids, at most num_answers, in the order accepted.

    Rounds over the remaining candidates: r_max is the best remaining reward; each candidate, in
    order, draws u ~ U[0, 1) from `rng` and is accepted when u < exp((r - r_max) / beta). Rounds
    repeat until num_answers are accepted or no candidate is left (the best one is always accepted,
    so every round accepts at least one).
    """
    candidates = dict(rewards)
    accepted: list[str] = []
    while candidates and len(accepted) < num_answers:
        max_reward = max(candidates.values())
        for answer_id, reward in list(candidates.items()):
            if rng.random() < accept_probability(reward, max_reward, beta):
                accepted.append(answer_id)
                del candidates[answer_id]
                if len(accepted) == num_answers:
                    break
    return accepted


def run(settings: RsoSamplingSettings) -> None:
    items = read_records(settings)
    rewards = score_answers(items, settings.rm_settings, settings.dataset_settings)

    def select(item: SamplingItem, scores: dict[str, float] | None) -> list[str]:
        assert scores is not None
        rng = random.Random(f"{settings.seed}:{item.source}:{item.record.record.id}")
        return rejection_sample(scores, settings.num_answers, settings.beta, rng)

    write_samples(settings, items, list(rewards), select)
