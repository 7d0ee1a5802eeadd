"""A language model with modality encoders and projectors, composed from parts that are already built.

The projected features replace the input embeddings at the positions of each modality's token, in
order: the k-th run of n tokens in the batch (row-major) takes the k-th media item of that modality.
The model reads no settings and no files and fixes no dtype: features follow the embeddings' dtype.
"""

from __future__ import annotations

from contextlib import nullcontext
from copy import deepcopy
from typing import Any

import torch
from torch import nn

from turbo.errors import ModelError


class MultimodalModel(nn.Module):
    def __init__(
        self,
        language_model: nn.Module,
        encoders: dict[str, nn.Module],
        projectors: dict[str, nn.Module],
        modality_token_ids: dict[str, int],
    ) -> None:
        super().__init__()
        if set(encoders) != set(projectors) or not set(encoders) <= set(modality_token_ids):
            raise ModelError("each modality needs an encoder, a projector and a token id")
        self.language_model = language_model
        self.encoders = nn.ModuleDict(encoders)
        self.projectors = nn.ModuleDict(projectors)
        self.modality_token_ids = dict(modality_token_ids)
        self.config = getattr(language_model, "config", None)

    def embed(self, input_ids: torch.Tensor, modality_inputs: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """The LM's input embeddings with every modality token's row replaced by projected features."""
        embeddings = self.language_model.get_input_embeddings()(input_ids)
        for modality in self.encoders:
            positions = input_ids == self.modality_token_ids[modality]
            inputs = (modality_inputs or {}).get(modality)
            if inputs is None or inputs.shape[0] == 0:
                if positions.any():
                    raise ModelError(f"the batch has {modality} tokens but no {modality} inputs")
                continue
            features = self.projectors[modality](self.encoders[modality](inputs))
            if features.shape[0] * features.shape[1] != int(positions.sum()):
                raise ModelError(
                    f"{int(positions.sum())} {modality} token positions for {features.shape[0]} items of "
                    f"{features.shape[1]} embeddings; n_modality_embeddings does not fit the projector"
                )
            flat = features.reshape(-1, features.shape[-1]).to(embeddings.dtype)
            embeddings = embeddings.masked_scatter(positions.unsqueeze(-1), flat)
        return embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        modality_inputs: dict[str, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> Any:
        return self.language_model(
            inputs_embeds=self.embed(input_ids, modality_inputs),
            attention_mask=attention_mask,
            labels=labels,
            **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        modality_inputs: dict[str, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The LM's generate on the spliced embeddings; returns the prompt ids followed by new tokens."""
        return self.language_model.generate(
            input_ids=input_ids,
            inputs_embeds=self.embed(input_ids, modality_inputs),
            attention_mask=attention_mask,
            **kwargs,
        )

    def disable_adapter(self) -> Any:
        """A context in which the LM runs without its PEFT adapter (a frozen LM without one runs as it is)."""
        if hasattr(self.language_model, "disable_adapter"):
            return self.language_model.disable_adapter()
        if any(parameter.requires_grad for parameter in self.language_model.parameters()):
            raise ModelError("the language model trains in full and has no adapter to disable")
        return nullcontext()

    def frozen_start(self, language_model: nn.Module | None = None) -> MultimodalModel:
        """A reference that keeps this model's weights as they are now while this model trains:
        `language_model` (a separate frozen LM) or this model's own LM (run it under `disable_adapter()`),
        the encoders (a frozen copy of any that trains) and a frozen copy of the projectors."""
        encoders = {
            modality: _frozen_copy(encoder) if _trains(encoder) else encoder
            for modality, encoder in self.encoders.items()
        }
        projectors = {modality: _frozen_copy(projector) for modality, projector in self.projectors.items()}
        lm = self.language_model if language_model is None else language_model
        return MultimodalModel(lm, encoders, projectors, self.modality_token_ids)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        self.language_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=gradient_checkpointing_kwargs
        )
        if hasattr(self.language_model, "enable_input_require_grads"):
            self.language_model.enable_input_require_grads()


def _trains(module: nn.Module) -> bool:
    return any(parameter.requires_grad for parameter in module.parameters())


def _frozen_copy(module: nn.Module) -> nn.Module:
    copy = deepcopy(module)
    copy.requires_grad_(False)
    return copy
