"""The settings reference (docs/settings.md), generated from the models so it cannot drift.

python -m turbo.cli.reference > docs/settings.md
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from turbo.settings.commands import COMMANDS, load_object


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return (
            f"`{field.default_factory()!r}`"
            if not isinstance(field.default_factory(), BaseModel)
            else "(defaults)"
        )
    if field.default is PydanticUndefined:
        return "**required**"
    if isinstance(field.default, BaseModel):
        return "(defaults)"
    return f"`{field.default!r}`"


@functools.cache
def _training_arguments_help() -> dict[str, str]:
    """The help text of each transformers.TrainingArguments field (TrainerSettings mirrors them)."""
    import dataclasses

    from transformers import TrainingArguments

    return {
        field.name: " ".join(str(field.metadata.get("help", "")).split())
        for field in dataclasses.fields(TrainingArguments)
    }


def _first_line(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    return "" if doc.startswith(("Usage docs", "!!! abstract")) else doc.strip().split("\n\n")[0]


def describe(model: type[BaseModel], name: str, field: Any) -> str:
    """The field's own description; else, for a field that holds one settings model, that model's
    docstring; for a variant's tag, the variant it selects; for a trainer field that mirrors
    transformers.TrainingArguments, its help."""
    from turbo.settings.trainer import TrainerSettings

    if field.description:
        return field.description
    models = _models_in(field.annotation)
    if len(models) == 1 and _first_line(models[0]):
        return " ".join(_first_line(models[0]).split())
    tags = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
    if len(tags) == 1:  # the tag of a variant (dataset_type, loss_type, type, name, ...)
        return f"Selects this variant ({model.__name__}): write {tags[0]!r}."
    if issubclass(model, TrainerSettings):
        help_text = _training_arguments_help().get(name)
        if help_text:
            return f"As transformers.TrainingArguments.{name}: {help_text}"
    return ""


def _section(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    if model in seen:
        return []
    seen.add(model)
    lines = [f"### {model.__name__}", ""]
    if model.__doc__ and not model.__doc__.startswith(("Usage docs", "!!! abstract")):
        lines += [model.__doc__.strip().splitlines()[0], ""]
    lines += ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    nested: list[type[BaseModel]] = []
    for name, field in model.model_fields.items():
        description = describe(model, name, field).replace("|", "\\|").replace("\n", " ")
        type_name = _type_name(field.annotation).replace("|", "\\|")
        lines.append(f"| `{field.alias or name}` | {type_name} | {_default(field)} | {description} |")
        nested += _models_in(field.annotation)
    lines.append("")
    for child in nested:
        lines += _section(child, seen)
    return lines


def render() -> str:
    lines = [
        "# Settings reference",
        "",
        "Generated from the pydantic models by `python -m turbo.cli.reference`; do not edit by hand.",
        "Every model rejects unknown keys. `python -m turbo schema <command>` prints the JSON Schema.",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    for command in COMMANDS.values():
        model = load_object(command.settings)
        lines += [f"## {command.name}", "", f"{command.help} `--{command.flag}`: `{model.__name__}`.", ""]
        lines += _section(model, seen)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
