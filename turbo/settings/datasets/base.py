from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from turbo.settings.base import StrictModel
from turbo.settings.outputs import FileName
from turbo.settings.paths import InputPath

MAX_RECORDS = 100_000_000  # records a source may yield (repeats included)
MAX_SAMPLE_RATE = 1000.0


class DatasetSourceSettings(StrictModel):
    """One JSONL file and how much of it to use."""

    name: FileName = Field(
        description="Names the source in logs and output files (a plain name: no '/', '..' or absolute path)."
    )
    records_path: InputPath = Field(
        description="The records: a JSONL file, a JSON array file ([{...}, ...]), a Parquet file or a "
        "`datasets` folder written by save_to_disk."
    )
    num_samples: int | None = Field(
        None, ge=0, le=MAX_RECORDS, description="Take this many records (seeded)."
    )
    sample_rate: float | None = Field(
        None,
        gt=0,
        le=MAX_SAMPLE_RATE,
        description="Take this share of the records (1.0 = all; above 1 repeats records).",
    )
    system_prompt: str | None = Field(None, description="Prepended as a system message to every record.")

    @model_validator(mode="after")
    def _exactly_one_amount(self) -> DatasetSourceSettings:
        if (self.num_samples is None) == (self.sample_rate is None):
            raise ValueError(
                "set exactly one of num_samples or sample_rate (sample_rate: 1.0 keeps every record)"
            )
        return self


def check_unique_source_names(sources: list[DatasetSourceSettings]) -> list[DatasetSourceSettings]:
    names = [source.name for source in sources]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
    return sources


Sources = Annotated[
    list[DatasetSourceSettings], Field(min_length=1), AfterValidator(check_unique_source_names)
]  # a dataset's sources: at least one, each name once
