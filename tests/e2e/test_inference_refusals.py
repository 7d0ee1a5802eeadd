"""Inference settings that cannot run as written are refused with what to write instead, never ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers import CONFIGS, FIXTURES, run_turbo

REFUSED = FIXTURES / "refused_configs"
MESSAGE = "pack_to_max_length joins training rows; inference answers one record at a time"


@pytest.mark.parametrize(
    ("command", "name"),
    [("inference_chat", "inference_chat_packing"), ("inference_multimodal", "inference_multimodal_packing")],
)
def test_inference_with_packing_is_refused(command: str, name: str, tmp_path: Path) -> None:
    path = REFUSED / f"{name}.json"
    result = run_turbo(command, "--inference_settings_path", path, expect=2)
    assert f"dataset_settings: {MESSAGE}" in result.stderr and "Traceback" not in result.stderr


def test_cherry_picks_with_packing_are_refused(tmp_path: Path) -> None:
    data = json.loads((CONFIGS / "train" / "sft" / "lora.json").read_text())
    data["cherry_pick_settings"]["dataset_settings"]["pack_to_max_length"] = True
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    result = run_turbo("validate", path, "--command", "train_sft", expect=2)
    assert f"cherry_pick_settings.dataset_settings: {MESSAGE}" in result.stderr


def test_multimodal_inference_with_vllm_is_refused_with_what_to_do() -> None:
    path = REFUSED / "inference_multimodal_vllm.json"
    result = run_turbo("inference_multimodal", "--inference_settings_path", path, expect=2)
    assert "inference_settings.0.use_vllm: is not available for inference_multimodal yet" in result.stderr
    assert "export it with export_llava" in result.stderr and "Traceback" not in result.stderr


def test_multimodal_inference_with_concatenated_samples_is_refused(tmp_path: Path) -> None:
    data = json.loads((CONFIGS / "inference" / "multimodal" / "llava.json").read_text())
    data["dataset_settings"]["dataset_concatenate_samples"] = True
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    result = run_turbo("validate", path, "--command", "inference_multimodal", expect=2)
    assert "dataset_settings: dataset_concatenate_samples joins training rows" in result.stderr
