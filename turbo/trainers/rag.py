"""The Trainer of RAG-Sequence: marginal NLL loss, its own learning rate for the question encoder, and
checkpoints that hold generator/, question_encoder/ and both tokenizers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from turbo.trainers.base import MetricsTrainer
from turbo.trainers.losses.rag import rag_sequence_loss

GENERATOR, QUESTION_ENCODER = "generator", "question_encoder"
GENERATOR_TOKENIZER, QUESTION_ENCODER_TOKENIZER = "generator_tokenizer", "question_encoder_tokenizer"


@dataclass(frozen=True)
class RagTokenizers:
    """Both tokenizers, saved side by side (what save_final and every checkpoint write)."""

    generator: Any
    question_encoder: Any

    def save_pretrained(self, folder: str | Path) -> None:
        self.generator.save_pretrained(str(Path(folder) / GENERATOR_TOKENIZER))
        self.question_encoder.save_pretrained(str(Path(folder) / QUESTION_ENCODER_TOKENIZER))


class RagTrainer(MetricsTrainer):
    def __init__(
        self, *args: Any, tokenizers: RagTokenizers, encoder_learning_rate: float | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tokenizers = tokenizers
        self.encoder_learning_rate = encoder_learning_rate

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        out = model(**inputs)
        loss = rag_sequence_loss(out["doc_scores"], out["sequence_logps"], self.answer_tokens(out))
        prior = torch.softmax(out["doc_scores"].detach().float(), dim=-1)
        metrics = self.metrics(model)
        metrics["top_doc_probability"].extend(prior[:, 0].tolist())
        metrics["answer_logp_top_doc"].extend(out["sequence_logps"].detach()[:, 0].float().tolist())
        return (loss, out) if return_outputs else loss

    def answer_tokens(self, out: dict[str, Any]) -> torch.Tensor:
        """What the batch's loss is divided by: its answer tokens; with several processes, the mean over
        the ranks of theirs. DDP averages the ranks' gradients, so each rank dividing by its own count
        would weigh a token of a rank with short answers more than one of a rank with long ones (the
        one-process run with the ranks' batches together divides by their total)."""
        tokens = out["num_answer_tokens"].detach().float()
        if self.accelerator.num_processes > 1:
            tokens = self.accelerator.reduce(tokens, reduction="sum") / self.accelerator.num_processes
        return tokens.clamp(min=1)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        decay = set(self.get_decay_parameter_names(model))
        encoder_rate = self.encoder_learning_rate
        groups: dict[tuple[bool, bool], list] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                encoder = name.startswith(f"{QUESTION_ENCODER}.") or f".{QUESTION_ENCODER}." in name
                groups.setdefault((encoder, name in decay), []).append(parameter)
        self.optimizer = optimizer_cls(
            [
                {
                    "params": params,
                    "lr": encoder_rate if encoder and encoder_rate is not None else self.args.learning_rate,
                    "weight_decay": self.args.weight_decay if decays else 0.0,
                }
                for (encoder, decays), params in groups.items()
            ],
            **optimizer_kwargs,
        )
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        model.generator.save_pretrained(str(folder / GENERATOR))
        model.question_encoder.save_pretrained(str(folder / QUESTION_ENCODER))
        self.tokenizers.save_pretrained(folder)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from peft import set_peft_model_state_dict

        model = self.accelerator.unwrap_model(self.model if model is None else model)
        folder = Path(resume_from_checkpoint)
        adapter = folder / GENERATOR / "adapter_model.safetensors"
        if adapter.is_file():
            set_peft_model_state_dict(model.generator, load_file(str(adapter)))
        else:
            model.generator.load_state_dict(
                load_file(str(folder / GENERATOR / "model.safetensors")), strict=False
            )
        model.question_encoder.load_state_dict(
            load_file(str(folder / QUESTION_ENCODER / "model.safetensors")), strict=False
        )
