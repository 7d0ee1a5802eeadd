"""Bad input gets one clear message and exit code 2, no traceback, and nothing half-written."""

import json
from pathlib import Path

import pytest

from ..helpers import CONFIGS, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"


def write_settings(tmp_path: Path, change) -> Path:
    data = json.loads(SFT.read_text())
    data["log_path"] = str(tmp_path / "run")
    change(data)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def write_records(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


GOOD = json.dumps(
    {"id": "1", "messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}
)


def source(path: str) -> list[dict]:
    return [{"name": "s", "records_path": path, "sample_rate": 1.0}]


def unknown_field(data, tmp_path):
    data["trainer_settings"]["per_device_train_batch"] = 2


def wrong_type(data, tmp_path):
    data["trainer_settings"]["max_steps"] = "many"


def both_amounts(data, tmp_path):
    data["train_dataset_settings"]["sources"][0]["num_samples"] = 2


def missing_records(data, tmp_path):
    data["train_dataset_settings"]["sources"][0]["records_path"] = "no/such/file.jsonl"


def malformed_line(data, tmp_path):
    data["train_dataset_settings"]["sources"] = source(
        write_records(tmp_path, [GOOD, '{"id": "2", "messages": '])
    )


def unknown_role(data, tmp_path):
    bad = json.dumps({"id": "2", "messages": [{"role": "narrator", "content": "x"}]})
    data["train_dataset_settings"]["sources"] = source(write_records(tmp_path, [GOOD, bad]))


def role_not_in_template(data, tmp_path):
    data["train_dataset_settings"]["prompt_template"]["role_tag_mapping"].pop("system")


def too_small(data, tmp_path):
    data["train_dataset_settings"]["max_tokens_count"] = 5


CASES = {
    unknown_field: (
        r"trainer_settings.per_device_train_batch: unknown field; did you mean 'per_device_train_batch_size'?"
    ),
    wrong_type: r"trainer_settings.max_steps: Input should be a valid integer",
    both_amounts: r"train_dataset_settings.sources.0: set exactly one of num_samples or sample_rate",
    missing_records: r"train_dataset_settings.sources.0.records_path: no/such/file.jsonl does not exist",
    malformed_line: r"records.jsonl:2: not valid JSON",
    unknown_role: r"records.jsonl:2: messages.0.role: Input should be 'user', 'bot' or 'system'",
    role_not_in_template: r"train_chat.jsonl:1: role 'system' is not in prompt_template.role_tag_mapping",
    too_small: (
        r"no usable record in the dataset: train_chat: 0 of 16 sampled records used; 16 dropped: longer"
    ),
}


@pytest.mark.parametrize("change", list(CASES), ids=lambda f: f.__name__)
def test_bad_settings_and_records(fixture_models, tmp_path: Path, change) -> None:
    path = write_settings(tmp_path, lambda data: change(data, tmp_path))
    result = run_turbo("train_sft", "--experiment_settings_path", path, expect=2)
    assert CASES[change] in result.stderr.replace("\\", "") or __import__("re").search(
        CASES[change], result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1
    assert not (tmp_path / "run" / "final").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_missing_settings_file_and_bad_json(tmp_path: Path) -> None:
    result = run_turbo("train_sft", "--experiment_settings_path", tmp_path / "nope.json", expect=2)
    assert f"error: {tmp_path / 'nope.json'}: settings file does not exist" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "seed": 1,\n  "log_path": \n}')
    result = run_turbo("validate", broken, expect=2)
    assert f"{broken}:4: not valid JSON" in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_turbo("train_sft", "--experiment_settings_path", tmp_path / "nope.json", "--debug", expect=2)
    assert "Traceback" in result.stderr and "settings file does not exist" in result.stderr


def test_bad_override_is_validated_like_the_file() -> None:
    result = run_turbo("validate", SFT, "--set", "trainer_settings.learning_rat=1", expect=2)
    assert "did you mean 'learning_rate'?" in result.stderr
