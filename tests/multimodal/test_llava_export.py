"""export_llava: a train_multimodal run as a transformers LlavaForConditionalGeneration folder whose
logits equal turbo's own model on the same tokens and images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ..helpers import CONFIGS, run_turbo

LLAVA = CONFIGS / "train" / "multimodal" / "llava_lora.json"
INFERENCE = CONFIGS / "inference" / "multimodal" / "llava.json"
EXPORT = CONFIGS / "export" / "llava.json"


@pytest.fixture(scope="module")
def exported(multimodal_models, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    run_turbo(
        "train_multimodal", "--experiment_settings_path", LLAVA, "--set", f"log_path={run}",
        "--set", "trainer_settings.max_steps=3", "--set", "trainer_settings.save_steps=100",
    )  # fmt: skip
    out = root / "llava"
    run_turbo(
        "export_llava", "--settings_path", EXPORT,
        "--set", f"experiment_path={run}", "--set", f"save_path={out}",
    )  # fmt: skip
    return run, out


def turbo_model_and_batch(run: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """turbo's model as inference_multimodal loads it (the LoRA unmerged), and a batch of samples."""
    from turbo.data.multimodal import add_modality_tokens, build_multimodal_samples
    from turbo.data.multimodal_batches import read_media, stack_media
    from turbo.modeling.multimodal.parts import build_readers, check_shapes
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.pipelines.inference.multimodal import load_multimodal_model
    from turbo.settings.loading import load_settings
    from turbo.settings.pipelines.inference.multimodal import MultimodalInferenceExperimentSettings

    final = run / "final"
    overrides = [
        f"inference_settings.0.model_settings.adapter_path={final}",
        f"inference_settings.0.tokenizer_settings.tokenizer_path={final}",
        f"inference_settings.0.projections_path={final / 'projectors.safetensors'}",
    ]
    settings = load_settings(INFERENCE, MultimodalInferenceExperimentSettings, overrides)
    entry, dataset = settings.inference_settings[0], settings.dataset_settings
    tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
    add_modality_tokens(tokenizer, dataset)
    readers = build_readers(dataset.readers)
    samples, _ = build_multimodal_samples(dataset, tokenizer, readers, seed=0)
    shapes = check_shapes(settings.encoders, settings.projectors, dataset.n_modality_embeddings, "")
    model = load_multimodal_model(settings, entry, tokenizer, shapes)
    same_length = [s for s in samples if len(s.input_ids) == len(samples[0].input_ids)][:3]
    input_ids = torch.tensor([s.input_ids for s in same_length])
    pixels = stack_media([read_media(s.media, readers) for s in same_length])["image"]
    return model, input_ids, pixels


def test_export_logits_equal_turbo(exported: tuple[Path, Path]) -> None:
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    run, out = exported
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlavaForConditionalGeneration"]
    assert json.loads((out / "turbo_output.json").read_text())["command"] == "export_llava"
    model, input_ids, pixels = turbo_model_and_batch(run)
    llava = LlavaForConditionalGeneration.from_pretrained(out, local_files_only=True).eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, modality_inputs={"image": pixels}).logits
        got = llava(input_ids=input_ids, pixel_values=pixels).logits
    assert expected.shape == got.shape
    assert (input_ids == llava.config.image_token_index).sum() == 16 * len(pixels)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # the processor expands one image marker into the 16 embeddings the model expects
    processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    from PIL import Image

    image = Image.new("RGB", (32, 32), (255, 0, 0))
    batch = processor(text="<MS><img></MS> What color?", images=image, return_tensors="pt")
    assert int((batch["input_ids"] == llava.config.image_token_index).sum()) == 16


def test_an_unexportable_run_is_refused(exported: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = exported
    result = run_turbo(
        "export_llava", "--settings_path", EXPORT,
        "--set", f"experiment_path={tmp_path}", "--set", f"save_path={tmp_path / 'out'}", expect=2,
    )  # fmt: skip
    assert "is not a finished train_multimodal run" in result.stderr and "Traceback" not in result.stderr
