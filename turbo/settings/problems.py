"""Cross-field rules report every problem at once, each at the field it concerns.

A rule collects `(field path, message)` pairs, the path relative to the settings block that checks
it ("trainer_settings.eval_strategy", "generation_settings.0.vllm_settings"); `raise_problems` turns
them into one ValidationError, so a file with three broken rules gets three lines, each at its field
(pydantic prefixes the path of the block), instead of the first one at "(top level)".
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

M = TypeVar("M", bound=BaseModel)

Problem = tuple[str, str]  # (field path relative to the block, what is wrong and what to write instead)


def _loc(where: str) -> tuple[int | str, ...]:
    return tuple(int(part) if part.isdigit() else part for part in where.split(".") if part)


def raise_problems(settings: BaseModel, problems: list[Problem]) -> None:
    """Raise one ValidationError holding every problem at its field path; nothing if there is none."""
    if not problems:
        return
    errors: list[InitErrorDetails] = [
        {
            "type": PydanticCustomError("cross_field", message),  # no context: braces stay as written
            "loc": _loc(where),
            "input": None,
        }
        for where, message in problems
    ]
    raise ValidationError.from_exception_data(type(settings).__name__, errors)


def _existing_keys(loc: tuple[int | str, ...], data: Any) -> list[int | str]:
    """The keys of `loc` that `data` holds, up to the first it does not (pydantic's union tags and member
    names skipped, as in settings.loading.field_path)."""
    keys: list[int | str] = []
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
            keys.append(part)
        else:
            tag = part == "[key]" or (isinstance(node, dict) and part in node.values())
            member = isinstance(part, str) and node is not None and not isinstance(node, dict | list)
            if not (tag or member):  # a union's tag or member type: not a key of the file
                break
    return keys


def _remove(data: Any, keys: list[int | str]) -> bool:
    node = data
    for key in keys[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False  # already removed with a block around it
    if isinstance(node, dict) and keys[-1] in node:
        del node[keys[-1]]
        return True
    return False


def salvage(
    model: type[M], data: dict[str, Any], exc: ValidationError, rounds: int = 8
) -> tuple[M | None, list[str]]:
    """The settings of `data` with every value that failed taken out (its default in its place), so the
    preflight can check the rest in the same report; and the key paths taken out. None when what is left
    is no settings (a required block failed, a rule of the top level).

    A key that failed is removed; a missing key, or a rule on a key the file does not set, removes the
    block that holds it; an item of a list removes the list (the other items' indices stay true)."""
    data = copy.deepcopy(data)
    removed: list[str] = []
    for _ in range(rounds):
        for err in exc.errors():
            keys = _existing_keys(tuple(err["loc"]), data)  # a missing key: the block that holds it
            while keys and isinstance(keys[-1], int):
                keys = keys[:-1]
            if not keys:
                return None, removed
            if _remove(data, keys):
                removed.append(".".join(str(key) for key in keys))
        try:
            return model.model_validate(data), removed
        except ValidationError as again:
            exc = again
    return None, removed


def unsettled(problem: str, removed: list[str]) -> bool:
    """True when a preflight problem ('field.path: ...') is about a key taken out by `salvage` (its
    default stood in for the value the file gave, whose own error is reported)."""
    where = problem.partition(": ")[0]
    return any(where == path or where.startswith(f"{path}.") for path in removed)
