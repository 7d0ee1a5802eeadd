"""Distillation-DPO pairs: every pair tokenised for the policy and, with its own template and
tokenizer, for the reward model; a pair kept by only one of the two renderings is dropped."""

from __future__ import annotations

from typing import Any

import torch

from turbo.data.pair_preferences import PairCollator, PairSample, build_pair_samples
from turbo.data.report import DatasetReport
from turbo.errors import DataError
from turbo.settings.datasets.ddpo import DdpoDatasetSettings

RM_PREFIX = "rm_"
REWARD_DROP = "does not fit the reward model's rendering (pair_preferences.chat_settings)"


def _key(sample: PairSample) -> tuple[str, str]:
    return sample.source, sample.record.where


def build_ddpo_samples(
    settings: DdpoDatasetSettings, tokenizer: Any, rm_tokenizer: Any, *, seed: int
) -> tuple[list[tuple[PairSample, PairSample]], DatasetReport]:
    """(policy sample, reward-model sample) of every pair both renderings keep, in file order."""
    policy, report = build_pair_samples(settings.policy_pairs, tokenizer, seed=seed)
    reward, _ = build_pair_samples(settings.reward_pairs, rm_tokenizer, seed=seed)
    by_key = {_key(sample): sample for sample in reward}
    sources = {source.name: source for source in report.sources}
    pairs = []
    for sample in policy:
        if _key(sample) in by_key:
            pairs.append((sample, by_key[_key(sample)]))
        else:
            sources[sample.source].used -= 1
            sources[sample.source].drop(REWARD_DROP, sample.name)
    if not pairs:
        raise DataError(f"no pair fits both the policy and the reward model: {report.summary()}")
    return pairs, report


def ddpo_features(policy: PairSample, reward: PairSample) -> dict[str, Any]:
    features = policy.features()
    features.update({RM_PREFIX + key: value for key, value in reward.features().items()})
    return features


class DdpoCollator:
    """The policy's [chosen; rejected] rows (input_ids, attention_mask, labels) and the reward model's
    under `rm_` (padded with each tokenizer's own pad id)."""

    def __init__(self, pad_token_id: int, rm_pad_token_id: int) -> None:
        self.policy = PairCollator(pad_token_id)
        self.reward = PairCollator(rm_pad_token_id)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.policy(features)
        rm_features = [
            {key[len(RM_PREFIX) :]: value for key, value in f.items() if key.startswith(RM_PREFIX)}
            for f in features
        ]
        for key, value in self.reward(rm_features).items():
            if key != "labels":
                batch[RM_PREFIX + key] = value
        return batch
