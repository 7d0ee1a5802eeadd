"""Steps train_ppo and train_grpo share: prompts, the reference, the rollout engine, the trainer's
callbacks. Plain functions; each pipeline reads top to bottom in its own file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from turbo.data.chat import build_chat_samples
from turbo.data.prompts import build_rl_prompts, prompt_features
from turbo.data.report import DatasetReport
from turbo.modeling.loading import load_model
from turbo.pipelines.train.common import write_data_reports

logger = logging.getLogger("turbo")

PREVIEW_PROMPTS = 3


def prompt_split(dataset: Any, tokenizer: Any, seed: int) -> tuple[list[dict], DatasetReport]:
    """The prompt features of one dataset: chat, prompt or (GRPO) multimodal records, whose media are
    read here and whose span tokens are added to the tokenizer (before the model loads)."""
    if dataset.dataset_type != "multimodal":
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
    train, report = prompt_split(settings.train_dataset_settings, tokenizer, settings.seed)
    reports: dict[str, DatasetReport] = {"train": report}
    val: list[dict] = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = prompt_split(settings.val_dataset_settings, tokenizer, settings.seed)
    cherry_picks: list = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    previews = [
        f"### prompt {i} (record {feature['id']})\n{feature['prompt']}\nreference: {feature['reference']}\n"
        for i, feature in enumerate(train[:PREVIEW_PROMPTS])
    ]
    write_data_reports(folder, reports, previews)
    return train, val, cherry_picks


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
        from turbo.modeling.multimodal.model import MultimodalModel
        from turbo.modeling.multimodal.parts import build_encoders, build_projectors, load_projector_weights

        n = dataset.n_modality_embeddings
        embeddings = model.get_input_embeddings().weight
        encoders = build_encoders(parts.encoders, embeddings.dtype)
        projectors = build_projectors(
            parts.projectors, shapes, embeddings.shape[1], n, settings.seed, embeddings.dtype
        )
        load_projector_weights(projectors, parts.projections_path)
        for part in (*encoders.values(), *projectors.values()):
            part.requires_grad_(False)
        token_ids = {m: tokenizer.convert_tokens_to_ids(t) for m, t in dataset.modality_token_mapping.items()}
        model = MultimodalModel(model, encoders, projectors, token_ids)
    disable_dropout(model)
    return model


def disable_dropout(model: Any) -> None:
    """Dropout off in the policy (as TRL's disable_dropout): the log-probs of the rollout, of the update
    and of the reference are then of one and the same function."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def load_reference(settings: Any, tokenizer: Any, needed: bool) -> Any:
    """A separate frozen reference: ref_model_settings, or for full fine-tuning a copy of the starting
    model; None when not needed or when the policy's adapter disabled is the reference."""
    if not needed:
        return None
    if settings.ref_model_settings is not None:
        ref_settings = settings.ref_model_settings
    elif settings.model_settings.trains_adapter:
        return None
    else:
        ref_settings = settings.model_settings.model_copy(
            update={"peft_settings": None, "is_trainable": False}
        )
    model = load_model(ref_settings, tokenizer, settings.tokenizer_settings)
    model.requires_grad_(False)
    model.eval()
    return model


@contextmanager
def rollout_engine(settings: Any, tokenizer: Any) -> Iterator[Any]:
    """transformers generate on the training model, a separate vLLM server (rollout_settings.vllm_server),
    or a colocated vLLM engine on the policy's base model (in this process, so that new weights pass by
    reference; shut down on exit)."""
    from turbo.generators.engines import open_engine

    with open_engine(settings, tokenizer) as engine:
        yield engine


def to_device(rewards: list, device: Any) -> None:
    """Reward models go where the policy trains."""
    for _, function in rewards:
        model = getattr(function, "model", None)
        if model is not None:
            model.to(device)


def log_setup(settings: Any, ref_model: Any, uses_reference: bool) -> None:
    rollout = settings.rollout_settings
    logger.info(
        "rollouts: %s; rewards: %s; reference: %s",
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
    from turbo.pipelines.train.common import METRICS, training_arguments
    from turbo.trainers.callbacks import MetricsLogCallback
    from turbo.trainers.rollout import PromptCollator

    return {
        "args": training_arguments(settings, folder),
        "train_dataset": train,
        "eval_dataset": val or None,
        "data_collator": PromptCollator(tokenizer.pad_token_id),
        "processing_class": tokenizer,
        "callbacks": [MetricsLogCallback(folder / METRICS)],
        "rollout_settings": settings.rollout_settings,
        "engine": engine,
        "rewards": rewards,
        "ref_model": ref_model,
        "eval_prompts": val,
        "folder": folder,
        "seed": settings.seed,
    }


def saved_kind(model: Any) -> str:
    return "adapter" if hasattr(getattr(model, "language_model", model), "peft_config") else "model"


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
    from turbo.pipelines.train.evaluation import attach_chat_cherry_picks, attach_loggers

    if ref_model is not None:
        ref_model.to(trainer.args.device)
    to_device(rewards, trainer.args.device)
    attach_chat_cherry_picks(trainer, settings, cherry_picks, tokenizer, Path(settings.log_path))
    attach_loggers(trainer, settings)
    run_training(trainer, resume)
