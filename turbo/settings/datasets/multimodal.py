from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from turbo.settings.base import MAX_COUNT, StrictModel
from turbo.settings.datasets.chat import ChatDatasetSettings
from turbo.settings.multimodal import Modality, ReaderSettings, present
from turbo.settings.paths import InputFolder


class MediaSettings(StrictModel):
    """How a dataset's media are read and where their embeddings go: each media item becomes
    start_modality_token + n_modality_embeddings x its modality token + end_modality_token; labels are
    never on those tokens, and truncation keeps them whole. Shared by the multimodal chat and the
    multimodal pair-preferences datasets."""

    modality_token_mapping: dict[Modality, str] = Field(
        default_factory=lambda: {"image": "<img>", "audio": "<audio>"},
        description="Modality -> the token whose embeddings are replaced by the projected features.",
    )
    modality_reader_settings_mapping: dict[Modality, ReaderSettings | None] = Field(
        description="Modality -> how its media are read (raw files or pre-encoded features)."
    )
    n_modality_embeddings: int = Field(
        gt=0,
        le=MAX_COUNT,
        description="LM tokens per media item; must equal what the encoder and projector give.",
    )
    start_modality_token: str = Field(
        "<MS>", min_length=1, description="Token before each media item's embeddings."
    )
    end_modality_token: str = Field(
        "</MS>", min_length=1, description="Token after each media item's embeddings."
    )
    media_root: InputFolder | None = Field(
        None,
        description="Media paths (and LLaVA-style 'image' paths) are relative to this folder; "
        "default: the folder of each records file. Paths may not leave it.",
    )
    max_media_per_sample: int | None = Field(
        8,
        gt=0,
        le=MAX_COUNT,
        description="Records with more media items are dropped (and counted in the report); 8 is "
        "DeepSpeed-VisualChat's limit (its name max_num_image_per_sample is read too). None: no limit. "
        "Each image goes where its <image> marker is.",
    )

    @model_validator(mode="after")
    def _distinct_tokens(self) -> Any:
        readers = present(self.modality_reader_settings_mapping)
        if not readers:
            raise ValueError("modality_reader_settings_mapping: set a reader for at least one modality")
        missing = sorted(set(readers) - set(self.modality_token_mapping))
        if missing:
            raise ValueError(f"modality_token_mapping has no token for {', '.join(missing)}")
        tokens = [*self.modality_token_mapping.values(), self.start_modality_token, self.end_modality_token]
        if len(set(tokens)) != len(tokens):
            raise ValueError(
                "modality tokens, start_modality_token and end_modality_token must all differ "
                f"(now: {', '.join(tokens)})"
            )
        return self

    @property
    def readers(self) -> dict[str, ReaderSettings]:
        return present(self.modality_reader_settings_mapping)


class MultimodalDatasetSettings(ChatDatasetSettings, MediaSettings):
    """A chat dataset whose messages can be images or audio (see MediaSettings for their tokens)."""

    dataset_type: Literal["multimodal"]  # type: ignore[assignment]

    dataset_concatenate_samples: bool = Field(
        False,
        description="Training (DeepSpeed-VisualChat): join consecutive samples into one sequence of up to "
        "max_tokens_count tokens that attends across them (pack_to_max_length instead keeps each "
        "sample to itself).",
    )

    @model_validator(mode="after")
    def _one_way_to_join(self) -> MultimodalDatasetSettings:
        if self.dataset_concatenate_samples and self.pack_to_max_length:
            raise ValueError("set dataset_concatenate_samples or pack_to_max_length, not both")
        if self.dataset_concatenate_samples and self.max_tokens_count is None:
            raise ValueError("dataset_concatenate_samples joins samples up to max_tokens_count; set it")
        return self
