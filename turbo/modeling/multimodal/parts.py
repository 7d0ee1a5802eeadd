"""Settings -> multimodal parts: the shape check (config files only), readers, encoders, projectors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from turbo.errors import ModelError, SettingsError
from turbo.modeling.multimodal.encoders import build_encoder
from turbo.modeling.multimodal.projectors import build_projector
from turbo.modeling.multimodal.readers import build_reader
from turbo.modeling.multimodal.shapes import shape_problems

logger = logging.getLogger("turbo")

PROJECTORS_FILE = "projectors.safetensors"
ENCODERS_FOLDER = "encoders"


def check_shapes(
    encoders: dict[str, Any], projectors: dict[str, Any], n_modality_embeddings: int, where: str
) -> dict[str, tuple[int, int]]:
    """(tokens, width) per modality's encoder; SettingsError, naming the value to write, if n does not fit.

    Reads only each encoder's config.json, so it runs before any weights load (the preflight reports
    the same problems earlier, with every other one).
    """
    shapes, problems = shape_problems(encoders, projectors, n_modality_embeddings, where)
    if problems:
        raise SettingsError("\n".join(problems))
    return shapes


def build_readers(reader_settings: dict[str, Any]) -> dict[str, Any]:
    return {modality: build_reader(settings) for modality, settings in reader_settings.items()}


def build_encoders(encoders: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """Encoders, frozen unless their settings train them (all weights, or a LoRA on top)."""
    from turbo.modeling.peft import PEFT_CONFIGS

    built = {}
    for modality, settings in encoders.items():
        encoder = build_encoder(settings, dtype)
        encoder.requires_grad_(not settings.freeze)
        if settings.peft_settings is not None:
            from peft import get_peft_model

            config = PEFT_CONFIGS["LORA"](settings.peft_settings, settings.peft_settings.task_type, None)
            try:
                encoder.model = get_peft_model(encoder.model, config)
            except ValueError as exc:
                raise ModelError(
                    f"modality_encoder_settings_mapping.{modality}.peft_settings: {exc}"
                ) from exc
        built[modality] = encoder
    return built


def build_projectors(
    projectors: dict[str, Any],
    shapes: dict[str, tuple[int, int]],
    hidden_size: int,
    n_modality_embeddings: int,
    seed: int,
    dtype: Any,
) -> dict[str, Any]:
    """Fresh projectors, initialised from a fixed seed so runs on raw and pre-encoded media agree."""
    import torch

    built = {}
    for modality in sorted(projectors):
        n_in, width = shapes[modality]
        torch.manual_seed(seed)
        projector = build_projector(projectors[modality], width, hidden_size, n_in, n_modality_embeddings)
        built[modality] = projector.to(dtype)
    return built


def read_projector_file(path: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    try:
        if path.suffix in (".pt", ".bin", ".pth"):
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        else:
            tensors = load_file(str(path))
    except Exception as exc:  # safetensors and torch raise their own error types
        raise ModelError(f"cannot read projector weights from {path}: {exc}") from exc
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ModelError(f"{path}: expected a flat dict of tensors (a state dict)")
    return tensors


def load_projector_weights(projectors: dict[str, Any], path: str | Path, modality: str | None = None) -> None:
    """Projector weights from safetensors, or a torch .pt/.bin state dict (the original's
    modality_adapters.pt, read with weights_only=True: tensors only, never arbitrary objects): keys
    '<modality>.<param>', or bare keys for one modality. Each projector reads the namings it knows
    (its `renamed_state`: the llava projector reads transformers' linear_1/linear_2 and turbo's earlier
    net.0/net.2)."""
    tensors = read_projector_file(Path(path))
    for name, projector in projectors.items():
        if modality is not None and name != modality:
            continue
        prefix = f"{name}."
        state = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        if not state and modality is not None:
            state = tensors
        try:
            renamed = getattr(projector, "renamed_state", None)
            projector.load_state_dict(renamed(state) if renamed is not None else state)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{path}: the {name} projector weights do not fit: {exc}") from exc


def projector_state(projectors: Any) -> dict[str, Any]:
    return {
        f"{modality}.{key}": value.detach().cpu().contiguous()
        for modality, projector in projectors.items()
        for key, value in projector.state_dict().items()
    }
