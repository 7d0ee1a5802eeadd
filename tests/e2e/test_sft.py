"""train_sft end to end through the CLI on the tiny llama, then merge and inference on its output."""

import json
from pathlib import Path

import pytest
import torch

from ..helpers import CONFIGS, assert_every_tensor_changed, assert_loss_falls, losses, read_jsonl, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"


@pytest.fixture(scope="module")
def lora_run(fixture_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sft") / "lora"
    run_turbo("train_sft", "--experiment_settings_path", SFT, "--set", f"log_path={folder}")
    return folder


def test_lora_training_writes_the_experiment_folder(lora_run: Path) -> None:
    assert json.loads((lora_run / "experiment_settings.json").read_text())["log_path"] == str(lora_run)
    final = lora_run / "final"
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (final / name).is_file(), name
    assert not (final / "training_args.bin").exists()
    assert sorted(p.name for p in (lora_run / "checkpoints").iterdir()) == ["checkpoint-20", "checkpoint-40"]
    assert not list(lora_run.glob(".*tmp*"))
    preview = (lora_run / "samples_preview.txt").read_text()
    assert "[[The capital of France is Paris.</RS></s>]]" in preview
    report = json.loads((lora_run / "data_report.json").read_text())
    assert report["train"][0]["used"] == 16 and report["val"][0]["used"] == 6


def test_lora_loss_falls_and_metrics_are_logged(lora_run: Path) -> None:
    assert_loss_falls(lora_run)
    rows = read_jsonl(lora_run / "metrics.jsonl")
    steps = [row["step"] for row in rows if "loss" in row]
    assert steps == list(range(1, 41))
    assert all(row["learning_rate"] == pytest.approx(0.003) for row in rows if "loss" in row)
    assert any(row.get("tokens_per_second", 0) > 0 for row in rows)
    assert [row["step"] for row in rows if "eval_loss" in row] == [20, 40]


def test_every_trainable_parameter_changed(lora_run: Path) -> None:
    weights = assert_every_tensor_changed(
        lora_run / "checkpoints" / "checkpoint-20" / "adapter_model.safetensors",
        lora_run / "final" / "adapter_model.safetensors",
    )
    lora_b = [name for name in weights if "lora_B" in name]
    assert len(lora_b) == 2 * 4  # 2 layers x q, k, v, o
    assert all(weights[name].abs().sum() > 0 for name in lora_b)  # B starts at zero
    assert any("embed_tokens" in name for name in weights) and any("lm_head" in name for name in weights)


def test_cherry_picks_are_generated_at_each_evaluation(lora_run: Path) -> None:
    for step in (20, 40):
        rows = read_jsonl(lora_run / "cherry_picks" / f"step_{step}.jsonl")
        assert len(rows) == 2
        assert all(len(row["answers"]) == 1 and row["dataset_name"] == "cherry_pick_chat" for row in rows)
        assert all("</RS>" not in row["answers"][0]["content"] for row in rows)


def test_merge_gives_the_logits_of_base_plus_adapter(lora_run: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final, merged_path = lora_run / "final", tmp_path / "merged"
    run_turbo(
        "merge_adapters_to_base",
        "--settings_path",
        CONFIGS / "merge" / "lora.json",
        "--set",
        f"adapter_path={final}",
        "--set",
        f"tokenizer_settings.tokenizer_path={final}",
        "--set",
        f"save_path={merged_path}",
    )
    assert (merged_path / "model.safetensors").is_file() and (merged_path / "tokenizer.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained("tests/fixtures/models/llama_tiny")
    base.resize_token_embeddings(len(tokenizer))
    reference = PeftModel.from_pretrained(base, final).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_path).eval()
    ids = tokenizer("<RS><user>What is the capital of Peru?</RS><RS><bot>", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, reference(ids).logits, atol=1e-5, rtol=0)


def test_inference_with_the_trained_adapter(lora_run: Path, tmp_path: Path) -> None:
    settings = {
        "inference_settings": [
            {
                "model_settings": {
                    "model_path": "tests/fixtures/models/llama_tiny",
                    "adapter_path": str(lora_run / "final"),
                    "resize_token_embeddings": True,
                },
                "tokenizer_settings": {"tokenizer_path": str(lora_run / "final")},
                "generation_settings": [
                    {"transformers_settings": {"max_new_tokens": 12, "stop_strings": ["</RS>"]}},
                ],
                "batch": 3,
            }
        ],
        "dataset_settings": json.loads(SFT.read_text())["train_dataset_settings"],
        "save_path": str(tmp_path / "answers"),
    }
    path = tmp_path / "inference.json"
    path.write_text(json.dumps(settings))
    run_turbo("inference_chat", "--inference_settings_path", path)
    rows = read_jsonl(tmp_path / "answers" / "model_0" / "generation_0" / "train_chat.jsonl")
    assert len(rows) == 16
    answers = [row["answers"][0]["content"] for row in rows]
    # the adapter learned the answers' form (the random base model writes byte soup), cut at the stop string
    assert all(answer.startswith("The ") and "</RS>" not in answer for answer in answers), answers


@pytest.mark.parametrize(
    "peft",
    [
        {"name": "PROMPT_TUNING", "num_virtual_tokens": 8, "prompt_tuning_init_text": "What is the capital"},
        {"name": "PREFIX_TUNING", "num_virtual_tokens": 8},
        {"name": "P_TUNING", "num_virtual_tokens": 8, "encoder_hidden_size": 32},
    ],
    ids=lambda p: p["name"],
)
def test_prompt_learning_methods_train(fixture_models, tmp_path: Path, peft: dict) -> None:
    folder = tmp_path / "run"
    train_data = json.loads(SFT.read_text())["train_dataset_settings"]
    run_turbo(
        "train_sft",
        "--experiment_settings_path",
        SFT,
        *("--set", f"log_path={folder}"),
        *("--set", f"model_settings.peft_settings={json.dumps(peft)}"),
        *("--set", f"val_dataset_settings={json.dumps(train_data)}"),  # evaluate on the overfit set
        *("--set", "trainer_settings.eval_on_start=true"),
        *("--set", "trainer_settings.max_steps=24"),
        *("--set", "trainer_settings.save_steps=12"),
        *("--set", "trainer_settings.eval_steps=24"),
        *("--set", "trainer_settings.learning_rate=0.3"),
        *("--set", "cherry_pick_settings=null"),
    )
    evals = [row["eval_loss"] for row in read_jsonl(folder / "metrics.jsonl") if "eval_loss" in row]
    assert len(evals) == 2 and evals[1] < evals[0] - 0.05, evals
    config = json.loads((folder / "final" / "adapter_config.json").read_text())
    assert config["peft_type"] == peft["name"]
    assert_every_tensor_changed(
        folder / "checkpoints" / "checkpoint-12" / "adapter_model.safetensors",
        folder / "final" / "adapter_model.safetensors",
        frozen_parts=("embed_tokens", "lm_head"),
    )


def test_packed_chunked_run_equals_the_plain_loss_and_reuses_the_tokenised_data(
    fixture_models, tmp_path: Path, monkeypatch
) -> None:
    """Packed, padding-free batches with the chunked loss (the default) log the same first loss as the
    plain full-logits loss; the second run reads the tokenised dataset from the cache."""
    monkeypatch.setenv("TURBO_DATASET_CACHE", str(tmp_path / "cache"))
    common = [
        "--set", "val_dataset_settings=null",
        "--set", "cherry_pick_settings=null",
        "--set", "model_settings.peft_settings.modules_to_save=null",
        "--set", "train_dataset_settings.pack_to_max_length=true",
        "--set", "trainer_settings.evaluation_strategy=no",
        "--set", "trainer_settings.save_strategy=no",
        "--set", "trainer_settings.max_steps=2",
    ]  # fmt: skip
    runs = {}
    for name, chunked in (("chunked", "true"), ("plain", "false")):
        folder = tmp_path / name
        result = run_turbo(
            "train_sft", "--experiment_settings_path", SFT, *common,
            "--set", f"trainer_settings.chunked_cross_entropy={chunked}", "--set", f"log_path={folder}",
        )  # fmt: skip
        runs[name] = (losses(folder), result.stdout + result.stderr)
    assert "tokenised dataset cached" in runs["chunked"][1]
    assert "tokenised dataset read from the cache" in runs["plain"][1]
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 1
    assert runs["chunked"][0][0] == pytest.approx(runs["plain"][0][0], abs=1e-4)


def test_padding_free_batches_train_like_padded_ones(fixture_models, tmp_path: Path) -> None:
    """Unpacked batches are padding-free by default (one row, no pad position): the logged loss of each
    step equals that of padded rows (trainer_settings.padding_free: false)."""
    common = [
        "--set", "val_dataset_settings=null",
        "--set", "cherry_pick_settings=null",
        "--set", "model_settings.peft_settings.modules_to_save=null",
        "--set", "trainer_settings.evaluation_strategy=no",
        "--set", "trainer_settings.save_strategy=no",
        "--set", "trainer_settings.max_steps=2",
        "--set", "trainer_settings.logging_steps=1",
    ]  # fmt: skip
    runs = {}
    for name, padding_free in (("flat", "true"), ("padded", "false")):
        folder = tmp_path / name
        run_turbo(
            "train_sft", "--experiment_settings_path", SFT, *common,
            "--set", f"trainer_settings.padding_free={padding_free}", "--set", f"log_path={folder}",
        )  # fmt: skip
        runs[name] = losses(folder)
    assert len(runs["flat"]) == 2
    assert runs["flat"] == pytest.approx(runs["padded"], abs=1e-4)
