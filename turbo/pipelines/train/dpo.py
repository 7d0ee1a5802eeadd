"""DPO and its relatives on pair preferences (full or PEFT), against a frozen or precomputed reference."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.data.chat import build_chat_samples
from turbo.data.pair_preferences import PairCollator, PairSample, build_pair_samples
from turbo.data.report import DatasetReport
from turbo.io import atomic_open, write_json
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.pipelines.train.common import (
    check_logging_backend,
    is_main_process,
    prepare_experiment_folder,
    resume_checkpoint,
    save_final,
    training_arguments,
)
from turbo.settings.pipelines.train.dpo import DpoExperimentSettings

logger = logging.getLogger("turbo")

PREVIEW_PAIRS = 3


def write_pair_reports(
    folder: Path, reports: dict[str, DatasetReport], samples: list[PairSample], tokenizer: Any
) -> None:
    """Log what each dataset kept and dropped; preview the first pairs as the model sees them."""
    for split, report in reports.items():
        logger.info("%s data: %s", split, report.summary())
    if not is_main_process():
        return
    write_json(
        folder / "data_report.json",
        {split: [source.as_dict() for source in report.sources] for split, report in reports.items()},
    )
    previews = [
        f"### pair {i} ({sample.name}, {sample.record.where})\n"
        f"prompt: {tokenizer.decode(sample.prompt_ids)}\n"
        f"chosen: [[{tokenizer.decode(sample.chosen_ids)}]]\n"
        f"rejected: [[{tokenizer.decode(sample.rejected_ids)}]]\n"
        for i, sample in enumerate(samples[:PREVIEW_PAIRS])
    ]
    with atomic_open(folder / "samples_preview.txt") as handle:
        handle.write("\n".join(previews))


def load_reference(settings: DpoExperimentSettings, tokenizer: Any) -> Any:
    """The separate frozen reference: ref_model_settings, or the starting model without a new adapter
    (a loaded adapter stays on, frozen). None where the loss needs none or the adapter is disabled."""
    trainer = settings.trainer_settings
    if not settings.uses_reference or not trainer.use_ref_model:
        return None
    if settings.ref_model_settings is not None:
        return load_model(settings.ref_model_settings, tokenizer, settings.tokenizer_settings)
    ref_settings = settings.model_settings.model_copy(update={"peft_settings": None, "is_trainable": False})
    return load_model(ref_settings, tokenizer, settings.tokenizer_settings)


def run(settings: DpoExperimentSettings) -> None:
    from transformers import set_seed

    from turbo.trainers.callbacks import ChatCherryPickCallback, MetricsLogCallback
    from turbo.trainers.dpo import DpoTrainer, SyncRefModelCallback, precompute_reference_logps

    check_logging_backend(settings)
    folder = prepare_experiment_folder(settings)
    resume = resume_checkpoint(settings, folder)
    set_seed(settings.training_seed)
    trainer_settings = settings.trainer_settings
    need_margin = trainer_settings.loss_settings.uses_margin

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    train, train_report = build_pair_samples(
        settings.train_dataset_settings, tokenizer, seed=settings.seed, need_margin=need_margin
    )
    reports = {"train": train_report}
    val: list[PairSample] = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build_pair_samples(
            settings.val_dataset_settings, tokenizer, seed=settings.seed, need_margin=need_margin
        )
    cherry_picks = []
    if settings.cherry_pick_settings is not None:
        cherry_picks, reports["cherry_pick"] = build_chat_samples(
            settings.cherry_pick_settings.dataset_settings, tokenizer, seed=settings.seed, inference=True
        )
    write_pair_reports(folder, reports, train, tokenizer)
    train_features = [sample.features() for sample in train]
    val_features = [sample.features() for sample in val]

    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings)
    collator = PairCollator(tokenizer.pad_token_id)
    ref_model = load_reference(settings, tokenizer)
    if trainer_settings.precompute_ref_log_probs:
        reference = ref_model if ref_model is not None else model
        disable = ref_model is None and settings.trains_adapter
        batch = trainer_settings.per_device_eval_batch_size
        train_features = precompute_reference_logps(train_features, reference, collator, batch, disable)
        val_features = precompute_reference_logps(val_features, reference, collator, batch, disable)
        ref_model = None
        logger.info(
            "precomputed the reference log-probs of %d pairs", len(train_features) + len(val_features)
        )

    callbacks: list[Any] = [MetricsLogCallback(folder / "metrics.jsonl")]
    if settings.cherry_pick_settings is not None:
        callbacks.append(
            ChatCherryPickCallback(
                settings.cherry_pick_settings, cherry_picks, tokenizer, folder / "cherry_picks"
            )
        )
    if trainer_settings.sync_ref_settings.sync_ref_model:
        callbacks.append(SyncRefModelCallback(ref_model, trainer_settings.sync_ref_settings))
    trainer = DpoTrainer(
        model=model,
        ref_model=ref_model,
        loss_settings=trainer_settings.loss_settings,
        args=training_arguments(settings, folder),
        train_dataset=train_features,
        eval_dataset=val_features or None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    logger.info(
        "loss %s; reference: %s",
        trainer_settings.loss_settings.loss_type,
        "none"
        if not settings.uses_reference
        else "precomputed"
        if trainer_settings.precompute_ref_log_probs
        else "separate model"
        if ref_model is not None
        else "the model with its adapter disabled",
    )
    trainer.train(resume_from_checkpoint=resume)
    final = save_final(trainer, tokenizer, folder)
    logger.info("saved the final %s to %s", "adapter" if hasattr(model, "peft_config") else "model", final)
