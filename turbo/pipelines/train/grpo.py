"""train_grpo: group relative policy optimisation on chat, prompt or image + text prompts, with rule,
reward-model or Python rewards; rollouts from transformers, a colocated vLLM engine or a vLLM server."""

from __future__ import annotations

import logging

from turbo.pipelines.train.common import policy_tokenizer, save_final, share_prompts, start_experiment
from turbo.pipelines.train.rollout import (
    load_policy,
    load_prompts,
    load_rl_reference,
    log_setup,
    padding_free,
    rollout_trainer_arguments,
    train_with_rollouts,
)
from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: GrpoExperimentSettings) -> None:
    from turbo.generators.engines import open_engine
    from turbo.trainers.grpo import GrpoTrainer
    from turbo.trainers.rewards import build_rewards

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings
    tokenizer = policy_tokenizer(settings)
    train, val, cherry_picks = load_prompts(settings, tokenizer, folder)
    rewards = build_rewards(settings.reward_settings, tokenizer)
    model = load_policy(settings, tokenizer)
    ref_model = load_rl_reference(settings, tokenizer, needed=trainer_settings.beta > 0)
    flat = padding_free(settings, model, ref_model)
    shared = share_prompts(trainer_settings, flat, model, ref_model)
    log_setup(settings, ref_model, trainer_settings.beta > 0, flat, shared)

    with open_engine(settings, tokenizer) as engine:
        arguments = rollout_trainer_arguments(
            settings, folder, tokenizer, train, val, engine, rewards, ref_model
        )
        trainer = GrpoTrainer(
            model=model, grpo_settings=trainer_settings, padding_free=flat, share_prompts=shared, **arguments
        )
        train_with_rollouts(trainer, settings, ref_model, rewards, cherry_picks, tokenizer, resume)
    save_final(trainer, tokenizer, folder)
