"""The LLaVA-1.5 projector: Linear -> GELU -> Linear on each encoder token (arXiv:2310.03744)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LlavaProjector(nn.Module):
    def __init__(self, settings: Any, in_width: int, out_width: int, n_in: int, n_out: int) -> None:
        super().__init__()
        if n_in != n_out:
            raise ValueError(f"the llava projector keeps all {n_in} tokens, not {n_out}")
        self.net = nn.Sequential(nn.Linear(in_width, out_width), nn.GELU(), nn.Linear(out_width, out_width))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
