"""train_ppo: PPO on prompts with a value model, a per-token KL penalty to the reference and GAE;
rewards from rules, a reward model or Python; rollouts from transformers, a colocated vLLM engine or a
vLLM server."""

from __future__ import annotations

import logging
from typing import Any

from turbo.modeling.loading import load_model
from turbo.pipelines.train.common import policy_tokenizer, save_final, start_experiment
from turbo.pipelines.train.reference import sharing_tokenizer
from turbo.pipelines.train.rollout import (
    disable_dropout,
    load_policy,
    load_prompts,
    load_rl_reference,
    log_setup,
    padding_free,
    rollout_trainer_arguments,
    train_with_rollouts,
)
from turbo.settings.model import ModelSettings
from turbo.settings.pipelines.train.ppo import PpoExperimentSettings
from turbo.settings.rewards import RewardModelRewardSettings
from turbo.settings.tokenizer import TokenizerSettings

logger = logging.getLogger("turbo")


def value_model_settings(settings: PpoExperimentSettings) -> ModelSettings:
    """value_model_settings, else the first reward model, else the policy's base model (a new head)."""
    if settings.value_model_settings is not None:
        return settings.value_model_settings
    for reward in settings.reward_settings:
        if isinstance(reward, RewardModelRewardSettings):
            return reward.model_settings
    return ModelSettings(
        model_path=settings.model_settings.model_path,
        model_type="seq_cls",
        transformers_settings=settings.model_settings.transformers_settings,
    )


def load_value_model(settings: PpoExperimentSettings, tokenizer: Any) -> Any:
    """A one-output sequence classifier, trained in full, dropout off; it reads the policy's tokenizer, so
    its embeddings grow as the policy's do."""
    value_settings = sharing_tokenizer(value_model_settings(settings), settings.model_settings)
    kwargs = {"num_labels": 1, **value_settings.model_kwargs}
    value_settings = value_settings.model_copy(update={"model_kwargs": kwargs, "model_type": "seq_cls"})
    tokenizer_settings = (
        settings.tokenizer_settings
        if value_settings.model_path == settings.model_settings.model_path
        else None
    )
    model = load_model(value_settings, tokenizer, tokenizer_settings or TokenizerSettings())
    if not hasattr(model, "score"):
        raise ValueError(f"{value_settings.model_path}: the value model needs a `score` head")
    disable_dropout(model)
    model.requires_grad_(True)
    return model


def run(settings: PpoExperimentSettings) -> None:
    from turbo.generators.engines import open_engine
    from turbo.trainers.ppo import VALUE_MODEL, PpoTrainer
    from turbo.trainers.rewards import build_rewards

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings
    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_prompts(settings, tokenizer, folder)
    rewards = build_rewards(settings.reward_settings, tokenizer)
    model = load_policy(settings, tokenizer)
    value_model = load_value_model(settings, tokenizer)
    ref_model = load_rl_reference(settings, tokenizer, needed=True)
    flat = padding_free(settings, model, ref_model, value_model)
    log_setup(settings, ref_model, True, flat)

    with open_engine(settings, tokenizer) as engine:
        arguments = rollout_trainer_arguments(
            settings, folder, tokenizer, train, val, engine, rewards, ref_model
        )
        trainer = PpoTrainer(
            model=model,
            ppo_settings=trainer_settings,
            value_model=value_model,
            padding_free=flat,
            **arguments,
        )
        train_with_rollouts(trainer, settings, ref_model, rewards, cherry_picks, tokenizer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("the value model is in %s", final / VALUE_MODEL)
