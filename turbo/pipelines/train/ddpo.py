"""Distillation DPO: the policy (full or PEFT) learns a reward model's pair preferences."""

from __future__ import annotations

import logging
from typing import Any

from turbo.errors import ModelError
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    end_run,
    metrics_log,
    policy_tokenizer,
    start_experiment,
    training_arguments,
)
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks
from turbo.pipelines.train.reference import load_frozen
from turbo.pipelines.train.splits import load_splits, pair_previews
from turbo.settings.pipelines.train.ddpo import DdpoExperimentSettings

logger = logging.getLogger("turbo")


def load_reward_model(settings: DdpoExperimentSettings, rm_tokenizer: Any) -> Any:
    """The frozen one-output reward model (with its adapter, when rm_settings names one)."""
    rm_settings = settings.rm_settings
    if "num_labels" not in rm_settings.model_kwargs:
        rm_settings = rm_settings.model_copy(
            update={"model_kwargs": {**rm_settings.model_kwargs, "num_labels": 1}}
        )
    model = load_model(rm_settings, rm_tokenizer, settings.rm_tokenizer_settings)
    if model.config.num_labels != 1:
        raise ModelError(
            f"rm_settings.model_path: {rm_settings.model_path} has {model.config.num_labels} outputs; "
            "a reward model has one"
        )
    return model


def run(settings: DdpoExperimentSettings) -> None:

    from turbo.data.ddpo import DdpoCollator, build_ddpo_samples, ddpo_features
    from turbo.trainers.ddpo import DdpoTrainer

    folder, resume = start_experiment(settings)
    tokenizer = policy_tokenizer(settings)
    rm_tokenizer = load_tokenizer(
        settings.rm_tokenizer_settings, settings.rm_settings, settings.special_tokens_settings
    )
    # each sample is (the policy's pair, the reward model's pair); data_debug_path and the previews
    # show the policy's side
    train, val, cherry_picks = load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: build_ddpo_samples(dataset, tokenizer, rm_tokenizer, seed=settings.seed),
        previews=lambda pairs: pair_previews([policy for policy, _ in pairs], tokenizer),
        debug_side=lambda pair: pair[0],
    )

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    trainer = DdpoTrainer(
        model=model,
        rm_model=load_reward_model(settings, rm_tokenizer),
        ref_model=load_frozen(settings, tokenizer) if settings.reference == "model" else None,
        reference=settings.reference,
        beta=settings.beta,
        forward_kl=settings.forward_kl,
        args=training_arguments(settings, folder),
        train_dataset=[ddpo_features(*pair) for pair in train],
        eval_dataset=[ddpo_features(*pair) for pair in val] or None,
        data_collator=DdpoCollator(tokenizer.pad_token_id, rm_tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[metrics_log(folder)],
    )
    logger.info(
        "ddpo: beta %s, %s; reference: %s",
        settings.beta,
        "KL(p_rm || p_policy)" if settings.forward_kl else "KL(p_policy || p_rm)",
        settings.reference,
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    end_run(trainer, settings, tokenizer, folder, resume)
