"""train_grpo and train_ppo read `prompt` records ({"id"?, "prompt", "reference"?}) as a user writes them:
rendered with the chat template as one user message (or raw), the reference reaching the rewards'
rows, too-long prompts dropped and counted, a bad record named by file:line."""

from __future__ import annotations

import json
from pathlib import Path

from ..helpers import CONFIGS, read_jsonl, run_turbo

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
PPO = CONFIGS / "train" / "ppo" / "lora.json"


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def prompt_dataset(path: Path, **more: object) -> str:
    source = {"name": path.stem, "records_path": str(path), "sample_rate": 1.0}
    return json.dumps({"dataset_type": "prompt", "sources": [source], **more})


def arithmetic(tmp_path: Path) -> Path:
    """No ids; references as numbers and as text; the last prompt is too long for max_tokens_count."""
    rows: list[dict] = [{"prompt": f"What is {i} plus {i + 1}?", "reference": 2 * i + 1} for i in range(7)]
    rows[0]["reference"] = "1"
    rows.append({"prompt": "Why " * 80 + "?", "reference": "never used"})
    return write_lines(tmp_path / "arithmetic.jsonl", rows)


def test_grpo_trains_on_prompt_records(fixture_models, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    train = arithmetic(tmp_path)
    val = write_lines(
        tmp_path / "val.jsonl",
        [{"id": f"q{i}", "prompt": f"Say {i}", "reference": str(i), "note": "kept"} for i in range(3)],
    )
    folder = tmp_path / "grpo"
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", "trainer_settings.max_steps=2",
        "--set", "trainer_settings.eval_strategy=steps",
        "--set", "trainer_settings.eval_steps=2",
        "--set", f"train_dataset_settings={prompt_dataset(train, raw=True, max_tokens_count=32)}",
        "--set", f"val_dataset_settings={prompt_dataset(val)}",
    )  # fmt: skip
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2]
    report = json.loads((folder / "data_report.json").read_text())
    assert report["train"][0] | {"token_length_percentiles": None} == {
        "name": "arithmetic", "path": str(train), "read": 8, "sampled": 8, "used": 7, "truncated": 0,
        "dropped": {"longer than max_tokens_count": 1}, "token_length_percentiles": None,
    }  # fmt: skip
    # raw: the prompt text is the input as written; ids from the file and line; references as text
    preview = (folder / "samples_preview.txt").read_text()
    assert "(record arithmetic.jsonl:1)\nWhat is 0 plus 1?\nreference: 1\n" in preview
    assert "(record arithmetic.jsonl:2)\nWhat is 1 plus 2?\nreference: 3\n" in preview
    assert "<|user|>" not in preview
    # the chat template: each prompt is one user message followed by the bot's generation prefix
    tokenizer = AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")
    answers = read_jsonl(folder / "eval_answers" / "step_2.jsonl")
    assert [(row["id"], row["reference"]) for row in answers] == [("q0", "0"), ("q1", "1"), ("q2", "2")]
    for i, row in enumerate(answers):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"Say {i}"}], tokenize=False, add_generation_prompt=True
        )
        assert row["prompt"].removeprefix(tokenizer.bos_token or "") == rendered


def test_ppo_trains_on_prompt_records_and_names_a_bad_line(fixture_models, tmp_path: Path) -> None:
    train = arithmetic(tmp_path)
    folder = tmp_path / "ppo"
    common = ("train_ppo", "--experiment_settings_path", PPO, "--set", f"log_path={folder}")
    run_turbo(
        *common,
        "--set", "trainer_settings.max_steps=2",
        "--set", f"train_dataset_settings={prompt_dataset(train, max_tokens_count=48)}",
    )  # fmt: skip
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2] and "value_loss" in rows[0]
    assert (folder / "final" / "adapter_model.safetensors").is_file()

    bad = write_lines(
        tmp_path / "bad.jsonl", [{"prompt": "fine"}, {"prompt": "fine too"}, {"text": "no prompt"}]
    )
    result = run_turbo(
        *common, "--set", "overwrite_log_path=true",
        "--set", f"train_dataset_settings={prompt_dataset(bad)}",
        expect=2,
    )  # fmt: skip
    assert f"{bad}:3: prompt: Field required" in result.stderr and "Traceback" not in result.stderr
