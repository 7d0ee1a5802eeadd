"""Modality projectors: encoder tokens (items, n_in, width) -> LM embeddings (items, n_out, hidden)."""

from __future__ import annotations

from typing import Any

from turbo.modeling.multimodal.projectors.c_abs import CAbstractor
from turbo.modeling.multimodal.projectors.llava import LlavaProjector

PROJECTORS: dict[str, type] = {"llava": LlavaProjector, "c_abs": CAbstractor}


def build_projector(settings: Any, in_width: int, out_width: int, n_in: int, n_out: int) -> Any:
    return PROJECTORS[settings.projector_type](settings, in_width, out_width, n_in, n_out)


__all__ = ["PROJECTORS", "build_projector"]
