"""LoRA options as LLaVA / XTuner files write them: target_modules "auto", lora_bias, bits 4 and 8,
modules_to_save as a comma-separated string; the attention switch refused where the kernel is missing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

QLORA_8BIT = CONFIGS / "train" / "sft" / "qlora_8bit_auto.json"
LINEAR = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")


def write_config(tmp_path: Path, change=None) -> Path:
    data = json.loads(QLORA_8BIT.read_text())
    data["log_path"] = str(tmp_path / "run")
    if change is not None:
        change(data)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    return path


@needs_bnb
@pytest.mark.parametrize("bits", [8, 4])
def test_qlora_bits_auto_targets_and_string_modules_to_save(
    fixture_models, tmp_path: Path, bits: int
) -> None:
    def options(data: dict) -> None:
        data["model_settings"].update(bits=bits)
        data["model_settings"]["peft_settings"]["lora_bias"] = "lora_only"  # LLaVA's name, not the default

    path = write_config(tmp_path, options)
    run_turbo("train_sft", "--experiment_settings_path", path)
    final = tmp_path / "run" / "final"
    config = json.loads((final / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == LINEAR  # every linear layer but lm_head
    assert sorted(config["modules_to_save"]) == ["embed_tokens", "lm_head"]
    assert config["bias"] == "lora_only"
    losses = [row["loss"] for row in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in row]
    assert len(losses) == 12 and sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses
    settings = json.loads((tmp_path / "run" / "experiment_settings.json").read_text())
    bnb = settings["model_settings"]["bnb_settings"]
    assert bnb["load_in_8bit" if bits == 8 else "load_in_4bit"] is True


def test_the_attention_switch_is_refused_without_its_kernel(tmp_path: Path) -> None:
    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash_attn is installed here")

    def flash(data: dict) -> None:
        data["model_settings"]["use_flash_attention_2"] = True
        del data["model_settings"]["bits"]

    result = run_turbo("train_sft", "--experiment_settings_path", write_config(tmp_path, flash), expect=2)
    assert (
        "model_settings.attn_implementation: flash_attention_2 needs the flash_attn package, which is not "
        "installed; set attn_implementation: 'sdpa'" in result.stderr
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_sdpa_and_eager_reach_the_model(fixture_models) -> None:
    from turbo.modeling.loading import load_base_model
    from turbo.settings.model import ModelSettings

    for kind in ("eager", "sdpa"):
        settings = ModelSettings(model_path=fixture_models / "llama_tiny", attn_implementation=kind)
        assert load_base_model(settings).config._attn_implementation == kind


def test_auto_targets_leave_the_vision_tower_projector_and_head_alone() -> None:
    import torch

    from turbo.modeling.peft import linear_layer_names

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.fc = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.language_model, self.vision_tower = Block(), Block()
            self.multi_modal_projector = torch.nn.Linear(4, 4)
            self.lm_head = torch.nn.Linear(4, 8)

        def get_output_embeddings(self) -> torch.nn.Module:
            return self.lm_head

    assert linear_layer_names(Model()) == ["language_model.q_proj", "language_model.fc"]
    model = Model()
    del model.vision_tower
    assert linear_layer_names(model) == ["fc", "q_proj"]


def test_original_names_map_to_the_settings() -> None:
    from pydantic import ValidationError

    from turbo.settings.model import LoraSettings, ModelSettings

    lora = LoraSettings(name="LORA", lora_bias="lora_only", modules_to_save=" embed_tokens, lm_head ")
    assert (lora.bias, lora.modules_to_save) == ("lora_only", ["embed_tokens", "lm_head"])
    model = ModelSettings.model_validate({"model_path": ".", "bits": 16})
    assert model.bnb_settings is None
    with pytest.raises(ValidationError, match="bits: 3 is not one of 4, 8 or 16"):
        ModelSettings.model_validate({"model_path": ".", "bits": 3})
