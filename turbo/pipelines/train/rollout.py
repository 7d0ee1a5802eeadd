"""Steps train_ppo and train_grpo share: prompts, the reference, the rollout engine, the trainer's
callbacks. Plain functions; each pipeline reads top to bottom in its own file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.data.prompts import build_rl_prompts, prompt_features
from turbo.data.report import DatasetReport
from turbo.modeling.loading import load_model
from turbo.pipelines.train.reference import load_frozen
from turbo.pipelines.train.splits import load_splits
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings

logger = logging.getLogger("turbo")

PREVIEW_PROMPTS = 3


def prompt_split(dataset: Any, tokenizer: Any, seed: int) -> tuple[list[dict], DatasetReport]:
    """The prompt features of one dataset: chat, prompt or (GRPO) multimodal records, whose media are
    read here and whose span tokens are added to the tokenizer (before the model loads)."""
    if not isinstance(dataset, MultimodalDatasetSettings):
        samples, report = build_rl_prompts(dataset, tokenizer, seed=seed)
        return prompt_features(samples, tokenizer), report
    from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
    from turbo.data.prompts import multimodal_prompt_features
    from turbo.modeling.multimodal.parts import build_readers

    add_modality_tokens(tokenizer, dataset)
    readers = build_readers(dataset.readers)
    samples, report = build_multimodal_samples(dataset, tokenizer, readers, seed=seed, inference=True)
    return multimodal_prompt_features(samples, tokenizer, readers), report


def load_prompts(settings: Any, tokenizer: Any, folder: Path) -> tuple[list[dict], list[dict], list]:
    """Train and validation prompt features, the cherry-pick samples; the data reports written."""
    return load_splits(
        settings,
        folder,
        tokenizer,
        lambda dataset: prompt_split(dataset, tokenizer, settings.seed),
        previews=prompt_previews,
        hold_out=False,
    )


def prompt_previews(features: list[dict]) -> list[str]:
    return [
        f"### prompt {i} (record {feature['id']})\n{feature['prompt']}\nreference: {feature['reference']}\n"
        for i, feature in enumerate(features[:PREVIEW_PROMPTS])
    ]


def load_policy(settings: Any, tokenizer: Any) -> Any:
    """The policy, dropout off: model_settings' model, or with multimodal_settings (GRPO) the multimodal
    model around it: encoders, and train_multimodal's projectors (frozen; the LM's adapter trains)."""
    from turbo.modeling.multimodal.parts import check_shapes

    parts = getattr(settings, "multimodal_settings", None)
    dataset = settings.train_dataset_settings
    shapes: dict = {}
    if parts is not None:  # before any weights load
        shapes = check_shapes(
            parts.encoders, parts.projectors, dataset.n_modality_embeddings, "train_dataset_settings."
        )
    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    if parts is not None:
        from turbo.pipelines.multimodal_model import assemble_multimodal, modality_token_ids

        model = assemble_multimodal(
            model,
            parts.encoders,
            parts.projectors,
            shapes,
            dataset.n_modality_embeddings,
            modality_token_ids(tokenizer, dataset),
            settings.seed,
            {None: parts.projections_path},
        )
        model.encoders.requires_grad_(False)
        model.projectors.requires_grad_(False)
    disable_dropout(model)
    return model


def disable_dropout(model: Any) -> None:
    """Dropout off in the policy (as TRL's disable_dropout): the log-probs of the rollout, of the update
    and of the reference are then of one and the same function."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def load_rl_reference(settings: Any, tokenizer: Any, needed: bool) -> Any:
    """A separate frozen reference: ref_model_settings, or for full fine-tuning a copy of the starting
    model; None when not needed or when the policy's adapter disabled is the reference."""
    if not needed or (settings.ref_model_settings is None and settings.model_settings.trains_adapter):
        return None
    return load_frozen(settings, tokenizer, settings.ref_model_settings)


def padding_free(settings: Any, *models: Any) -> bool:
    """Whether the answers are scored in one row without padding (trainer_settings.padding_free, as in
    train_sft and train_dpo): every model that scores them (policy, reference, value model) has an
    attention that reads sample offsets (sdpa/eager switched to turbo_varlen, flash-attention), no
    prompt-learning adapter prepends virtual tokens, and the prompts carry no media. Decided once."""
    from turbo.modeling.varlen import attend_by_offsets

    peft = settings.model_settings.peft_settings
    if not settings.trainer_settings.padding_free or (peft is not None and peft.virtual_tokens):
        return False
    if getattr(settings, "multimodal_settings", None) is not None:
        return False
    return attend_by_offsets(*models)


def to_device(rewards: list, device: Any) -> None:
    """Reward models go where the policy trains."""
    for _, function in rewards:
        model = getattr(function, "model", None)
        if model is not None:
            model.to(device)


def log_setup(settings: Any, ref_model: Any, uses_reference: bool, flat: bool, shared: bool = False) -> None:
    rollout = settings.rollout_settings
    logger.info(
        "rollouts: %s; rewards: %s; reference: %s; answers scored %s",
        f"vLLM server {rollout.vllm_server.url}"
        if rollout.vllm_server is not None
        else "colocated vLLM"
        if rollout.use_vllm
        else "transformers generate",
        ", ".join(f"{reward.label} x{reward.weight:g}" for reward in settings.reward_settings),
        "none"
        if not uses_reference
        else "separate model"
        if ref_model is not None
        else "the policy with its adapter disabled",
        "padding-free, each prompt once for its answers"
        if shared
        else "padding-free"
        if flat
        else "in padded rows",
    )


def rollout_trainer_arguments(
    settings: Any,
    folder: Path,
    tokenizer: Any,
    train: list[dict],
    val: list[dict],
    engine: Any,
    rewards: list,
    ref_model: Any,
) -> dict[str, Any]:
    """The keyword arguments GrpoTrainer and PpoTrainer take alike (all but the model and their own
    settings): the prompts, their collator, the metrics log, the engine, the rewards, the reference."""
    from turbo.pipelines.train.common import metrics_log, training_arguments
    from turbo.trainers.rollout import PromptCollator

    return {
        "args": training_arguments(settings, folder),
        "train_dataset": train,
        "eval_dataset": val or None,
        "data_collator": PromptCollator(tokenizer.pad_token_id),
        "processing_class": tokenizer,
        "callbacks": [metrics_log(folder)],
        "rollout_settings": settings.rollout_settings,
        "engine": engine,
        "rewards": rewards,
        "ref_model": ref_model,
        "eval_prompts": val,
        "folder": folder,
        "seed": settings.seed,
    }


def train_with_rollouts(
    trainer: Any,
    settings: Any,
    ref_model: Any,
    rewards: list,
    cherry_picks: list,
    tokenizer: Any,
    resume: str | None,
) -> None:
    """The steps train_grpo and train_ppo share once their trainer is built: reference and reward
    models on the trainer's device, cherry-picks and loggers attached, then training (stopped if the
    loss diverges)."""
    from turbo.pipelines.train.common import run_training
    from turbo.pipelines.train.evaluation import attach_chat_cherry_picks

    if ref_model is not None:
        ref_model.to(trainer.args.device)
    to_device(rewards, trainer.args.device)
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, Path(settings.log_path))
    run_training(trainer, settings, resume)
