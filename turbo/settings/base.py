"""The one strict base model every settings class derives from."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Annotated, Any

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from turbo.reading import path_problem
from turbo.settings.aliases import apply_renames

MAX_SEED = 2**32 - 1  # numpy's seeds are 0..2**32-1
MAX_COUNT = 2**31 - 1  # steps, sizes and counts stay within a C int
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Field(ge=1, le=MAX_COUNT)]

_RANGE_ERRORS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "finite_number",
    "int_parsing_size",
}
_LOWER = {annotated_types.Gt: ("gt", "<"), annotated_types.Ge: ("ge", "<=")}
_UPPER = {annotated_types.Lt: ("lt", "<"), annotated_types.Le: ("le", "<=")}


def _constraints(metadata: list[Any]) -> list[Any]:
    found = []
    for meta in metadata:
        found += _constraints(list(meta.metadata)) if isinstance(meta, FieldInfo) else [meta]
    return found


def allowed_range(field: FieldInfo) -> str:
    """'0 < value <= 1000' from a field's bounds (also inside `X | None` and Annotated types)."""
    metadata = list(field.metadata)
    for arg in getattr(field.annotation, "__args__", ()):
        metadata += list(getattr(arg, "__metadata__", ()))
    lower = upper = ""
    for meta in _constraints(metadata):
        for kinds, is_lower in ((_LOWER, True), (_UPPER, False)):
            for kind, (attribute, operator) in kinds.items():
                if isinstance(meta, kind):
                    bound = getattr(meta, attribute)
                    if is_lower:
                        lower = f"{bound} {operator} "
                    else:
                        upper = f" {operator} {bound}"
    return f"{lower}value{upper}" if lower or upper else "any finite number"


def _problem_in(value: Any, where: str = "") -> str | None:
    """What is wrong with the first NaN or infinite float, or impossible path, inside plain dicts and
    lists (`key.path: problem`), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'the value'} is not a finite number"
    if isinstance(value, Path) and (problem := path_problem(value)):
        return f"{where + ': ' if where else ''}the path {problem}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _problem_in(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


class StrictModel(BaseModel):
    """Frozen, rejects unknown keys and names the closest valid one."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
        use_enum_values=True,
        allow_inf_nan=False,
        # a class's validator is built when first used, not at import: `validate` of one command builds
        # the models of that command only (the settings package defines ~90 classes for all commands)
        defer_build=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _possible_paths_and_finite_numbers(cls, value: Any) -> Any:
        """A path that can never name a file (NUL byte, longer than the OS allows) fails here, and so
        does a NaN or infinite number inside a free-form dict (such as lr_scheduler_kwargs)."""
        problem = _problem_in(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _reject_unknown_fields(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, dict):
            data = apply_renames([klass.__name__ for klass in cls.__mro__], data)
        try:
            return handler(data)
        except ValidationError as exc:
            names = sorted(set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias})
            errors = []
            for err in exc.errors():
                message = err["msg"]
                if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                    close = difflib.get_close_matches(str(err["loc"][0]), names, n=1, cutoff=0.6)
                    message = (
                        f"unknown field; did you mean '{close[0]}'?"
                        if close
                        else f"unknown field; valid fields are: {', '.join(names)}"
                    )
                elif (
                    err["type"] in _RANGE_ERRORS
                    and len(err["loc"]) == 1
                    and err["loc"][0] in cls.model_fields
                ):
                    message = f"{message}; allowed: {allowed_range(cls.model_fields[str(err['loc'][0])])}"
                errors.append(
                    {
                        "type": PydanticCustomError(
                            err["type"], message
                        ),  # no context, so braces stay as written
                        "loc": err["loc"],
                        "input": err.get("input"),
                    }
                )
            raise ValidationError.from_exception_data(cls.__name__, errors) from None


def settings_as_run(settings: BaseModel) -> dict[str, Any]:
    """The settings as a JSON-ready dict that validates again to the same settings: what the file set
    (after renames and moves to the current layout), without the defaults it left out. Dumping the
    defaults too would mark them as set, and the rules about fields set together (`seed` beside
    `trainer_settings.seed`, a legacy switch beside its block) would then refuse turbo's own file."""
    return settings.model_dump(mode="json", exclude_unset=True)
