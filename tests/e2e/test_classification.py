"""train_classification and inference_classification end to end through the CLI."""

import json

import torch
from safetensors.torch import load_file

from ..helpers import CONFIGS, read_jsonl, run_turbo

TRAIN = CONFIGS / "train" / "classification" / "base.json"
INFERENCE = CONFIGS / "inference" / "classification" / "base.json"
EVAL_METRICS = (
    "eval_accuracy",
    "eval_balanced_accuracy",
    "eval_f1",
    "eval_precision",
    "eval_recall",
    "eval_roc_auc",
)


def test_train_then_predict(fixture_models, tmp_path) -> None:
    log_path = tmp_path / "train"
    run_turbo("train_classification", "--experiment_settings_path", TRAIN, "--set", f"log_path={log_path}")

    rows = read_jsonl(log_path / "metrics.jsonl")
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    evals = [row for row in rows if "eval_loss" in row]
    assert len(evals) == 2 and all(name in evals[-1] for name in EVAL_METRICS)
    assert evals[-1]["eval_accuracy"] >= 5 / 6

    before = load_file(fixture_models / "llama_seq_cls" / "model.safetensors")
    after = load_file(log_path / "final" / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters that did not train: {unchanged}"
    assert json.loads((log_path / "data_report.json").read_text())["train"][0]["used"] == 16

    save_path = tmp_path / "predictions"
    model_path = log_path / "final"
    run_turbo(
        "inference_classification",
        "--inference_settings_path",
        INFERENCE,
        "--set",
        f"save_path={save_path}",
        "--set",
        f"inference_settings.0.model_settings.model_path={model_path}",
    )
    val = read_jsonl(save_path / "model_0" / "val_classification.jsonl")
    train = read_jsonl(save_path / "model_0" / "train_classification.jsonl")
    assert len(val) == 6 and len(train) == 5
    for row in val + train:
        probabilities = row["probabilities"]
        assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-5
        assert row["predicted_label"] == max(range(2), key=probabilities.__getitem__)
    assert sum(row["predicted_label"] == row["label"] for row in val) >= 5


def test_a_record_without_label_names_its_line(fixture_models, tmp_path) -> None:
    records = tmp_path / "bad.jsonl"
    good = {"id": "a", "messages": [{"role": "user", "content": "hello"}], "label": 1}
    records.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "label": None}) + "\n")
    result = run_turbo(
        "train_classification",
        "--experiment_settings_path",
        TRAIN,
        "--set",
        f"log_path={tmp_path / 'run'}",
        "--set",
        f"train_dataset_settings.sources.0.records_path={records}",
        expect=2,
    )
    assert f"{records}:2: label: missing" in result.stderr
