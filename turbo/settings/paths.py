"""Input paths are marked (and say whether they are a file or a folder), so one walk can report every
missing or wrong-kind input before anything loads."""

from __future__ import annotations

import errno
import os
import re
import stat
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel

Kind = Literal["file", "folder", "any"]


class _MustExist:
    """Marks a settings field whose path is read (and so must exist when a pipeline runs)."""

    def __init__(self, kind: Kind = "any") -> None:
        self.kind = kind


InputPath = Annotated[Path, _MustExist()]
InputFile = Annotated[Path, _MustExist("file")]
InputFolder = Annotated[Path, _MustExist("folder")]


def _marker(field: Any) -> _MustExist | None:
    """The marker of an input-path field, also inside an optional, a list or a dict of paths."""
    for meta in getattr(field, "metadata", ()):
        if isinstance(meta, _MustExist):
            return meta
    return _marker_in(getattr(field, "annotation", None))


def _marker_in(annotation: Any) -> _MustExist | None:
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, _MustExist):
            return meta
    for arg in typing.get_args(annotation):
        found = _marker_in(arg)
        if found is not None:
            return found
    return None


def input_paths(settings: BaseModel, prefix: str = "") -> list[tuple[str, Path, Kind]]:
    """(field path, path, expected kind) of every input path set in `settings`."""
    found: list[tuple[str, Path, Kind]] = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        where = f"{prefix}{name}"
        marker = _marker(field)
        if marker is not None:
            found.extend(_paths(value, where, marker.kind))
        else:
            found.extend(_walk(value, where))
    return found


def _paths(value: Any, where: str, kind: Kind) -> list[tuple[str, Path, Kind]]:
    if isinstance(value, str | Path):
        return [(where, Path(value), kind)]
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _paths(item, f"{where}.{i}", kind)]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _paths(item, f"{where}.{key}", kind)]
    return []


def _walk(value: Any, where: str) -> list[tuple[str, Path, Kind]]:
    if isinstance(value, BaseModel):
        return input_paths(value, f"{where}.")
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _walk(item, f"{where}.{i}")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _walk(item, f"{where}.{key}")]
    return []


def path_problem(path: Path, kind: Kind) -> str | None:
    """What is wrong with reading `path` as a `kind` ('does not exist', 'is a folder, expected a
    file', ...), or None. Never raises: NUL bytes, over-long names and symlink loops are problems too."""
    try:
        mode = os.stat(path).st_mode
    except ValueError:
        return "is not a usable path (it contains a NUL byte)"
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "does not exist"
        if exc.errno == errno.ELOOP:
            return "is a loop of symbolic links"
        if exc.errno == errno.ENAMETOOLONG:
            return "is too long a path for the operating system"
        return f"cannot be read: {exc.strerror or exc}"
    if kind == "file" and stat.S_ISDIR(mode):
        return "is a folder, expected a file"
    if kind == "file" and not stat.S_ISREG(mode):
        return "is not a regular file"
    if kind == "folder" and not stat.S_ISDIR(mode):
        return "is a file, expected a folder" if stat.S_ISREG(mode) else "is not a folder"
    if kind == "any" and not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        return "is not a regular file or folder"
    if not os.access(path, os.R_OK | (os.X_OK if stat.S_ISDIR(mode) else 0)):
        return "is not readable"
    return None


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def looks_like_hub_id(path: Path) -> bool:
    """'openai/clip-vit-base-patch32': an owner/name pair as the model hub names models."""
    text = str(path)
    return bool(HUB_ID.fullmatch(text)) and not text.startswith(".") and Path(text).suffix == ""


def explained(path: Path, kind: Kind, problem: str) -> str:
    """The problem, with what to do when a missing folder is a hub id (nothing is downloaded)."""
    if problem == "does not exist" and kind != "file" and looks_like_hub_id(path):
        return f"{problem}: it looks like a model hub id; models are not downloaded, give a local path"
    return problem


def input_path_problems(settings: BaseModel) -> list[str]:
    """Every input path that is missing, of the wrong kind or unreadable, as 'field.path: value ...'."""
    problems = []
    for where, path, kind in input_paths(settings):
        problem = path_problem(path, kind)
        if problem is not None:
            problems.append(f"{where}: {path} {explained(path, kind, problem)}")
    return problems


def missing_input_paths(settings: BaseModel, prefix: str = "") -> list[str]:
    """Every marked path in `settings` that does not exist, as 'field.path: value does not exist'."""
    return [
        f"{where}: {path} {explained(path, kind, 'does not exist')}"
        for where, path, kind in input_paths(settings, prefix)
        if path_problem(path, kind) == "does not exist"
    ]
