"""Reading record sources: JSONL, a JSON array, Parquet, or a `datasets` folder (save_to_disk).

A `.jsonl` (or `.ndjson`) file is always JSON Lines; another file that starts with `[` is a JSON array
when it parses as one as a whole.

Every bad record is named by file:line (JSONL) or file[index] (the other formats); a record
without an `id` gets a stable one from its file and position; sampling is seeded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from turbo.errors import DataError
from turbo.reading import jsonl_lines, parse_json, read_text
from turbo.settings.datasets import DatasetSourceSettings

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Located(Generic[R]):
    """A record and where it came from, so later errors can name file:line (or file[index])."""

    record: R
    path: Path
    line: int  # the line in a JSONL file; the 0-based record index in the other formats
    indexed: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}[{self.line}]" if self.indexed else f"{self.path}:{self.line}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{field}: {err['msg']}{more}" if field else f"{err['msg']}{more}"


def _drop_nulls(value: Any) -> Any:
    """Columnar formats give every row every key (None where a row lacked it): drop those again."""
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")  # always one record a line, whatever line 1 holds


def _is_json_array(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


def _json_array(path: Path) -> list[Any] | None:
    """The records of a file that starts with `[`, when it is one JSON array as a whole; None when it is
    JSON Lines instead (it does not parse as a whole, but its first line does on its own), so a bad
    line is named by its own number."""
    text = read_text(path, "dataset file", DataError)
    try:
        values = parse_json(text, str(path), DataError)
    except DataError as whole:
        try:
            parse_json(text.lstrip().partition("\n")[0], str(path), DataError)
        except DataError:
            raise whole from None  # an array file damaged at the line `whole` names
        return None
    if not isinstance(values, list):
        raise DataError(f"{path}: expected a JSON array of records or JSONL")
    return values


def _datasets_rows(path: Path) -> Iterator[dict[str, Any]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(
            f"{path}: a folder must be a `datasets` folder written by save_to_disk ({exc})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise DataError(
                f"{path}: a DatasetDict with splits {', '.join(loaded)}; give the folder of one split "
                f"(e.g. {path / next(iter(loaded))})"
            )
        loaded = next(iter(loaded.values()))
    for row in loaded:
        yield _drop_nulls(row)


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file: {exc}") from None
    for batch in table.to_batches():
        for row in batch.to_pylist():
            yield _drop_nulls(row)


def raw_records(path: str | Path) -> Iterator[tuple[int, Any, bool]]:
    """(line or index, raw value, indexed) for every record of a source, whatever its format."""
    path = Path(path)
    if path.is_dir():
        for index, row in enumerate(_datasets_rows(path)):
            yield index, row, True
    elif path.suffix.lower() == ".parquet":
        for index, row in enumerate(_parquet_rows(path)):
            yield index, row, True
    elif (
        path.suffix.lower() not in JSON_LINES_SUFFIXES
        and path.is_file()
        and _is_json_array(path)
        and (values := _json_array(path)) is not None
    ):
        for index, value in enumerate(values):
            yield index, value, True
    else:
        for number, value in jsonl_lines(path, "dataset file", DataError):
            yield number, value, False


def read_jsonl(path: str | Path, record_type: type[R]) -> list[Located[R]]:
    """Every record of `path` (JSONL, JSON array, Parquet or a `datasets` folder) as `record_type`;
    the first bad record raises DataError naming file:line or file[index]."""
    path = Path(path)
    records: list[Located[R]] = []
    seen: dict[str, str] = {}
    for number, raw, indexed in raw_records(path):
        where = f"{path}[{number}]" if indexed else f"{path}:{number}"
        if not isinstance(raw, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        if raw.get("id") is None and "id" in record_type.model_fields:
            raw = {**raw, "id": f"{path.name}:{number}"}  # stable: the file and the line (or index)
        try:
            record = record_type.model_validate(raw)
        except ValidationError as exc:
            raise DataError(f"{where}: {_first_error(exc)}") from None
        record_id = getattr(record, "id", None)
        if record_id is not None:
            if record_id in seen:
                raise DataError(f"{where}: duplicate id {record_id!r:.100} (first at {seen[record_id]})")
            seen[record_id] = f"line {number}" if not indexed else f"index {number}"
        records.append(Located(record, path, number, indexed))
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
