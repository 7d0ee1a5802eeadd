"""The RAG-Sequence model, composed from built parts: a generator, a question encoder, a retriever.

forward: encode the questions -> retrieve n_docs passages (no gradient through the search) ->
document scores = question vector · stored passage vector (so the encoder gets gradients) ->
the generator's answer log-likelihood once per document. The loss (trainers/losses/rag.py)
marginalises over the documents. The model reads no settings and no files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from turbo.labels import IGNORE_INDEX
from turbo.modeling.rag.encoder import embed

MISSING_SCORE = -1e4


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the summed log-probabilities of the labelled tokens (next-token shift), and their count."""
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    token_nll = nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shifted_labels.shape)
    mask = shifted_labels != IGNORE_INDEX
    return -(token_nll * mask).sum(dim=-1), mask.sum(dim=-1)


class RagSequenceModel(nn.Module):
    main_input_name = "question_input_ids"

    def __init__(
        self,
        generator: nn.Module,
        question_encoder: nn.Module,
        retriever: Any,
        generator_inputs: Callable[[list, list], dict[str, torch.Tensor]],
        *,
        n_docs: int,
        pooling: str,
        normalize: bool,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.question_encoder = question_encoder
        self.retriever = retriever
        self.generator_inputs = generator_inputs
        self.n_docs = n_docs
        self.pooling = pooling
        self.normalize = normalize
        self.config = getattr(generator, "config", None)

    def question_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return embed(self.question_encoder, input_ids, attention_mask, self.pooling, self.normalize)

    def forward(
        self,
        question_input_ids: torch.Tensor,
        question_attention_mask: torch.Tensor,
        samples: list,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        questions = self.question_vectors(question_input_ids, question_attention_mask)
        ids = self.retriever.search(questions.detach().float().cpu().numpy(), self.n_docs)
        stored = torch.from_numpy(self.retriever.embeddings(ids)).to(questions.device, questions.dtype)
        doc_scores = torch.einsum("bd,bnd->bn", questions, stored)
        repeated = torch.from_numpy(ids == ids[:, :1]).to(questions.device)
        repeated[:, 0] = False  # a slot the index left empty repeats the first hit: no weight for it
        doc_scores = doc_scores.masked_fill(repeated, MISSING_SCORE)
        batch = self.generator_inputs(samples, self.retriever.documents(ids))
        device = question_input_ids.device
        logits = self.generator(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        logps, counts = sequence_logps(logits, batch["labels"].to(device))
        return {
            "doc_scores": doc_scores,
            "sequence_logps": logps.view(len(samples), self.n_docs),
            "num_answer_tokens": counts.view(len(samples), self.n_docs)[:, 0].sum(),
            "doc_ids": torch.from_numpy(ids),
        }

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        self.generator.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=gradient_checkpointing_kwargs
        )
        if hasattr(self.generator, "enable_input_require_grads"):
            self.generator.enable_input_require_grads()
