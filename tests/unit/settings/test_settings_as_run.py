"""The settings a run writes (experiment_settings.json) validate again, to the same settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turbo.errors import SettingsError
from turbo.pipelines.tools.validate import identify
from turbo.settings.base import settings_as_run
from turbo.settings.loading import read_settings_file
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings

from ...helpers import CONFIGS, REPO

FIXTURE_CONFIGS = sorted(path for path in CONFIGS.rglob("*.json") if "refused" not in path.parts)
TRAIN_CONFIGS = [path for path in FIXTURE_CONFIGS if path.relative_to(CONFIGS).parts[0] == "train"]


def round_trip(path: Path, overrides: list[str] | None = None) -> None:
    command, settings = identify(path, overrides or [], None)
    dump = json.loads(json.dumps(settings_as_run(settings)))  # as the file on disk holds it
    again = type(settings).model_validate(dump)
    assert again == settings
    assert settings_as_run(again) == dump


def test_every_train_command_has_a_fixture_config() -> None:
    from turbo.settings.commands import COMMANDS, load_object

    trained = {identify(path, [], None)[0].settings for path in TRAIN_CONFIGS}
    train_commands = {
        command.settings
        for command in COMMANDS.values()
        if issubclass(load_object(command.settings), BaseTrainExperimentSettings)
    }
    assert train_commands <= trained, sorted(train_commands - trained)


@pytest.mark.parametrize("path", FIXTURE_CONFIGS, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_the_settings_as_run_validate_again(path: Path) -> None:
    if "original" in path.parts:
        try:
            identify(path, [], None)
        except SettingsError:
            pytest.skip("an original file turbo refuses (tests/e2e/test_original_configs.py says which)")
    round_trip(path)


def test_trainer_settings_seed_in_the_originals_layout(tmp_path: Path) -> None:
    """`trainer_settings.seed` without a top-level seed: the dump must not add `seed: 42` beside it."""
    data = read_settings_file(CONFIGS / "train" / "sft" / "lora.json")
    data.pop("seed", None)
    data["trainer_settings"]["seed"] = 7
    path = tmp_path / "seeded.json"
    path.write_text(json.dumps(data))
    _, settings = identify(path, [], None)
    dump = settings_as_run(settings)
    assert "seed" not in dump and dump["trainer_settings"]["seed"] == 7
    again = type(settings).model_validate(dump)
    assert again.training_seed == 7
    round_trip(path)
