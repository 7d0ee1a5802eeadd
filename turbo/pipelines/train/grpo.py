"""train_grpo: group relative policy optimisation on prompts, with rule, reward-model or Python rewards;
rollouts from transformers or a colocated vLLM engine."""

from __future__ import annotations

import logging

from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    METRICS,
    save_final,
    start_experiment,
    training_arguments,
)
from turbo.pipelines.train.rollout import (
    load_policy,
    load_prompts,
    load_reference,
    log_setup,
    rollout_engine,
    train_with_rollouts,
)
from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings

logger = logging.getLogger("turbo")


def run(settings: GrpoExperimentSettings) -> None:
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.grpo import GrpoTrainer
    from turbo.trainers.rewards import build_rewards
    from turbo.trainers.rollout import PromptCollator

    folder, resume = start_experiment(settings)
    trainer_settings = settings.trainer_settings
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, val, cherry_picks = load_prompts(settings, tokenizer, folder)
    rewards = build_rewards(settings.reward_settings, tokenizer)
    model = load_policy(settings, tokenizer)
    ref_model = load_reference(settings, tokenizer, needed=trainer_settings.beta > 0)
    log_setup(settings, ref_model, trainer_settings.beta > 0)

    with rollout_engine(settings, tokenizer) as engine:
        trainer = GrpoTrainer(
            model=model,
            args=training_arguments(settings, folder),
            train_dataset=train,
            eval_dataset=val or None,
            data_collator=PromptCollator(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=[MetricsLogCallback(folder / METRICS)],
            grpo_settings=trainer_settings,
            rollout_settings=settings.rollout_settings,
            engine=engine,
            rewards=rewards,
            ref_model=ref_model,
            eval_prompts=val,
            folder=folder,
            seed=settings.seed,
        )
        train_with_rollouts(trainer, settings, ref_model, rewards, cherry_picks, tokenizer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
