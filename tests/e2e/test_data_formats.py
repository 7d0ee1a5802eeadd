"""Record sources as users have them: a JSON array file (LLaVA, DeepSpeed-VisualChat), Parquet, a
`datasets` folder written by save_to_disk; records without an `id`. Through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from ..helpers import CONFIGS, DATASETS, read_jsonl, run_turbo

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


def test_split_ratio_data_ratio_and_debug_samples(fixture_models, tmp_path: Path) -> None:
    def options(data: dict) -> None:
        data["train_dataset_settings"]["sources"] = [
            {
                "name": "chat",
                "records_path": "tests/fixtures/datasets/chat/train_chat.jsonl",
                "sample_rate": 2.0,
            }
        ]
        data["data_ratio"] = 0.75  # 32 samples -> 24
        data["data_train_split_ratio"] = 0.75  # 24 -> 18 trained, 6 evaluated
        data["data_debug_path"] = str(tmp_path / "debug")
        data["trainer_settings"].update(
            evaluation_strategy="steps", eval_steps=2, per_device_eval_batch_size=6
        )

    result = run_turbo("train_sft", "--experiment_settings_path", write_config(tmp_path, options))
    assert "training on 18 samples, 6 held out for evaluation" in result.stderr
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [row["step"] for row in rows if "eval_loss" in row] == [2]
    debug = read_jsonl(tmp_path / "debug" / "train_samples.jsonl")
    assert len(debug) == 10
    first = debug[0]
    assert first["where"].startswith("tests/fixtures/datasets/chat/train_chat.jsonl:")
    assert len(first["input_ids"]) == len(first["labels"])
    trained = [t for t, label in zip(first["input_ids"], first["labels"], strict=True) if label != -100]
    assert trained and first["text"].count("[[") >= 1 and first["text"].endswith("</RS></s>]]")


def test_split_is_deterministic_by_seed() -> None:
    from turbo.data.debug import share_and_split

    samples = list(range(40))
    first = share_and_split(samples, 0.5, 0.8, seed=3)
    assert first == share_and_split(samples, 0.5, 0.8, seed=3)
    assert first != share_and_split(samples, 0.5, 0.8, seed=4)
    train, held = first
    assert (len(train), len(held)) == (16, 4) and not set(train) & set(held)
    assert train == sorted(train) and held == sorted(held)


def test_split_ratio_and_val_dataset_together_are_refused(tmp_path: Path) -> None:
    def both(data: dict) -> None:
        data["data_train_split_ratio"] = 0.9
        data["val_dataset_settings"] = data["train_dataset_settings"]

    result = run_turbo("validate", write_config(tmp_path, both), "--command", "train_sft", expect=2)
    assert "data_train_split_ratio: holds out an evaluation split, but val_dataset_settings is set too" in (
        result.stderr
    )


def test_dataset_num_proc_gives_the_ids_of_one_process(fixture_models, tmp_path: Path) -> None:
    from turbo.data.chat import build_chat_samples
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.loading import load_settings
    from turbo.settings.pipelines.train.sft import SftExperimentSettings

    def many(data: dict) -> None:
        data["train_dataset_settings"]["sources"][0]["sample_rate"] = 40.0  # 320 records
        data["train_dataset_settings"]["dataset_num_proc"] = 2
        data["data_debug_path"] = str(tmp_path / "debug")

    path = write_config(tmp_path, many)
    run_turbo("train_sft", "--experiment_settings_path", path)
    settings = load_settings(path, SftExperimentSettings)
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    one = settings.train_dataset_settings.model_copy(update={"dataset_num_proc": None})
    single, _ = build_chat_samples(one, tokenizer, seed=settings.seed)
    parallel, _ = build_chat_samples(settings.train_dataset_settings, tokenizer, seed=settings.seed)
    from turbo.data import parallel as workers

    assert (id(tokenizer), 2) in workers._pools  # the two processes did tokenise
    workers.close_pools()
    assert len(single) == 320 and [s.input_ids for s in parallel] == [s.input_ids for s in single]
    assert [s.labels for s in parallel] == [s.labels for s in single]
    debug = read_jsonl(tmp_path / "debug" / "train_samples.jsonl")
    assert [row["input_ids"] for row in debug] == [s.input_ids for s in single[:10]]
