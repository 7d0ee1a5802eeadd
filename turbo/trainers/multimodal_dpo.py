"""DPO-family losses on a MultimodalModel: DpoTrainer's loss and metrics, MultimodalParts' optimizer and
checkpoints."""

from __future__ import annotations

from typing import Any

import torch

from turbo.trainers.dpo import REFERENCE_KEYS, DpoTrainer
from turbo.trainers.logps import reference_logps
from turbo.trainers.multimodal import MultimodalParts


class MultimodalDpoTrainer(MultimodalParts, DpoTrainer):
    """The reference is precomputed, a separate frozen MultimodalModel (`ref_model`), or `start`: the
    policy's own LM with its adapter disabled beside frozen copies of the starting projectors (and of any
    encoder that trains), so a projector that learns does not move the reference."""

    def __init__(self, *args: Any, start: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # MultimodalParts takes part_learning_rates
        self.start = start
        if start is not None:  # its own copies move; the shared LM is already where the policy is
            for modality in start.projectors:
                start.projectors[modality].to(self.args.device)
            for modality in start.encoders:
                start.encoders[modality].to(self.args.device)

    def _reference(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.uses_reference or self.ref_model is not None or self.start is None:
            return super()._reference(model, inputs)
        # `start` with its adapter disabled
        return reference_logps(self.start, inputs, REFERENCE_KEYS[""], lc_alpha=self.lc_alpha)
