from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from turbo.errors import ModelError


def load_pretrained(model_class: Any, path: str | Path, dtype: Any) -> Any:
    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        return model_class.from_pretrained(str(path), local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load an encoder from {path}: {exc}") from exc


class Encoder(nn.Module):
    """Wraps a transformers tower as `model`; inputs follow the tower's own dtype."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def input_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype
