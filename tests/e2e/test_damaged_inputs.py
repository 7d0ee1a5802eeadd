"""Damaged inputs through the real CLI: one message naming the file, field or line, exit code 2."""

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


def records_folder(data: dict, tmp_path: Path) -> str:
    data["train_dataset_settings"]["sources"][0]["records_path"] = str(tmp_path)
    return f"records_path: {tmp_path} is a folder, expected a records file"


def log_path_under_a_file(data: dict, tmp_path: Path) -> str:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    data["log_path"] = str(blocker / "run")
    return f"log_path: {blocker} is a file, so no folder can be made under it"


@pytest.mark.parametrize("change", [records_folder, log_path_under_a_file], ids=lambda f: f.__name__)
def test_damaged_inputs_of_a_training_run(fixture_models, tmp_path: Path, change) -> None:
    expected: list[str] = []
    path = write_settings(tmp_path, lambda data: expected.append(change(data, tmp_path)))
    result = run_turbo("train_sft", "--experiment_settings_path", path, expect=2)
    assert expected[0] in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert not (tmp_path / "run" / "final").exists()


def test_a_settings_file_in_utf16_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(SFT.read_text().encode("utf-16"))
    result = run_turbo("validate", path, "--command", "train_sft", expect=2)
    assert (
        result.stderr
        == f"error: {path}:1: not UTF-8: byte 0xff at byte offset 0; it looks like UTF-16: save it as UTF-8\n"
    )
