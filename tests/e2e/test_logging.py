"""logging_settings: tensorboard and wandb (offline, no network) write their logs to the experiment folder."""

import json
from pathlib import Path

import pytest

from ..conftest import CONFIGS, run_turbo

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
