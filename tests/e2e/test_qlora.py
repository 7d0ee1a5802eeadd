"""QLoRA: train_sft with the base model loaded in 4 bits (bitsandbytes) and packed rows."""

import importlib.util
import json
from pathlib import Path

import pytest

from ..helpers import CONFIGS, assert_every_tensor_changed, assert_loss_falls, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"
BNB = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")


def test_qlora_sft_with_packing_trains(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "qlora"
    result = run_turbo(
        "train_sft",
        *("--experiment_settings_path", SFT, "--set", f"log_path={folder}"),
        *("--set", f"model_settings.bnb_settings={json.dumps(BNB)}"),
        *("--set", f"model_settings.peft_settings.target_modules={json.dumps(TARGETS)}"),
        *("--set", "train_dataset_settings.pack_to_max_length=true"),
        *("--set", "trainer_settings.per_device_train_batch_size=2"),
        *("--set", "trainer_settings.max_steps=16"),
        *("--set", "trainer_settings.save_steps=8"),
        *("--set", "trainer_settings.learning_rate=0.005"),
        *("--set", "trainer_settings.evaluation_strategy=no"),
        *("--set", "cherry_pick_settings=null"),
    )
    assert "packed 16 samples into" in result.stderr
    assert_loss_falls(folder, factor=0.6)
    weights = assert_every_tensor_changed(
        folder / "checkpoints" / "checkpoint-8" / "adapter_model.safetensors",
        folder / "final" / "adapter_model.safetensors",
    )
    assert sum("lora_B" in name for name in weights) == 2 * len(TARGETS)


def test_bnb_settings_load_4bit_layers_under_the_adapter(fixture_models) -> None:
    import bitsandbytes as bnb

    from turbo.modeling.loading import load_model
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.model import ModelSettings
    from turbo.settings.tokenizer import SpecialTokensSettings, TokenizerSettings

    settings = ModelSettings(
        model_path=fixture_models / "llama_tiny",
        bnb_settings=BNB,
        peft_settings={"name": "LORA", "r": 4, "target_modules": ["q_proj"]},
    )
    tokenizer = load_tokenizer(TokenizerSettings(), settings, SpecialTokensSettings())
    model = load_model(settings, tokenizer, TokenizerSettings())
    layers = [module for module in model.modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7  # every linear of the 2 decoder layers; the output head stays
    assert all(layer.weight.quant_type == "nf4" for layer in layers)
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
