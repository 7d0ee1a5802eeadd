"""Multimodal parts: modality readers, encoders and projectors, each a union on its type field."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from turbo.settings.aliases import normalize_projector
from turbo.settings.base import StrictModel
from turbo.settings.model import LoraSettings
from turbo.settings.paths import InputFile, InputFolder
from turbo.settings.problems import Problem

Modality = Literal["image", "audio"]


class _ReaderFields(StrictModel):
    modality: ClassVar[Modality | None] = None
    """What the reader reads; None: features pre-encoded from any modality (is_pickle encoders)."""


class ClipReaderSettings(_ReaderFields):
    """Images through the CLIP image processor saved in reader_path."""

    modality = "image"

    reader_type: Literal["clip"]
    reader_path: InputFolder = Field(
        description="Folder with preprocessor_config.json (often the encoder's)."
    )


class SiglipReaderSettings(_ReaderFields):
    """Images through the SigLIP image processor saved in reader_path."""

    modality = "image"

    reader_type: Literal["siglip"]
    reader_path: InputFolder = Field(
        description="Folder with preprocessor_config.json (often the encoder's)."
    )


class WhisperReaderSettings(_ReaderFields):
    """WAV audio -> log-mel features with the Whisper feature extractor saved in reader_path."""

    modality = "audio"

    reader_type: Literal["whisper"]
    reader_path: InputFolder = Field(
        description="Folder with preprocessor_config.json (often the encoder's)."
    )


class PickleReaderSettings(_ReaderFields):
    """Features pre-encoded by preprocess_multimodal_dataset, read from its safetensors file."""

    reader_type: Literal["pickle"]
    reader_path: InputFile | None = Field(
        None,
        description="The <modality>.<encoder>.safetensors file. None (the original's null): a "
        "*.safetensors file beside each media file, holding its features under the file's name.",
    )


ReaderSettings = Annotated[
    ClipReaderSettings | SiglipReaderSettings | WhisperReaderSettings | PickleReaderSettings,
    Field(discriminator="reader_type"),
]


def _vision_config(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("vision_config", config)  # a full CLIP/SigLIP checkpoint nests it


def vision_shape(config: dict[str, Any]) -> tuple[int, int]:
    """(tokens, width) of a CLIP or SigLIP vision tower: one token per patch."""
    vision = _vision_config(config)
    return (vision["image_size"] // vision["patch_size"]) ** 2, vision["hidden_size"]


def whisper_shape(config: dict[str, Any]) -> tuple[int, int]:
    """(tokens, width) of a Whisper encoder: one token per two mel frames."""
    return config["max_source_positions"], config["d_model"]


class _EncoderFields(StrictModel):
    modality: ClassVar[Modality]
    """What the encoder reads."""
    shape: ClassVar[Callable[[dict[str, Any]], tuple[int, int]]]
    """(tokens per media item, width) from the encoder's config.json alone (no weights, no torch)."""

    encoder_path: InputFolder = Field(
        description="Folder of the encoder (its config.json is read even with is_pickle: true)."
    )
    is_pickle: bool = Field(
        False, description="The reader gives pre-encoded features (reader_type: pickle); no forward pass."
    )
    freeze: bool = Field(True, description="Keep the encoder's weights fixed (false: train them all).")
    peft_settings: LoraSettings | None = Field(None, description="Train a LoRA on the (frozen) encoder.")

    @model_validator(mode="after")
    def _trainable_needs_media(self) -> _EncoderFields:
        if self.is_pickle and (not self.freeze or self.peft_settings is not None):
            raise ValueError(
                "is_pickle: true passes pre-encoded features through, so the encoder cannot train; "
                "set is_pickle: false (raw media) or freeze: true without peft_settings"
            )
        if not self.freeze and self.peft_settings is not None:
            raise ValueError("set freeze: false (train every weight) or peft_settings (LoRA), not both")
        return self

    @property
    def trainable(self) -> bool:
        return not self.freeze or self.peft_settings is not None


class ClipEncoderSettings(_EncoderFields):
    """CLIP vision tower: penultimate hidden states without the CLS token, one per patch."""

    modality = "image"
    shape = staticmethod(vision_shape)

    modality_encoder_type: Literal["clip"]


class SiglipEncoderSettings(_EncoderFields):
    """SigLIP vision tower: last hidden states, one per patch."""

    modality = "image"
    shape = staticmethod(vision_shape)

    modality_encoder_type: Literal["siglip"]


class WhisperEncoderSettings(_EncoderFields):
    """Whisper audio encoder: last hidden states, one per two mel frames."""

    modality = "audio"
    shape = staticmethod(whisper_shape)

    modality_encoder_type: Literal["whisper"]


EncoderSettings = Annotated[
    ClipEncoderSettings | SiglipEncoderSettings | WhisperEncoderSettings,
    Field(discriminator="modality_encoder_type"),
]


class _ProjectorFields(StrictModel):
    pools_to_square: ClassVar[bool] = False
    """Gives a square grid of LM tokens, so n_modality_embeddings must be a perfect square."""

    def output_tokens(self, n_in: int, n_modality_embeddings: int) -> int:
        """LM tokens per media item from n_in encoder tokens."""
        return n_modality_embeddings

    def input_problem(self, n_in: int) -> str | None:
        """Why the projector cannot take n_in encoder tokens, or None."""
        return None


class LlavaProjectorSettings(_ProjectorFields):
    """Linear -> GELU -> Linear on every encoder token (one LM embedding per patch)."""

    projector_type: Literal["llava"]

    def output_tokens(self, n_in: int, n_modality_embeddings: int) -> int:
        return n_in  # one LM embedding per encoder token


class CAbstractorSettings(_ProjectorFields):
    """C-Abstractor (Honeybee): conv blocks, adaptive pooling to n_modality_embeddings tokens, conv blocks."""

    pools_to_square = True

    projector_type: Literal["c_abs"]
    depth: int = Field(1, ge=0, le=64, description="Residual conv blocks before and after the pooling.")

    def input_problem(self, n_in: int) -> str | None:
        if math.isqrt(n_in) ** 2 == n_in:
            return None
        return (
            f"c_abs pools a square grid of encoder tokens, but the encoder gives {n_in}; "
            "use the llava projector"
        )


ProjectorSettings = Annotated[
    LlavaProjectorSettings | CAbstractorSettings,
    Field(discriminator="projector_type"),
    BeforeValidator(normalize_projector),
]


def present(mapping: dict[str, Any] | None) -> dict[str, Any]:
    """The entries of a modality mapping that are set (files may write "audio": null)."""
    return {key: value for key, value in (mapping or {}).items() if value is not None}


EncoderMapping = Annotated[
    dict[Modality, EncoderSettings | None],
    Field(
        min_length=1,
        description="Modality -> its encoder (by modality_encoder_type); null: the modality is not used.",
    ),
]
ProjectorMapping = Annotated[
    dict[Modality, ProjectorSettings | None],
    Field(min_length=1, description='Modality -> projector: "llava", "c_abs", or {"projector_type": ...}.'),
]


class ModalityParts:
    """`encoders` and `projectors`: the modalities in use, for settings that hold the two mappings
    (`modality_encoder_settings_mapping: EncoderMapping`, `modality_projector_mapping: ProjectorMapping`).
    No fields of its own, so each settings class keeps its fields in its own order."""

    if TYPE_CHECKING:
        modality_encoder_settings_mapping: dict[Modality, EncoderSettings | None]
        modality_projector_mapping: dict[Modality, ProjectorSettings | None]

    @property
    def encoders(self) -> dict[str, EncoderSettings]:
        return present(self.modality_encoder_settings_mapping)

    @property
    def projectors(self) -> dict[str, ProjectorSettings]:
        return present(self.modality_projector_mapping)


def modality_problems(
    encoders: dict[str, Any], projectors: dict[str, Any], readers: dict[str, Any] | None, readers_where: str
) -> list[Problem]:
    """Every modality has an encoder and a projector (and a reader), and they fit each other.
    `readers_where` is the field path of the dataset's reader mapping."""
    encoders, projectors = present(encoders), present(projectors)
    readers = present(readers) if readers is not None else None
    problems: list[Problem] = []
    for where, mapping in (("modality_projector_mapping", projectors), (readers_where, readers)):
        if mapping is not None and set(mapping) != set(encoders):
            problems.append(
                (
                    where,
                    f"has modalities {sorted(mapping)} but modality_encoder_settings_mapping has "
                    f"{sorted(encoders)}; give each modality an encoder, a reader and a projector",
                )
            )
    for modality, encoder in encoders.items():
        reads = encoder.modality
        if reads != modality:
            problems.append(
                (
                    f"modality_encoder_settings_mapping.{modality}",
                    f"a {encoder.modality_encoder_type} encoder reads {reads}, not {modality}",
                )
            )
        reader = (readers or {}).get(modality)
        if reader is None:
            continue
        if encoder.is_pickle != (reader.modality is None):
            problems.append(
                (
                    f"{readers_where}.{modality}.reader_type",
                    f"'{reader.reader_type}' with modality_encoder_settings_mapping.{modality}.is_pickle: "
                    f"{str(encoder.is_pickle).lower()}; pre-encoded features need reader_type: pickle and "
                    "is_pickle: true, raw media neither",
                )
            )
        elif reader.modality is not None and reader.modality != modality:
            problems.append(
                (
                    f"{readers_where}.{modality}.reader_type",
                    f"a {reader.reader_type} reader reads {reader.modality}",
                )
            )
    return problems


def square_problems(projectors: dict[str, Any], n_modality_embeddings: int, n_where: str) -> list[Problem]:
    """A projector that pools to a square grid (c_abs) needs n_modality_embeddings (at `n_where`) to be a
    perfect square."""
    side = math.isqrt(n_modality_embeddings)
    if side * side == n_modality_embeddings:
        return []
    return [
        (
            n_where,
            f"{n_modality_embeddings} is not a perfect square, but the {projector.projector_type} projector "
            f"of modality_projector_mapping.{modality} pools to a square grid "
            f"(nearest: {side * side} or {(side + 1) ** 2})",
        )
        for modality, projector in present(projectors).items()
        if projector.pools_to_square
    ]
