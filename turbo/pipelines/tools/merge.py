"""Merge a LoRA adapter into its base model and save a plain transformers folder."""

from __future__ import annotations

import logging

from turbo.errors import ModelError
from turbo.io import atomic_dir, write_json
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.settings.outputs import MANIFEST, manifest, merge_output_problems, refuse
from turbo.settings.pipelines.merge import MergeAdaptersSettings

logger = logging.getLogger("turbo")


def run(settings: MergeAdaptersSettings) -> None:
    refuse(merge_output_problems(settings))  # before any weights load
    model_settings = settings.model_settings.model_copy(
        update={"adapter_path": settings.adapter, "is_trainable": False}
    )
    tokenizer = load_tokenizer(settings.tokenizer_settings, model_settings)
    model = load_model(model_settings, tokenizer, settings.tokenizer_settings)
    if not hasattr(model, "merge_and_unload"):
        raise ModelError(
            f"the adapter at {settings.adapter} cannot be merged into the weights "
            "(only LoRA-style adapters can; prompt-learning adapters stay separate)"
        )
    merged = model.merge_and_unload()
    with atomic_dir(settings.save_path) as folder:
        merged.save_pretrained(folder, max_shard_size=settings.max_shard_size)
        tokenizer.save_pretrained(folder)
        inputs = {"model_path": settings.model_settings.model_path, "adapter_path": settings.adapter}
        write_json(folder / MANIFEST, manifest("merge_adapters_to_base", **inputs))
    logger.info("saved the merged model to %s", settings.save_path)
