"""Reading JSONL sources: file:line errors for bad lines, seeded sampling."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from turbo.errors import DataError
from turbo.reading import jsonl_lines
from turbo.settings.datasets import DatasetSourceSettings

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Located(Generic[R]):
    """A record and where it came from, so later errors can name file:line."""

    record: R
    path: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{field}: {err['msg']}{more}" if field else f"{err['msg']}{more}"


def read_jsonl(path: str | Path, record_type: type[R]) -> list[Located[R]]:
    """Every non-empty line of `path` as `record_type`; the first bad line raises DataError."""
    path = Path(path)
    records: list[Located[R]] = []
    seen: dict[str, int] = {}
    for number, raw in jsonl_lines(path, "dataset file", DataError):
        if not isinstance(raw, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(raw).__name__}")
        try:
            record = record_type.model_validate(raw)
        except ValidationError as exc:
            raise DataError(f"{path}:{number}: {_first_error(exc)}") from None
        record_id = getattr(record, "id", None)
        if record_id is not None:
            if record_id in seen:
                raise DataError(
                    f"{path}:{number}: duplicate id {record_id!r:.100} (first at line {seen[record_id]})"
                )
            seen[record_id] = number
        records.append(Located(record, path, number))
    return records


def sample_source(records: list[Located[R]], source: DatasetSourceSettings, seed: int) -> list[Located[R]]:
    """num_samples or sample_rate of the records, drawn with a seeded generator, in file order."""
    rng = random.Random(f"{seed}:{source.name}")
    if source.num_samples is not None:
        count = source.num_samples
    else:
        count = round(len(records) * (source.sample_rate or 0.0))
    if count >= len(records):
        repeats, rest = divmod(count, len(records)) if records else (0, 0)
        return records * repeats + sorted(rng.sample(records, rest), key=lambda r: r.line)
    return sorted(rng.sample(records, count), key=lambda r: r.line)
