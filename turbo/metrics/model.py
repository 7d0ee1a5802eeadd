"""Metrics that run models: log-probs of the answers under the trained model (perplexity, kl,
retrieval_utility) and the score of a reward model (reward).

They run on every process, each on its shard of the prompts (under ZeRO-3 every forward pass needs
every rank), so each does the same number of forward passes whatever its answers look like.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from turbo.data.records import ChatMessage
from turbo.errors import TurboError
from turbo.metrics.base import EvalSample, ModelContext, Scores
from turbo.metrics.text import Answers, per_sample
from turbo.settings.metrics import (
    KlParameters,
    MetricParameters,
    RetrievalUtilityParameters,
    RewardParameters,
)


@torch.no_grad()
def answer_token_logps(
    model: Any, prompts: list[list[int]], answers: list[list[int]], batch: int, pad_id: int
) -> list[torch.Tensor]:
    """log p(answer token | prompt, earlier answer tokens) for each (prompt, answer) pair, in order."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    for start in range(0, len(prompts), batch):
        rows = [
            p + a for p, a in zip(prompts[start : start + batch], answers[start : start + batch], strict=True)
        ]
        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids.to(device)[:, 1:, None])[..., 0]
        for i, (prompt, answer) in enumerate(
            zip(prompts[start : start + batch], answers[start : start + batch], strict=True)
        ):
            out.append(logps[i, len(prompt) - 1 : len(prompt) - 1 + len(answer)].cpu())
    model.train(was_training)
    return out


def _flatten(samples: list[EvalSample], answers: Answers, tokenizer: Any) -> tuple[list, list, list[int]]:
    prompts, answer_ids, owners = [], [], []
    for index, (sample, texts) in enumerate(zip(samples, answers, strict=True)):
        for text in texts:
            prompts.append(list(sample.prompt_ids or []))
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            answer_ids.append(ids or [tokenizer.eos_token_id])  # an empty answer still takes a pass
            owners.append(index)
    return prompts, answer_ids, owners


def _regroup(values: list[float | None], owners: list[int], count: int) -> list[float | None]:
    grouped: list[list[float | None]] = [[] for _ in range(count)]
    for value, owner in zip(values, owners, strict=True):
        grouped[owner].append(value)
    return per_sample(grouped)


def _needs_model(ctx: ModelContext | None, name: str) -> ModelContext:
    if ctx is None or ctx.model is None:
        raise TurboError(
            f"the {name} metric reads the trained model's log-probs: it runs during training only"
        )
    return ctx


def perplexity(params: MetricParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    ctx = _needs_model(ctx, "perplexity")
    prompts, ids, owners = _flatten(samples, answers, ctx.tokenizer)
    logps = answer_token_logps(ctx.model, prompts, ids, ctx.batch, ctx.tokenizer.pad_token_id)
    values = [math.exp(-float(lp.mean())) for lp in logps]
    return {"perplexity": _regroup(values, owners, len(samples))}


def kl(params: KlParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    ctx = _needs_model(ctx, "kl")
    if ctx.reference is None:
        raise TurboError(
            "the kl metric needs a reference model: train a PEFT adapter (the base model is the reference) "
            "or use a method with a reference model"
        )
    prompts, ids, owners = _flatten(samples, answers, ctx.tokenizer)
    pad = ctx.tokenizer.pad_token_id
    policy = answer_token_logps(ctx.model, prompts, ids, ctx.batch, pad)
    with ctx.reference() as reference:
        ref = answer_token_logps(reference, prompts, ids, ctx.batch, pad)
    values = [float((p - r).sum()) for p, r in zip(policy, ref, strict=True)]
    return {"kl": _regroup(values, owners, len(samples))}


def strip_documents(messages: list[ChatMessage], separator: str) -> tuple[list[ChatMessage], bool]:
    """The messages with their retrieved documents removed (all but the text after the last separator)."""
    stripped, found = [], False
    for message in messages:
        if separator in message.content:
            found = True
            message = message.model_copy(update={"content": message.content.split(separator)[-1].strip()})
        stripped.append(message)
    return stripped, found


def retrieval_utility(
    params: RetrievalUtilityParameters, samples: list[EvalSample], answers: Answers, ctx: Any
) -> Scores:
    """Cross-entropy of the answer (nats per token) without the documents minus with them: how much the
    retrieved documents help the model to give this answer. None for prompts without documents."""
    ctx = _needs_model(ctx, "retrieval_utility")
    if ctx.encode_prompt is None:
        raise TurboError("the retrieval_utility metric needs chat prompts")
    prompts, ids, owners = _flatten(samples, answers, ctx.tokenizer)
    bare, has_docs = [], []
    for sample in samples:
        messages, found = strip_documents(sample.messages, params.doc_sep_symbol)
        bare.append(ctx.encode_prompt(messages) if found else list(sample.prompt_ids or []))
        has_docs.append(found)
    pad = ctx.tokenizer.pad_token_id
    with_docs = answer_token_logps(ctx.model, prompts, ids, ctx.batch, pad)
    without = answer_token_logps(ctx.model, [bare[o] for o in owners], ids, ctx.batch, pad)
    values = [
        float(w.mean() - n.mean()) if has_docs[o] else None  # -CE_with - (-CE_without)
        for w, n, o in zip(with_docs, without, owners, strict=True)
    ]
    return {"retrieval_utility": _regroup(values, owners, len(samples))}


_SCORERS: dict[str, RewardScorer] = {}


def reward(params: RewardParameters, samples: list[EvalSample], answers: Answers, ctx: Any) -> Scores:
    """Score each conversation with the reward model, loaded once per process and kept."""
    key = f"{params.model_settings.model_path}:{params.name}"
    if key not in _SCORERS:
        _SCORERS[key] = RewardScorer(params)
    return _SCORERS[key](params, samples, answers, ctx)


class RewardScorer:
    """A reward model loaded once (on first use) and kept for every evaluation."""

    def __init__(self, params: RewardParameters) -> None:
        self.params = params
        self.model: Any = None
        self.tokenizer: Any = None

    def load(self, device: Any = None) -> None:
        from turbo.modeling.loading import load_model
        from turbo.modeling.tokenizer import load_tokenizer

        params = self.params
        self.tokenizer = load_tokenizer(params.tokenizer_settings, params.model_settings)
        self.model = load_model(params.model_settings, self.tokenizer, params.tokenizer_settings)
        self.model.requires_grad_(False)
        if device is not None:
            self.model.to(device)

    def __call__(
        self, params: RewardParameters, samples: list[EvalSample], answers: Answers, ctx: Any
    ) -> Scores:
        from turbo.data.conversation import encode_conversations
        from turbo.generators.classification import sequence_logits
        from turbo.settings.datasets.rendering import ChatRenderSettings

        if self.model is None:
            self.load(getattr(ctx, "device", None))
        render = ChatRenderSettings(
            prompt_template=params.prompt_template, max_tokens_count=params.max_tokens_count, keep_end=True
        )
        conversations, owners = [], []
        for index, (sample, texts) in enumerate(zip(samples, answers, strict=True)):
            head = list(sample.messages)
            if params.system_prompt is not None and (not head or head[0].role != "system"):
                head.insert(0, ChatMessage(role="system", content=params.system_prompt))
            for text in texts:
                conversations.append((head + [ChatMessage(role="bot", content=text)], sample.source))
                owners.append(index)
        encoded = encode_conversations(conversations, render, self.tokenizer)
        logits = sequence_logits(
            self.model, self.tokenizer, [e.input_ids for e in encoded], params.micro_batch
        )
        return {params.name: _regroup([row[0] for row in logits], owners, len(samples))}
