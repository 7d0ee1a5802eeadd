"""The one strict base model every settings class derives from."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from turbo.settings.aliases import apply_renames


class StrictModel(BaseModel):
    """Frozen, rejects unknown keys and names the closest valid one."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), use_enum_values=True)

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
