"""The LLaVA-1.5 projector: Linear -> GELU -> Linear on each encoder token (arXiv:2310.03744).

Its weights are named as transformers' `LlavaMultiModalProjector` names them (`linear_1`, `linear_2`), as
the original project saved them in its modality_adapters.pt; turbo's earlier files named the same two
layers `net.0` / `net.2` and still load.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

OLD_NAMES = {"net.0.": "linear_1.", "net.2.": "linear_2."}  # turbo's earlier nn.Sequential


class LlavaProjector(nn.Module):
    def __init__(self, settings: Any, in_width: int, out_width: int, n_in: int, n_out: int) -> None:
        super().__init__()
        if n_in != n_out:
            raise ValueError(f"the llava projector keeps all {n_in} tokens, not {n_out}")
        self.linear_1 = nn.Linear(in_width, out_width)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_width, out_width)

    @staticmethod
    def renamed_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict in either naming (linear_1/linear_2, or turbo's earlier net.0/net.2) in this one."""
        renamed = {}
        for key, value in state.items():
            old = next((prefix for prefix in OLD_NAMES if key.startswith(prefix)), None)
            renamed[OLD_NAMES[old] + key[len(old) :] if old else key] = value
        return renamed

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))
