from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.multimodal import EncoderSettings, Modality, ReaderSettings
from turbo.settings.paths import InputFolder
from turbo.settings.problems import raise_problems


class PreprocessMultimodalSettings(StrictModel):
    """Encode every media file of a folder once, so training can read features (reader_type: pickle)."""

    modality: Modality = Field(description="The kind of media in dataset_path: image or audio.")
    reader_settings: ReaderSettings = Field(description="How each file is read (by reader_type).")
    encoder_settings: EncoderSettings = Field(
        description="The encoder that turns what the reader gives into features (by modality_encoder_type)."
    )
    dataset_path: InputFolder = Field(description="A folder of media, searched recursively.")
    batch_size: PositiveCount = Field(32, description="Media files per encoder forward.")
    output_file_path: Path = Field(
        description="Folder for <modality>.<encoder>.safetensors (key: media path relative to "
        "dataset_path) and its .json config."
    )
    num_workers: int = Field(
        2, ge=0, le=1024, description="Threads that decode media while the encoder runs."
    )
    extensions: list[str] | None = Field(
        None, description="File endings to encode. Default: common image or audio endings."
    )

    @model_validator(mode="after")
    def _fits(self) -> PreprocessMultimodalSettings:
        problems = []
        if self.reader_settings.modality is None:
            problems.append(
                ("reader_settings.reader_type", "preprocessing reads raw media: use a media reader")
            )
        if self.encoder_settings.is_pickle:
            problems.append(
                ("encoder_settings.is_pickle", "preprocessing reads raw media: set is_pickle: false")
            )
        if not problems:
            for what, kind in (
                ("reader_settings", self.reader_settings.modality),
                ("encoder_settings", self.encoder_settings.modality),
            ):
                if kind != self.modality:
                    problems.append((what, f"reads {kind} but modality is {self.modality}"))
        raise_problems(self, problems)
        return self

    @property
    def output_file(self) -> Path:
        return Path(self.output_file_path) / (
            f"{self.modality}.{self.encoder_settings.modality_encoder_type}.safetensors"
        )
