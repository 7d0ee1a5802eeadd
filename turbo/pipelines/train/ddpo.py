"""Distillation DPO: the policy (full or PEFT) learns a reward model's pair preferences."""

from __future__ import annotations

import logging
from typing import Any

from turbo.data.chat import build_chat_samples
from turbo.errors import ModelError
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    run_training,
    save_final,
    start_experiment,
    training_arguments,
    write_data_reports,
)
from turbo.pipelines.train.dpo import pair_previews
from turbo.pipelines.train.evaluation import attach_chat_cherry_picks, attach_loggers
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


def load_reference(settings: DdpoExperimentSettings, tokenizer: Any) -> Any:
    """A frozen copy of the starting model (a loaded adapter stays on, frozen), or None."""
    if settings.reference != "model":
        return None
    ref_settings = settings.model_settings.model_copy(update={"peft_settings": None, "is_trainable": False})
    return load_model(ref_settings, tokenizer, settings.tokenizer_settings)


def run(settings: DdpoExperimentSettings) -> None:

    from turbo.data.ddpo import DdpoCollator, build_ddpo_samples, ddpo_features
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.ddpo import DdpoTrainer

    folder, resume = start_experiment(settings)
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    rm_tokenizer = load_tokenizer(
        settings.rm_tokenizer_settings, settings.rm_settings, settings.special_tokens_settings
    )
    train, train_report = build_ddpo_samples(
        settings.train_dataset_settings, tokenizer, rm_tokenizer, seed=settings.seed
    )
    reports = {"train": train_report}
    val: list = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_ddpo_samples(
            settings.val_dataset_settings, tokenizer, rm_tokenizer, seed=settings.seed
        )
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    write_data_reports(folder, reports, pair_previews([policy for policy, _ in train], tokenizer))

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    trainer = DdpoTrainer(
        model=model,
        rm_model=load_reward_model(settings, rm_tokenizer),
        ref_model=load_reference(settings, tokenizer),
        reference=settings.reference,
        beta=settings.beta,
        forward_kl=settings.forward_kl,
        args=training_arguments(settings, folder),
        train_dataset=[ddpo_features(*pair) for pair in train],
        eval_dataset=[ddpo_features(*pair) for pair in val] or None,
        data_collator=DdpoCollator(tokenizer.pad_token_id, rm_tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    logger.info(
        "ddpo: beta %s, %s; reference: %s",
        settings.beta,
        "KL(p_rm || p_policy)" if settings.forward_kl else "KL(p_policy || p_rm)",
        settings.reference,
    )
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, folder)
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
