"""Record sources as users have them: a JSON array file (LLaVA, DeepSpeed-VisualChat), Parquet, a
`datasets` folder written by save_to_disk; records without an `id`. Through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import CONFIGS, DATASETS, read_jsonl, run_turbo

CONFIG = CONFIGS / "train" / "sft" / "json_array.json"
ARRAY = DATASETS / "chat" / "train_chat_array.json"


def write_config(tmp_path: Path, change=None) -> Path:
    data = json.loads(CONFIG.read_text())
    data["log_path"] = str(tmp_path / "run")
    if change is not None:
        change(data)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    return path


def test_json_array_parquet_and_datasets_folder_train(fixture_models, tmp_path: Path) -> None:
    import datasets

    records = json.loads(ARRAY.read_text())
    parquet = tmp_path / "chat.parquet"
    datasets.Dataset.from_list(records[:5]).to_parquet(str(parquet))
    folder = tmp_path / "chat_dataset"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(records[:3])}).save_to_disk(str(folder))

    def sources(data: dict) -> None:
        data["train_dataset_settings"]["sources"] += [
            {"name": "parquet", "records_path": str(parquet), "sample_rate": 1.0},
            {"name": "saved", "records_path": str(folder), "sample_rate": 1.0},
        ]

    run_turbo("train_sft", "--experiment_settings_path", write_config(tmp_path, sources))
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert [(s["name"], s["read"], s["used"]) for s in report["train"]] == [
        ("llava_style_array", 8, 8),
        ("parquet", 5, 5),
        ("saved", 3, 3),
    ]
    preview = (tmp_path / "run" / "samples_preview.txt").read_text()
    # no id in the files: a stable one from the file and the position
    where = "tests/fixtures/datasets/chat/train_chat_array.json[0]"
    assert f"(record train_chat_array.json:0, {where})" in preview
    assert [row["step"] for row in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in row] == [1, 2]


def records_at(path: Path):
    return lambda data: data["train_dataset_settings"]["sources"][0].update(records_path=str(path))


def test_bad_records_are_named_by_file_and_index(fixture_models, tmp_path: Path) -> None:
    import datasets

    records = json.loads(ARRAY.read_text())
    records[2]["messages"][0]["role"] = "narrator"
    array = tmp_path / "bad.json"
    array.write_text(json.dumps(records))
    path = write_config(tmp_path, records_at(array))
    result = run_turbo("train_sft", "--experiment_settings_path", path, expect=2)
    assert f"{array}[2]: messages.0.role: Input should be 'user', 'bot' or 'system'" in result.stderr
    assert "Traceback" not in result.stderr

    parquet = tmp_path / "bad.parquet"
    datasets.Dataset.from_list(records).to_parquet(str(parquet))
    path = write_config(tmp_path, records_at(parquet))
    result = run_turbo("train_sft", "--experiment_settings_path", path, expect=2)
    assert f"{parquet}[2]: messages.0.role" in result.stderr and "Traceback" not in result.stderr
