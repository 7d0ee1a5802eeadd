"""Token counts and widths of encoders and projectors, from config files alone (no torch).

The preflight of `validate` and of the multimodal commands reads these before any weights load; the
torch modules in encoders/ and projectors/ use the same rules, so the two cannot disagree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turbo.errors import SettingsError


def _vision_config(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("vision_config", config)  # a full CLIP/SigLIP checkpoint nests it


def vision_tokens(config: dict[str, Any]) -> int:
    vision = _vision_config(config)
    return (vision["image_size"] // vision["patch_size"]) ** 2


def vision_width(config: dict[str, Any]) -> int:
    return _vision_config(config)["hidden_size"]


def whisper_tokens(config: dict[str, Any]) -> int:
    return config["max_source_positions"]


def whisper_width(config: dict[str, Any]) -> int:
    return config["d_model"]


@dataclass(frozen=True)
class EncoderShape:
    tokens: Callable[[dict[str, Any]], int]  # tokens per media item
    width: Callable[[dict[str, Any]], int]


ENCODER_SHAPES = {
    "clip": EncoderShape(vision_tokens, vision_width),
    "siglip": EncoderShape(vision_tokens, vision_width),
    "whisper": EncoderShape(whisper_tokens, whisper_width),
}


def llava_output_tokens(n_in: int, n_modality_embeddings: int) -> int:
    return n_in  # one LM embedding per encoder token


def llava_input_problem(n_in: int) -> str | None:
    return None


def c_abs_output_tokens(n_in: int, n_modality_embeddings: int) -> int:
    return n_modality_embeddings  # pools to the square grid the dataset asks for


def c_abs_input_problem(n_in: int) -> str | None:
    if math.isqrt(n_in) ** 2 == n_in:
        return None
    return (
        f"c_abs pools a square grid of encoder tokens, but the encoder gives {n_in}; "
        "use the llava projector"
    )


@dataclass(frozen=True)
class ProjectorShape:
    output_tokens: Callable[[int, int], int]  # (encoder tokens, n_modality_embeddings) -> LM tokens
    input_problem: Callable[[int], str | None]  # why it cannot take n encoder tokens, or None


PROJECTOR_SHAPES = {
    "llava": ProjectorShape(llava_output_tokens, llava_input_problem),
    "c_abs": ProjectorShape(c_abs_output_tokens, c_abs_input_problem),
}


def encoder_config(settings: Any) -> dict[str, Any]:
    """The encoder's config.json (read without loading any weights)."""
    path = Path(settings.encoder_path) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"encoder_path: cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise SettingsError(f"encoder_path: {path} is not a JSON object")
    return config


def encoder_shape(settings: Any) -> tuple[int, int]:
    """(tokens per item, width) the encoder gives, from its config alone."""
    shape = ENCODER_SHAPES[settings.modality_encoder_type]
    config = encoder_config(settings)
    try:
        return shape.tokens(config), shape.width(config)
    except (KeyError, TypeError) as exc:
        raise SettingsError(
            f"encoder_path: {settings.encoder_path}/config.json is not a {settings.modality_encoder_type} "
            f"config (missing {exc})"
        ) from None


def shape_problems(
    encoders: dict[str, Any], projectors: dict[str, Any], n_modality_embeddings: int, where: str
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """(tokens, width) per modality's encoder, and every way n_modality_embeddings does not fit them,
    each naming its field path and the value to write. `where` prefixes the dataset's field path."""
    shapes, problems = {}, []
    for modality, encoder in encoders.items():
        try:
            n_in, width = encoder_shape(encoder)
        except SettingsError as exc:
            problems.append(f"modality_encoder_settings_mapping.{modality}.{exc}")
            continue
        shapes[modality] = (n_in, width)
        projector_type = projectors[modality].projector_type
        projector = PROJECTOR_SHAPES[projector_type]
        problem = projector.input_problem(n_in)
        if problem:
            problems.append(f"modality_projector_mapping.{modality}: {problem}")
            continue
        expected = projector.output_tokens(n_in, n_modality_embeddings)
        if expected != n_modality_embeddings:
            problems.append(
                f"{where}n_modality_embeddings: {n_modality_embeddings}, but the "
                f"{encoder.modality_encoder_type} encoder at {encoder.encoder_path} gives {n_in} tokens per "
                f"{modality} and the {projector_type} projector keeps them all: "
                f"set n_modality_embeddings: {expected}"
            )
    return shapes, problems
