"""Vision towers: CLIP (penultimate layer, CLS dropped) and SigLIP (last layer), one token per patch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from turbo.modeling.multimodal.encoders.base import Encoder, load_pretrained


class ClipEncoder(Encoder):
    @classmethod
    def load(cls, path: str | Path, dtype: Any = None) -> ClipEncoder:
        from transformers import CLIPVisionModel

        return cls(load_pretrained(CLIPVisionModel, path, dtype))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values.to(self.input_dtype), output_hidden_states=True)
        return output.hidden_states[-2][:, 1:]


class SiglipEncoder(Encoder):
    @classmethod
    def load(cls, path: str | Path, dtype: Any = None) -> SiglipEncoder:
        from transformers import SiglipVisionModel

        return cls(load_pretrained(SiglipVisionModel, path, dtype))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values.to(self.input_dtype)).last_hidden_state


class PassThroughEncoder(nn.Module):
    """For features encoded beforehand (is_pickle: true): returns them as they are."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features
