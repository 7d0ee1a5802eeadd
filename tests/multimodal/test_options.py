"""DeepSpeed-VisualChat / LLaVA options through train_multimodal: a JSON array of LLaVA records with
several images each (<image> markers, at most 8 per sample), freeze_vision_tower, lang_decoder_update,
learning_rate_pretraining_components, data_debug_path with the positions of each image's embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ..helpers import CONFIGS, FIXTURES, read_jsonl, run_turbo

VISUALCHAT = CONFIGS / "train" / "multimodal" / "visualchat_options.json"


@pytest.fixture(scope="module")
def visualchat_run(multimodal_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("visualchat")
    run_turbo(
        "train_multimodal", "--experiment_settings_path", VISUALCHAT,
        "--set", f"log_path={folder / 'run'}", "--set", f"data_debug_path={folder / 'debug'}",
    )  # fmt: skip
    return folder


def test_parts_train_or_freeze_as_set(visualchat_run: Path) -> None:
    run = visualchat_run / "run"
    parameters = json.loads((run / "parameters.json").read_text())
    assert parameters["language_model"]["trainable"] == 0  # lang_decoder_update: false
    assert parameters["encoders.image"]["frozen"] == 0  # freeze_vision_tower: false
    assert parameters["projectors.image"]["frozen"] == 0 and parameters["projectors.image"]["trainable"] > 0
    assert (run / "final" / "encoders" / "image" / "model.safetensors").is_file()
    base = load_file(FIXTURES / "models" / "llama_tiny" / "model.safetensors")
    final = load_file(run / "final" / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert final[name].equal(base[name])
    report = json.loads((run / "data_report.json").read_text())["train"][0]
    assert report["used"] == 3 and report["dropped"] == {"more than 8 media items": 1}


def test_debug_samples_show_each_image_where_its_marker_is(visualchat_run: Path) -> None:
    rows = read_jsonl(visualchat_run / "debug" / "train_samples.jsonl")
    assert [row["id"] for row in rows] == ["two-images", "visualchat_array.json:1", "three-images"]
    two = rows[0]
    assert [item["key"] for item in two["media"]] == ["images/red_0.png", "images/blue_0.png"]
    (first, last), (second, _) = (item["positions"] for item in two["media"])
    assert last - first == 15 and second > last  # 16 embeddings each, in marker order
    image_id = two["input_ids"][first]
    assert two["input_ids"][first : last + 1] == [image_id] * 16
    text = two["text"]
    assert text.index("Image 1:") < text.index("<img>") < text.index("Image 2:") < text.rindex("<img>")
    assert "[[The first disc is red." in text and all(label == -100 for label in two["labels"][: last + 1])


def test_pretrained_and_new_parts_get_their_learning_rates() -> None:
    from turbo.pipelines.train.multimodal import part_learning_rates
    from turbo.settings.loading import load_settings
    from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings

    settings = load_settings(VISUALCHAT, MultimodalExperimentSettings)
    assert part_learning_rates(settings) == {
        "language_model.": 0.001,
        "projectors.": 0.003,
        "encoders.": 0.001,
    }


LLAVA = CONFIGS / "train" / "multimodal" / "llava_lora.json"


def first_step(tmp_path: Path, name: str, *overrides: str) -> tuple[float, str]:
    folder = tmp_path / name
    result = run_turbo(
        "train_multimodal", "--experiment_settings_path", LLAVA, "--set", f"log_path={folder}",
        "--set", "trainer_settings.max_steps=1", "--set", "trainer_settings.per_device_train_batch_size=6",
        *[item for override in overrides for item in ("--set", override)],
    )  # fmt: skip
    loss = next(row["loss"] for row in read_jsonl(folder / "metrics.jsonl") if "loss" in row)
    return loss, result.stderr


def test_packed_multimodal_rows_give_the_unpacked_loss(multimodal_models, tmp_path: Path) -> None:
    unpacked, _ = first_step(tmp_path, "unpacked")
    packed, log = first_step(tmp_path, "packed", "train_dataset_settings.pack_to_max_length=true")
    assert "joined 6 samples into 3 rows of up to 128 tokens" in log
    assert packed == pytest.approx(unpacked, rel=1e-4)
    joined, log = first_step(tmp_path, "joined", "train_dataset_settings.dataset_concatenate_samples=true")
    assert "joined 6 samples into 3 rows of up to 128 tokens" in log
    assert joined != pytest.approx(unpacked, rel=1e-4)  # one sequence: later samples see earlier ones


def test_the_optimizer_steps_each_part_at_its_learning_rate(tmp_path: Path) -> None:
    """part_optimizer (what both multimodal trainers build) puts every trainable parameter in a group at
    its part's rate: the rates of test_pretrained_and_new_parts_get_their_learning_rates reach AdamW."""
    import torch
    from transformers import Trainer, TrainingArguments

    from turbo.trainers.multimodal import part_optimizer

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.language_model = torch.nn.Linear(4, 4)
            self.encoders = torch.nn.ModuleDict({"image": torch.nn.Linear(4, 4)})
            self.projectors = torch.nn.ModuleDict({"image": torch.nn.Linear(4, 4)})

    model = Model()
    model.encoders.requires_grad_(False)  # a frozen part gets no group
    arguments = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=0.003, weight_decay=0.1, use_cpu=True
    )
    trainer = Trainer(model=model, args=arguments)
    rates = {"language_model.": 0.001, "projectors.": 0.003, "encoders.": 0.001}
    optimizer = part_optimizer(trainer, model, rates)
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert {name: rate_of[id(p)] for name, p in model.named_parameters() if p.requires_grad} == {
        "language_model.weight": 0.001,
        "language_model.bias": 0.001,
        "projectors.image.weight": 0.003,
        "projectors.image.bias": 0.003,
    }
    assert all(id(p) not in rate_of for p in model.encoders.parameters())
    projector = model.projectors.image
    assert decay_of[id(projector.weight)] == 0.1 and decay_of[id(projector.bias)] == 0
