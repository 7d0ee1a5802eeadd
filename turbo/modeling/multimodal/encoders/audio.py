"""The Whisper audio encoder: log-mel features -> one token per two frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from turbo.modeling.multimodal.encoders.base import Encoder, load_pretrained


class WhisperEncoder(Encoder):
    @classmethod
    def load(cls, path: str | Path, dtype: Any = None) -> WhisperEncoder:
        from transformers import WhisperModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as EncoderOnly

        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        if "WhisperEncoder" in config.get("architectures", []):  # an encoder train_multimodal saved
            return cls(load_pretrained(EncoderOnly, path, dtype))
        # WhisperModel reads both WhisperModel and WhisperForConditionalGeneration checkpoints
        return cls(load_pretrained(WhisperModel, path, dtype).get_encoder())

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.model(input_features=input_features.to(self.input_dtype)).last_hidden_state
