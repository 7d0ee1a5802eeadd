"""`validate` without --command takes the command from the file, or asks for --command; it never
blames a field that is fine because it guessed the wrong command."""

import copy
import json
import re
from pathlib import Path

import pytest

from turbo.errors import SettingsError
from turbo.pipelines.tools.validate import identify

from ...helpers import CONFIGS, REPO

# the original project's files (configs/original) have their own test: tests/e2e/test_original_configs.py
FIXTURE_CONFIGS = sorted(path for path in CONFIGS.rglob("*.json") if "original" not in path.parts)
# the command each fixture folder is written for
EXPECTED = {
    "train/sft": "train_sft", "train/dpo": "train_dpo", "train/kto": "train_kto", "train/rm": "train_rm",
    "train/classification": "train_classification", "train/multimodal": "train_multimodal",
    "train/ddpo": "train_ddpo", "train/multimodal_dpo": "train_multimodal_dpo",
    "inference/chat": "inference_chat", "inference/classification": "inference_classification",
    "inference/rm": "inference_rm", "inference/multimodal": "inference_multimodal",
    "sampling/random": "random_sample", "sampling/rm": "rm_sample", "sampling/rso": "rso_sample",
    "preprocessing": "preprocess_multimodal_dataset", "merge": "merge_adapters_to_base",
    "export": "export_llava", "build_index": "build_index", "inference/rag": "inference_rag",
    "train/rag": "train_rag", "train/grpo": "train_grpo", "train/ppo": "train_ppo",
}  # fmt: skip
ASKS_FOR_COMMAND = "pass --command to say which one it is for"


def expected_command(path: Path) -> str:
    folder = path.parent.relative_to(CONFIGS).as_posix()
    return EXPECTED.get(folder) or EXPECTED[f"{folder}/{path.stem}"]


def blocks(data: dict, prefix: str = ""):
    """(field path, block) for every JSON object in the file."""
    for key, value in data.items():
        items = [(f"{prefix}{key}", value)] if isinstance(value, dict) else []
        if isinstance(value, list):
            items = [(f"{prefix}{key}.{i}", item) for i, item in enumerate(value) if isinstance(item, dict)]
        for where, block in items:
            yield where, block
            yield from blocks(block, f"{where}.")


def error_of(path: Path) -> str:
    with pytest.raises(SettingsError) as info:
        identify(path, [], None)
    return str(info.value)


def error_or_none(path: Path) -> str | None:
    try:
        identify(path, [], None)
    except SettingsError as exc:
        return str(exc)
    return None  # a free-form block (model_kwargs) takes any key


@pytest.mark.parametrize("path", FIXTURE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_fixture_config_validates_as_its_command_without_command(path: Path) -> None:
    command, _ = identify(path, [], None)
    assert command.name == expected_command(path)


@pytest.mark.parametrize("path", FIXTURE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_unknown_keys_are_the_only_problems_reported(tmp_path: Path, path: Path) -> None:
    """In every block of every fixture, 1 to 3 unknown keys: the error names those keys and nothing
    else (the old guess, by fewest errors, blamed e.g. a DPO file's loss_settings as train_rm's)."""
    data = json.loads(path.read_text())
    for where, _ in list(blocks(data)):
        for count in (1, 3):
            damaged = copy.deepcopy(data)
            block = damaged
            for part in where.split("."):
                block = block[int(part)] if isinstance(block, list) else block[part]
            block.update({f"zz_unknown_{i}": 1 for i in range(count)})
            case = tmp_path / "case.json"
            case.write_text(json.dumps(damaged))
            text = error_or_none(case)
            if text is None or ASKS_FOR_COMMAND in text.splitlines()[0]:
                continue
            head, *lines = text.splitlines()
            settings_problems = re.search(r"(\d+) problems? in the settings", head)
            assert settings_problems and lines, text
            lines = lines[: int(settings_problems.group(1))]  # then the preflight's (files of earlier runs)
            blamed = [line for line in lines if "zz_unknown_" not in line.split(": ")[0]]
            assert not blamed, f"{path.name}, {count} unknown keys in {where}:\n{text}"


def test_a_file_that_fits_two_commands_asks_for_command(tmp_path: Path) -> None:
    """An inference_rm file on chat records is also a valid inference_chat file: no guess."""
    data = json.loads((CONFIGS / "inference" / "rm" / "pairs.json").read_text())
    data["dataset_settings"] = json.loads((CONFIGS / "inference" / "chat" / "base.json").read_text())[
        "dataset_settings"
    ]
    path = tmp_path / "rm_on_chat.json"
    path.write_text(json.dumps(data))
    text = error_of(path)
    assert "valid settings for each of: inference_chat, inference_rm" in text and ASKS_FOR_COMMAND in text
    command, settings = identify(path, [], "inference_rm")
    assert command.name == "inference_rm" and settings.dataset_settings.dataset_type == "chat"


def test_a_file_whose_keys_fit_no_command_asks_for_command(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text('{"experiment": {"lr": 1}}')
    text = error_of(path)
    assert "none of its keys is a setting of a command" in text and ASKS_FOR_COMMAND in text


def dataset_types(annotation: object, seen: set) -> set[str]:
    """Every dataset_type a settings class (or a type inside its fields) accepts."""
    from typing import Literal, get_args, get_origin

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return set()
        seen.add(annotation)
        found: set[str] = set()
        for name, field in annotation.model_fields.items():
            if name == "dataset_type" and get_origin(field.annotation) is Literal:
                found |= set(get_args(field.annotation))
            else:
                found |= dataset_types(field.annotation, seen)
        return found
    return {found for arg in get_args(annotation) for found in dataset_types(arg, seen)}


def test_every_dataset_type_of_every_command_has_a_data_builder() -> None:
    """`validate --data` reads every dataset any command takes: the table cannot drift from the types."""
    from turbo.pipelines.tools.validate import DATA_BUILDERS
    from turbo.settings.commands import COMMANDS, load_object

    seen: set = set()
    models = [load_object(command.settings) for command in COMMANDS.values()]
    types = {found for model in models for found in dataset_types(model, seen)}
    assert {"chat", "pair_preferences", "multimodal", "rm", "prompt"} <= types
    assert set(DATA_BUILDERS) == types
