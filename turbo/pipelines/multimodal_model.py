"""One way to assemble the multimodal model, shared by train_multimodal, train_multimodal_dpo,
train_grpo (multimodal prompts) and inference_multimodal: encoders and seeded projectors built to the
loaded LM's width and dtype, projector weights read where given, all composed by MultimodalModel
(which takes only built parts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.modeling.multimodal.parts import build_encoders, build_projectors, load_projector_weights


def modality_token_ids(tokenizer: Any, dataset: Any) -> dict[str, int]:
    """Modality -> the id of its embedding token."""
    return {m: tokenizer.convert_tokens_to_ids(t) for m, t in dataset.modality_token_mapping.items()}


def assemble_multimodal(
    language_model: Any,
    encoders: dict[str, Any],
    projectors: dict[str, Any],
    shapes: dict[str, tuple[int, int]],
    n_modality_embeddings: int,
    token_ids: dict[str, int],
    seed: int,
    projector_weights: dict[str | None, str | Path | None],
) -> Any:
    """The MultimodalModel around a loaded `language_model`: the `encoders` and `projectors` settings
    built in its dtype (projectors seeded, to its width), then the weights of `projector_weights`
    (modality, or None for every projector in the file -> a file; None paths are skipped) loaded."""
    from turbo.modeling.multimodal.model import MultimodalModel

    embeddings = language_model.get_input_embeddings().weight
    built_encoders = build_encoders(encoders, embeddings.dtype)
    built_projectors = build_projectors(
        projectors, shapes, embeddings.shape[1], n_modality_embeddings, seed, embeddings.dtype
    )
    for modality, path in projector_weights.items():
        if path is not None:
            load_projector_weights(built_projectors, Path(path), modality)
    return MultimodalModel(language_model, built_encoders, built_projectors, token_ids)
