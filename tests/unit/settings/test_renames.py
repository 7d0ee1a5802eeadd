"""Every rename lives in settings/aliases.py and points at a real class and field; old names validate."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

import turbo.settings
from turbo.settings.aliases import RENAMED_FIELDS
from turbo.settings.logging import LoggingSettings
from turbo.settings.model import LoraSettings


def settings_classes() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.walk_packages(turbo.settings.__path__, "turbo.settings."):
        for value in vars(importlib.import_module(info.name)).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                found.setdefault(value.__name__, value)
    return found


@pytest.mark.parametrize("class_name", sorted(RENAMED_FIELDS))
def test_each_rename_names_a_settings_class_and_its_field(class_name: str) -> None:
    klass = settings_classes()[class_name]
    for old, new in RENAMED_FIELDS[class_name].items():
        assert new in klass.model_fields, f"{class_name}: {old} -> {new}, which is not a field"
        assert old not in klass.model_fields


def test_old_names_validate_and_both_names_are_refused() -> None:
    assert LoraSettings.model_validate({"name": "LORA", "lora_bias": "lora_only"}).bias == "lora_only"
    with pytest.raises(ValidationError, match="'lora_bias' is the old name of 'bias'"):
        LoraSettings.model_validate({"name": "LORA", "lora_bias": "all", "bias": "none"})
    wandb = TypeAdapter(LoggingSettings).validate_python({"project_name": "p", "group_name": "sweep"})
    assert wandb.logging_type == "wandb" and wandb.group == "sweep"
    tensorboard = TypeAdapter(LoggingSettings).validate_python(
        {"logging_type": "tensorboard", "group_name": "g"}
    )
    assert tensorboard.group_name == "g"  # tensorboard's own field keeps the name
