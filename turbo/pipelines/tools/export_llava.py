"""export_llava: the final model of a train_multimodal run as a transformers LLaVA folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.errors import ModelError, SettingsError
from turbo.io import atomic_dir, write_json
from turbo.modeling.loading import load_model
from turbo.modeling.multimodal.llava_export import export_problem, to_llava
from turbo.modeling.multimodal.parts import ENCODERS_FOLDER, PROJECTORS_FILE
from turbo.modeling.tokenizer import load_tokenizer
from turbo.settings.loading import load_settings
from turbo.settings.outputs import EXPERIMENT_MARKER, MANIFEST, manifest, output_folder_problems, refuse
from turbo.settings.pipelines.export import ExportLlavaSettings
from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings
from turbo.settings.tokenizer import TokenizerSettings

logger = logging.getLogger("turbo")


def export_problems(settings: ExportLlavaSettings) -> list[str]:
    """Everything checkable before weights load: the run folder, its parts, the output folder."""
    folder = Path(settings.experiment_path)
    problems = output_folder_problems(
        "save_path",
        settings.save_path,
        "export_llava",
        settings.overwrite,
        {"experiment_path": folder},
        "overwrite: true",
    )
    if not (folder / EXPERIMENT_MARKER).is_file() or not (folder / "final").is_dir():
        return [
            *problems,
            f"experiment_path: {folder} is not a finished train_multimodal run (no {EXPERIMENT_MARKER} "
            "and final/)",
        ]
    experiment = experiment_settings(folder)
    encoders, projectors = experiment.encoders, experiment.projectors
    encoder = next(iter(encoders.values()))
    projector = next(iter(projectors.values()))
    problem = export_problem(encoder.modality_encoder_type, projector.projector_type, sorted(encoders))
    if problem:
        problems.append(f"experiment_path: {problem}")
    return problems


def experiment_settings(folder: Path) -> MultimodalExperimentSettings:
    try:
        return load_settings(folder / EXPERIMENT_MARKER, MultimodalExperimentSettings)
    except SettingsError as exc:
        raise SettingsError(f"experiment_path: not a train_multimodal run: {exc}") from None


def load_language_model(experiment: MultimodalExperimentSettings, final: Path, tokenizer: Any) -> Any:
    """The trained LM with any adapter merged into it."""
    adapter = (final / "adapter_config.json").is_file()
    update: dict[str, Any] = {"peft_settings": None, "bnb_settings": None}
    update.update({"adapter_path": final, "is_trainable": False} if adapter else {"model_path": final})
    settings = experiment.model_settings.model_copy(update=update)
    model = load_model(settings, tokenizer, TokenizerSettings(tokenizer_path=final))
    return model.merge_and_unload() if adapter else model


def load_vision_tower(experiment: MultimodalExperimentSettings, final: Path) -> Any:
    """The CLIP tower as trained: the run's own copy (full or LoRA) when it trained one."""
    from transformers import CLIPVisionModel

    settings = experiment.encoders["image"]
    trained = final / ENCODERS_FOLDER / "image"
    if (trained / "adapter_config.json").is_file():
        from peft import PeftModel

        base = CLIPVisionModel.from_pretrained(str(settings.encoder_path), local_files_only=True)
        return PeftModel.from_pretrained(base, str(trained)).merge_and_unload()
    path = trained if (trained / "config.json").is_file() else settings.encoder_path
    return CLIPVisionModel.from_pretrained(str(path), local_files_only=True)


def build_llava(experiment_path: Path) -> tuple[Any, Any, Any]:
    """(LlavaForConditionalGeneration, tokenizer, image processor) of a finished run."""
    from transformers import CLIPImageProcessor

    from turbo.modeling.multimodal.parts import build_projectors, check_shapes, load_projector_weights

    experiment = experiment_settings(experiment_path)
    final = experiment_path / "final"
    dataset = experiment.train_dataset_settings
    tokenizer = load_tokenizer(TokenizerSettings(tokenizer_path=final), experiment.model_settings)
    language_model = load_language_model(experiment, final, tokenizer)
    tower = load_vision_tower(experiment, final).to(language_model.dtype)
    shapes = check_shapes(
        experiment.encoders, experiment.projectors, dataset.n_modality_embeddings, "train_dataset_settings."
    )
    hidden = language_model.get_input_embeddings().weight.shape[1]
    projectors = build_projectors(
        experiment.projectors, shapes, hidden, dataset.n_modality_embeddings, 0, language_model.dtype
    )
    load_projector_weights(projectors, final / PROJECTORS_FILE)
    image_token = dataset.modality_token_mapping["image"]
    image_token_id = tokenizer.convert_tokens_to_ids(image_token)
    if image_token_id is None or image_token_id == tokenizer.unk_token_id:
        raise ModelError(f"{final}: the tokenizer has no {image_token} token")
    llava = to_llava(
        language_model, tower, projectors["image"], image_token_id, dataset.n_modality_embeddings
    )
    reader = dataset.readers["image"]
    image_processor = CLIPImageProcessor.from_pretrained(str(reader.reader_path), local_files_only=True)
    return llava, tokenizer, image_processor


def run(settings: ExportLlavaSettings) -> None:
    from transformers import LlavaProcessor

    refuse(export_problems(settings))
    llava, tokenizer, image_processor = build_llava(Path(settings.experiment_path))
    experiment = experiment_settings(Path(settings.experiment_path))
    image_token = experiment.train_dataset_settings.modality_token_mapping["image"]
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=llava.config.vision_config.patch_size,
        vision_feature_select_strategy="default",
        image_token=image_token,
        num_additional_image_tokens=1,  # CLIP's CLS token, which the "default" strategy drops
    )
    with atomic_dir(settings.save_path) as folder:
        llava.save_pretrained(folder)
        processor.save_pretrained(folder)
        write_json(folder / MANIFEST, manifest("export_llava", experiment_path=settings.experiment_path))
    logger.info("saved the LLaVA model to %s", settings.save_path)
