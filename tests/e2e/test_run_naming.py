"""run_name and group_name reach the loggers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..helpers import CONFIGS, run_turbo

CONFIG = CONFIGS / "train" / "sft" / "json_array.json"


def test_tensorboard_logs_under_group_and_run_name(fixture_models, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logging_settings = {"logging_type": "tensorboard", "run_name": "lr-3e-3", "group_name": "sweep"}
    folder = tmp_path / "run"
    run_turbo(
        "train_sft", "--experiment_settings_path", CONFIG,
        "--set", f"log_path={folder}", "--set", f"logging_settings={json.dumps(logging_settings)}",
    )  # fmt: skip
    logs = list((folder / "tensorboard" / "sweep" / "lr-3e-3").glob("events.out.tfevents.*"))
    assert logs and all(path.stat().st_size > 0 for path in logs), sorted(folder.rglob("*"))


def test_wandb_gets_the_run_name_and_group(tmp_path: Path, monkeypatch) -> None:
    from turbo.pipelines.train.common import report_to, training_arguments
    from turbo.settings.loading import load_settings
    from turbo.settings.pipelines.train.sft import SftExperimentSettings

    wandb = {"project_name": "p", "run_name": "lr-3e-3", "group_name": "sweep", "mode": "offline"}
    settings = load_settings(
        CONFIG, SftExperimentSettings, [f"logging_settings={json.dumps(wandb)}", f"log_path={tmp_path}"]
    )
    for name in ("WANDB_RUN_GROUP", "WANDB_PROJECT", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.setenv(name, "")  # restored after the test
    assert report_to(settings, tmp_path) == ["wandb"]
    assert os.environ["WANDB_RUN_GROUP"] == "sweep"
    assert training_arguments(settings, tmp_path).run_name == "lr-3e-3"
