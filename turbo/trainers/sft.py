"""The SFT Trainer: transformers' Trainer whose training loss never builds the full-vocabulary logits."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from turbo.trainers.losses.chunked_ce import chunked_cross_entropy, no_logits, supports_chunked_loss

__all__ = ["SftTrainer", "supports_chunked_loss"]  # supports_chunked_loss: the pipeline's import


class SftTrainer(Trainer):
    """Trainer with `chunked=True`: the training loss is `chunked_cross_entropy` of the final hidden states.

    The model runs with `logits_to_keep` keeping no position (no_logits) and returns its hidden states;
    the loss projects only the labelled positions, a chunk at a time. Evaluation keeps the plain loss.
    """

    def __init__(self, *args: Any, chunked: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunked = chunked
        head = self.model.get_output_embeddings() if chunked else None
        self._head_weight = head.weight if head is not None else None

    def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
        if "cu_seq_lens_q" not in inputs or self.args.include_num_input_tokens_seen == "no":
            return super()._track_num_input_tokens(inputs)
        # a padding-free batch: every position is a real token (counting ids != pad would miss the real
        # end-of-turn tokens of tokenizers whose pad token is their eos)
        tokens = torch.as_tensor(inputs["input_ids"].numel(), device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()
        return None

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        if not (self.chunked and model.training and "labels" in inputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs["labels"]
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        keep = no_logits(labels.device)
        outputs = model(**forward, output_hidden_states=True, logits_to_keep=keep)
        loss = chunked_cross_entropy(outputs.hidden_states[-1], self._head_weight, labels, num_items_in_batch)
        accumulated = self.model_accepts_loss_kwargs and num_items_in_batch is not None
        if self.args.average_tokens_across_devices and accumulated:  # as Trainer.compute_loss scales it
            scale = self.accelerator.num_processes // self.get_tp_size()
            loss = loss * (scale if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss
