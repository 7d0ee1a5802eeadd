"""logging_settings: tensorboard and wandb (offline, no network) write their logs to the experiment folder."""

import json
import re
from pathlib import Path

import pytest

from ..helpers import CONFIGS, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"
LOGGERS = {
    "tensorboard": ({"logging_type": "tensorboard"}, "tensorboard/events.out.tfevents.*"),
    # the old turbo-alignment form: a wandb block without logging_type
    "wandb": (
        {"project_name": "turbo-tests", "run_name": "sft", "mode": "offline"},
        "wandb/offline-run-*/*.wandb",
    ),
}


@pytest.mark.parametrize("name", sorted(LOGGERS))
def test_logger_writes_into_the_experiment_folder(fixture_models, tmp_path: Path, name: str) -> None:
    pytest.importorskip(name)
    logging_settings, pattern = LOGGERS[name]
    folder = tmp_path / "run"
    run_turbo(
        "train_sft",
        "--experiment_settings_path",
        SFT,
        *("--set", f"log_path={folder}"),
        *("--set", f"logging_settings={json.dumps(logging_settings)}"),
        *("--set", "trainer_settings.max_steps=3"),
        *("--set", "trainer_settings.evaluation_strategy=no"),
        *("--set", "cherry_pick_settings=null"),
    )
    logs = list(folder.glob(pattern))
    assert logs and all(path.stat().st_size > 0 for path in logs), sorted(folder.rglob("*"))


EVALUATE = [
    *("--set", "trainer_settings.max_steps=2"),
    *("--set", "trainer_settings.eval_steps=2"),
    *("--set", 'cherry_pick_settings.metric_settings=[{"type": "length"}]'),
]


def test_wandb_takes_its_mode_from_the_environment_and_every_field_and_metric(
    fixture_models, tmp_path: Path, monkeypatch
) -> None:
    """The original layout (project_name, run_name, entity) with WANDB_MODE=offline in the environment and no
    `mode`: the run stays offline (it used to force online and fail to log in)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    logging_settings = {
        "project_name": "turbo-tests",
        "run_name": "sft-run",
        "entity": "turbo-team",
        "tags": ["tag-one", "tag-two"],
        "notes": "notes-for-the-run",
        "group": "group-of-runs",
    }
    folder = tmp_path / "run"
    run_turbo(
        "train_sft",
        *("--experiment_settings_path", SFT, "--set", f"log_path={folder}"),
        *("--set", f"logging_settings={json.dumps(logging_settings)}"),
        *EVALUATE,
    )
    (log,) = folder.glob("wandb/offline-run-*/*.wandb")
    data = log.read_bytes()
    for text in (
        "turbo-tests",
        "sft-run",
        "turbo-team",
        "tag-one",
        "tag-two",
        "notes-for-the-run",
        "group-of-runs",
    ):
        assert text.encode() in data, text
    assert b"cherry_pick/cherry_pick_chat/length_words" in data


def test_clearml_runs_offline_with_project_task_tags_and_the_cherry_pick_metrics(
    fixture_models, tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("clearml")
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(tmp_path / "clearml"))
    logging_settings = {
        "logging_type": "clearml",
        "project_name": "turbo-tests",
        "task_name": "sft-task",
        "tags": ["tag-one", "tag-two"],
        "mode": "offline",
    }
    result = run_turbo(
        "train_sft",
        *("--experiment_settings_path", SFT, "--set", f"log_path={tmp_path / 'run'}"),
        *("--set", f"logging_settings={json.dumps(logging_settings)}"),
        *EVALUATE,
    )
    found = re.search(r"offline mode, session stored in (\S+)", result.stdout + result.stderr)
    assert found, result.stderr[-3000:]
    session = Path(found.group(1))
    task = json.loads((session / "task.json").read_text())
    assert (task["project_name"], task["name"], sorted(task["tags"])) == (
        "turbo-tests",
        "sft-task",
        ["tag-one", "tag-two"],
    )
    events = [
        event for line in (session / "metrics.jsonl").read_text().splitlines() for event in json.loads(line)
    ]
    scalars = {(e["metric"], e["variant"], e["iter"]) for e in events if e["type"] == "training_stats_scalar"}
    assert {("train", "loss", 1), ("train", "loss", 2), ("eval", "loss", 2)} <= scalars
    assert ("cherry_pick/cherry_pick_chat", "length_words", 2) in scalars
