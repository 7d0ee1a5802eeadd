"""One evaluation callback for every trainer: cherry-picks and their metrics at each evaluation.

Every process takes part: the prompts are sharded over the ranks (padded so that every rank runs the
same number of generate and forward passes, which ZeRO-3 needs), each rank generates its shard and
computes the per-sample metrics that need models, and rank 0 gathers everything, computes the
metrics over whole datasets, writes cherry_picks/step_N.jsonl and logs `cherry_pick/<dataset>/<metric>`
through the trainer's callbacks (metrics.jsonl, tensorboard, wandb, clearml), like the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from turbo.io import write_jsonl
from turbo.metrics.base import EvalSample, ModelContext, Scores
from turbo.metrics.registry import compute_scores, summarize
from turbo.settings.cherry_pick import CherryPickSettings

logger = logging.getLogger("turbo")

# answers per sample; a method may also return, per sample, fields to add to its row (RAG: what it retrieved)
Generate = Callable[[Any, list[EvalSample]], list[list[str]] | tuple[list[list[str]], list[dict[str, Any]]]]
"""(model, samples) -> the answers of each sample; the method's own way to answer (or score)."""


def shard(count: int, rank: int, world: int) -> list[int]:
    """This rank's sample indices: every rank gets as many (the last index repeats to fill)."""
    indices = list(range(count))
    while indices and len(indices) % world:
        indices.append(indices[-1])
    return indices[rank::world]


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(value: Any) -> list[Any]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def reference_of(trainer: Any, model: Any) -> Callable[[], AbstractContextManager[Any]] | None:
    """The trainer's separate reference model, else the model with its adapter disabled, else none."""
    ref = getattr(trainer, "ref_model", None)
    if ref is not None:
        return lambda: nullcontext(ref)
    if hasattr(model, "disable_adapter"):

        @contextmanager
        def disabled() -> Iterator[Any]:
            with model.disable_adapter():
                yield model

        return disabled
    return None


class EvaluationCallback(TrainerCallback):
    """Set `trainer` after the trainer is built (see `attach`)."""

    def __init__(
        self,
        settings: CherryPickSettings,
        samples: list[EvalSample],
        generate: Generate,
        folder: Path,
        tokenizer: Any,
        encode_prompt: Callable[[list], list[int]] | None = None,
    ) -> None:
        self.settings = settings
        self.samples = samples
        self.generate = generate
        self.folder = folder
        self.tokenizer = tokenizer
        self.encode_prompt = encode_prompt
        self.trainer: Any = None

    def attach(self, trainer: Any) -> EvaluationCallback:
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None:
            return
        rank, world = _world()
        mine = shard(len(self.samples), rank, world)
        samples = [self.samples[i] for i in mine]
        answers = self.generate(model, samples)
        extras: list[dict[str, Any]] = [{} for _ in samples]
        if isinstance(answers, tuple):
            answers, extras = answers
        ctx = ModelContext(
            model=model,
            tokenizer=self.tokenizer,
            batch=args.per_device_eval_batch_size,
            reference=reference_of(self.trainer, model),
            encode_prompt=self.encode_prompt,
            device=args.device,
        )
        metrics = self.settings.metric_settings
        per_sample = compute_scores(metrics, samples, answers, ctx, per_sample=True)
        parts = _gather((mine, answers, per_sample, extras))
        if rank != 0:
            return
        full_answers: list[list[str]] = [[] for _ in self.samples]
        full_extras: list[dict[str, Any]] = [{} for _ in self.samples]
        full_scores: list[Scores] = [{} for _ in metrics]
        for indices, part_answers, part_scores, part_extras in parts:
            for position, index in enumerate(indices):
                full_answers[index] = part_answers[position]
                full_extras[index] = part_extras[position]
            for k, scores in enumerate(part_scores):
                for label, values in scores.items():
                    column = full_scores[k].setdefault(label, [None] * len(self.samples))
                    for position, index in enumerate(indices):
                        column[index] = values[position]
        logs, rows = self._by_dataset(full_answers, full_scores, ctx)
        rows = [{**row, **extra} for row, extra in zip(rows, full_extras, strict=True)]
        write_jsonl(self.folder / f"step_{state.global_step}.jsonl", rows)
        if logs and self.trainer is not None:
            self.trainer.callback_handler.on_log(args, state, control, logs=logs)

    def _by_dataset(
        self, answers: list[list[str]], per_sample: list[Scores], ctx: ModelContext
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        metrics = self.settings.metric_settings
        logs: dict[str, float] = {}
        rows: list[dict[str, Any]] = [{}] * len(self.samples)
        sources = list(dict.fromkeys(sample.source for sample in self.samples))
        for source in sources:
            indices = [i for i, sample in enumerate(self.samples) if sample.source == source]
            samples = [self.samples[i] for i in indices]
            group_answers = [answers[i] for i in indices]
            text = compute_scores(metrics, samples, group_answers, ctx, per_sample=False)
            scores = [
                {**t, **{label: [values[i] for i in indices] for label, values in p.items()}}
                for t, p in zip(text, per_sample, strict=True)
            ]
            means, element_wise = summarize(metrics, scores)
            logs.update({f"cherry_pick/{source}/{label}": value for label, value in means.items()})
            for position, (index, sample) in enumerate(zip(indices, samples, strict=True)):
                row = {**sample.row, "dataset_name": source}
                row["answers"] = [{"id": str(k), "content": text} for k, text in enumerate(answers[index])]
                if element_wise:
                    row["metrics"] = {label: values[position] for label, values in element_wise.items()}
                rows[index] = row
        return logs, rows


def chat_generate(settings: Any, tokenizer: Any, batch: int) -> Generate:
    """Answers from `generate` with the cherry-pick generation settings (chat, DPO, KTO)."""
    from turbo.generators.transformers import generate_answers

    def generate(model: Any, samples: list[EvalSample]) -> list[list[str]]:
        return generate_answers(
            model,
            tokenizer,
            [list(sample.prompt_ids or []) for sample in samples],
            settings.generator_transformers_settings,
            settings.custom_generation_settings,
            batch=batch,
        )

    return generate


def chat_prompt_encoder(dataset_settings: Any, tokenizer: Any, seed: int) -> Callable[[list], list[int]]:
    """messages -> the prompt ids the chat dataset would build for them (for retrieval_utility)."""
    from turbo.data.chat import tokenize_records
    from turbo.data.readers import Located
    from turbo.data.records import ChatRecord
    from turbo.data.report import SourceReport

    source = dataset_settings.sources[0].model_copy(update={"system_prompt": None})

    def encode(messages: list) -> list[int]:
        record = Located(ChatRecord(id="prompt", messages=messages), Path("<cherry-pick>"), 0)
        report = SourceReport(source.name, "<cherry-pick>", read=1, sampled=1)
        built = tokenize_records([record], source, dataset_settings, tokenizer, seed, True, report)
        return built[0].input_ids if built else []

    return encode


def _rejected(sample: EvalSample) -> list[list[int]]:
    rejected = getattr(sample.payload, "rejected_ids", None)
    return [list(sample.payload.prompt_ids) + list(rejected)] if rejected is not None else []


def score_generate(tokenizer: Any, batch: int, predict: bool) -> Generate:
    """Reward models answer with their score; classifiers with their predicted label."""
    from turbo.generators.classification import sequence_logits

    def generate(model: Any, samples: list[EvalSample]) -> list[list[str]]:
        # a pair sample is scored twice: its chosen answer (prompt_ids), then its rejected one
        sequences = [[list(s.prompt_ids or [])] + _rejected(s) for s in samples]
        logits = sequence_logits(model, tokenizer, [ids for group in sequences for ids in group], batch)
        if predict:
            return [[str(max(range(len(row)), key=row.__getitem__))] for row in logits]
        scores = iter(f"{row[0]:.6g}" for row in logits)
        return [[next(scores) for _ in group] for group in sequences]

    return generate
