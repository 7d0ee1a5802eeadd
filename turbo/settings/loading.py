"""Reading a settings file, applying --set overrides and turning validation errors into one message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from turbo.errors import SettingsError
from turbo.reading import parse_json, read_json

M = TypeVar("M", bound=BaseModel)


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`; unreadable, non-UTF-8 or malformed files are one SettingsError."""
    data = read_json(path, "settings file", SettingsError)
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object at the top level")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b.0.c=value' -> (['a', 'b', '0', 'c'], value parsed as JSON where it parses)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"--set {text!r}: expected KEY.PATH=VALUE")
    try:
        json.loads(raw, parse_int=str)  # syntax only: a value that is not JSON is taken as text
    except json.JSONDecodeError:
        return key.strip().split("."), raw
    except RecursionError:
        pass  # parse_json names the depth
    return key.strip().split("."), parse_json(raw, f"--set {key.strip()}", SettingsError)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = data
        for depth, key in enumerate(keys[:-1]):
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise SettingsError(
                        f"--set {text!r}: {'.'.join(keys[: depth + 1])} is not an item of the list"
                    )
                node = node[int(key)]
            else:
                node = node.setdefault(key, {})
            if not isinstance(node, dict | list):
                raise SettingsError(f"--set {text!r}: {'.'.join(keys[: depth + 1])} is not an object")
        last = keys[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise SettingsError(f"--set {text!r}: {last} is not an index of the list")
            node[int(last)] = value
        else:
            node[last] = value
    return data


def field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The error location as the file's own key path: pydantic's union markers (the variant tag of a
    discriminated union, e.g. 'LORA' in peft_settings.LORA.r; a member type such as 'str'; '[key]')
    are dropped, so the path can be given to --set as it is."""
    parts, node = [], data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
        elif part == "[key]" or (isinstance(node, dict) and part in node.values()):
            continue  # a dict-key error, or the tag of the variant this block chose
        elif isinstance(part, str) and node is not None and not isinstance(node, dict):
            continue  # the member of a plain union (str | list[str]) the value was tried as
        else:
            node = None  # a key the file does not have (missing, or renamed): keep the rest as is
        parts.append(str(part))
    return ".".join(parts)


def validation_lines(exc: ValidationError, data: Any = None) -> list[str]:
    """Every problem of `exc` as 'field.path: message', at the file's key path when `data`, the validated
    input, is given."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = field_path(loc, data) if data is not None else ".".join(str(part) for part in loc)
        where = where or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return lines


def format_validation_error(exc: ValidationError, source: str, data: Any = None) -> str:
    """Every problem of `exc`, one line each at its field path (the file's key path when `data`, the
    validated input, is given)."""
    lines = [f"{source}: {exc.error_count()} problem{'s' if exc.error_count() > 1 else ''} in the settings:"]
    lines += [f"  {line}" for line in validation_lines(exc, data)]
    return "\n".join(lines)


def validate_settings(data: dict[str, Any], model: type[M], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, source, data)) from None


def load_settings(path: str | Path, model: type[M], overrides: list[str] | None = None) -> M:
    """The validated settings of `path` with the overrides applied; SettingsError otherwise."""
    data = apply_overrides(read_settings_file(path), overrides or [])
    return validate_settings(data, model, str(path))
