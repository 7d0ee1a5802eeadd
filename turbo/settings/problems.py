"""Cross-field rules report every problem at once, each at the field it concerns.

A rule collects `(field path, message)` pairs, the path relative to the settings block that checks
it ("trainer_settings.eval_strategy", "generation_settings.0.vllm_settings"); `raise_problems` turns
them into one ValidationError, so a file with three broken rules gets three lines, each at its field
(pydantic prefixes the path of the block), instead of the first one at "(top level)".
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

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
