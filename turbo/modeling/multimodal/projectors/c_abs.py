"""The C-Abstractor (Honeybee, Cha et al. 2024, arXiv:2312.06742).

Encoder tokens on their h x w grid -> residual conv blocks -> adaptive average pooling to a
s x s grid (s*s = n_modality_embeddings) -> residual conv blocks -> Linear -> GELU -> Linear.
Convolutions keep locality that plain resampling would lose while the pooling sets the token count.

The original project's c_abs is another network under the same name (timm RegStage blocks, a learned
position embedding, a SiLU read-out, 1024 channels inside): its weights (keys `pos_emb`, `net.*`) have no
place here, and loading them says so instead of failing on a key list.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class ResidualConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.GroupNorm(1, out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.GroupNorm(1, out_channels),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


def _stage(in_channels: int, out_channels: int, depth: int) -> nn.Module:
    if depth == 0:
        return nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
    channels = [in_channels] + [out_channels] * depth
    return nn.Sequential(*(ResidualConvBlock(a, b) for a, b in zip(channels, channels[1:], strict=False)))


class CAbstractor(nn.Module):
    def __init__(self, settings: Any, in_width: int, out_width: int, n_in: int, n_out: int) -> None:
        super().__init__()
        problem = settings.input_problem(n_in)
        if problem or math.isqrt(n_out) ** 2 != n_out:
            raise ValueError(problem or f"c_abs needs a square number of output tokens, not {n_out}")
        self.side_in, self.side_out = math.isqrt(n_in), math.isqrt(n_out)
        depth = getattr(settings, "depth", 1)
        self.before = _stage(in_width, out_width, depth)
        self.pool = nn.AdaptiveAvgPool2d(self.side_out)
        self.after = _stage(out_width, out_width, depth)
        self.readout = nn.Sequential(
            nn.Linear(out_width, out_width), nn.GELU(), nn.Linear(out_width, out_width)
        )

    @staticmethod
    def renamed_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state dict as it is; ValueError for the original project's c_abs weights."""
        if any(key == "pos_emb" or key.startswith("net.") for key in state):
            raise ValueError(
                "these are the original project's c_abs weights (timm RegStage blocks and a position "
                "embedding: keys pos_emb, net.*), a different network from turbo's c_abs; train the "
                "projector again with turbo, or use the llava projector"
            )
        return state

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        items, _, width = features.shape
        grid = features.transpose(1, 2).reshape(items, width, self.side_in, self.side_in)
        grid = self.after(self.pool(self.before(grid)))
        return self.readout(grid.flatten(2).transpose(1, 2))
