"""Token counts and widths of encoders and projectors, from config files alone (no torch).

The preflight of `validate` and of the multimodal commands reads these before any weights load. The
rules live on the settings classes (an encoder's `shape`, a projector's `output_tokens` and
`input_problem`), which the torch modules in encoders/ and projectors/ also follow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from turbo.errors import SettingsError


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
    config = encoder_config(settings)
    try:
        return settings.shape(config)
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
        projector = projectors[modality]
        problem = projector.input_problem(n_in)
        if problem:
            problems.append(f"modality_projector_mapping.{modality}: {problem}")
            continue
        expected = projector.output_tokens(n_in, n_modality_embeddings)
        if expected != n_modality_embeddings:
            problems.append(
                f"{where}n_modality_embeddings: {n_modality_embeddings}, but the "
                f"{encoder.modality_encoder_type} encoder at {encoder.encoder_path} gives {n_in} tokens per "
                f"{modality} and the {projector.projector_type} projector keeps them all: "
                f"set n_modality_embeddings: {expected}"
            )
    return shapes, problems
