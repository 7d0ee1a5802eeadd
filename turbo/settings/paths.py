"""Input paths are marked so one walk can report every missing file before anything loads."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel


class _MustExist:
    """Marks a settings field whose path is read (and so must exist when a pipeline runs)."""


InputPath = Annotated[Path, _MustExist()]


def _is_input_path(field: Any) -> bool:
    """InputPath, also inside an optional (`InputPath | None`, where the marker sits in the union)."""
    metadata = list(field.metadata)
    for arg in typing.get_args(field.annotation):
        metadata += list(getattr(arg, "__metadata__", ()))
    return any(isinstance(meta, _MustExist) for meta in metadata)


def missing_input_paths(settings: BaseModel, prefix: str = "") -> list[str]:
    """Every marked path in `settings` that does not exist, as 'field.path: value'."""
    missing: list[str] = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        where = f"{prefix}{name}"
        if _is_input_path(field):
            if value is not None and not Path(value).exists():
                missing.append(f"{where}: {value} does not exist")
            continue
        missing.extend(_walk(value, where))
    return missing


def _walk(value: Any, where: str) -> list[str]:
    if isinstance(value, BaseModel):
        return missing_input_paths(value, f"{where}.")
    if isinstance(value, list | tuple):
        return [m for i, item in enumerate(value) for m in _walk(item, f"{where}.{i}")]
    if isinstance(value, dict):
        return [m for key, item in value.items() for m in _walk(item, f"{where}.{key}")]
    return []
