"""What train_ppo and train_grpo share, as plain functions: the prompt batches, sampling answers with a
rollout engine (turbo.generators.engines) and scoring them, per-token log-probs through
turbo.trainers.logps, and the loop of optimiser updates over one rollout (the held-out evaluation is
rollout_evaluation.py, the shared Trainer rollout_trainer.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from turbo.data.packing import OFFSET_KEYS, FlatCollator
from turbo.generators.rollout import RolloutEngine, segment_rows
from turbo.trainers.logps import adapter_disabled, answer_rows, to_device, token_logps
from turbo.trainers.rewards import RewardFunction, score
from turbo.trainers.rollout_distributed import average_gradients, schedule_held


@dataclass(frozen=True)
class PromptCollator:
    """Prompt features -> left-padded prompt ids (counted as input tokens) and the features themselves."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(feature["prompt_ids"]) for feature in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            ids = feature["prompt_ids"]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "prompts": features}


@dataclass
class Rollout:
    """The answers of one rollout (prompt-major: the n answers of each prompt are consecutive)."""

    batch: dict[str, torch.Tensor]  # answer_rows of prompt + answer, on the device
    starts: torch.Tensor  # per row, the target position of its first answer token
    lengths: torch.Tensor  # answer tokens per row
    prompts: list[dict[str, Any]]  # the feature of each row
    answers: list[str]
    finished: list[bool]  # the answer ended with EOS (else it was cut at max_new_tokens)
    engine_logps: list[list[float]]
    rewards: torch.Tensor  # the weighted total per row
    per_function: dict[str, list[float]]
    seconds: float
    media: list[list[tuple[str, torch.Tensor]]] | None = None  # per row, multimodal prompts only
    # with tools: per row, which answer tokens the policy sampled ([rows, width]; tool results are not
    # trained), the trajectory's segments, and the seconds spent in tool calls
    policy_mask: torch.Tensor | None = None
    trajectories: list[list[dict[str, Any]]] | None = None
    tool_seconds: float = 0.0
    # where the step's time went, logged as time/<phase> (rollout_metrics): sampling (tool calls
    # included), decoding + the reward functions, and the frozen log-probs (frozen_token_logps)
    generation_seconds: float = 0.0
    rewards_seconds: float = 0.0
    old_logps_seconds: float = 0.0
    reference_seconds: float = 0.0

    @property
    def width(self) -> int:
        return int(self.lengths.max())


def collect(
    engine: RolloutEngine,
    model: Any,
    tokenizer: Any,
    prompts: list[dict[str, Any]],
    rewards: list[tuple[Any, RewardFunction]],
    *,
    n: int,
    greedy: bool = False,
    seed: int = 0,
) -> Rollout:
    """Sample n answers per prompt with the engine and score them with the reward functions."""
    start = time.perf_counter()
    ids = [p["prompt_ids"] for p in prompts]
    media = [p["media"] for p in prompts] if "media" in prompts[0] else None  # multimodal prompts
    tool_seconds = getattr(engine, "tool_seconds", 0.0)
    sampled = engine.sample(model, ids, n, greedy, seed, media=media)
    sampled_at = time.perf_counter()
    tool_seconds = getattr(engine, "tool_seconds", 0.0) - tool_seconds
    answer_ids = [sample.answer_ids for sample in sampled]
    rows = [prompt for prompt in prompts for _ in range(n)]
    # the rewards read the final answer: the text after the last tool result (the whole answer without tools)
    finals = [sample.answer_ids[sample.final_start :] for sample in sampled]
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in finals]
    lengths = [len(ids) for ids in answer_ids]
    tools = any(sample.segments for sample in sampled)
    trajectories = [segment_rows(sample, tokenizer) for sample in sampled]
    totals, per_function = score(
        rewards,
        [p["prompt"] for p in rows],
        texts,
        [p["reference"] for p in rows],
        [len(ids) for ids in finals],
        trajectories,
    )
    scored_at = time.perf_counter()
    device = next(model.parameters()).device
    batch = answer_rows([p["prompt_ids"] for p in rows], answer_ids, tokenizer.pad_token_id)
    policy_mask = None
    if tools:
        policy_mask = torch.zeros(len(sampled), max(lengths), dtype=torch.bool)
        for row, sample in enumerate(sampled):
            policy_mask[row, : len(sample.answer_ids)] = torch.tensor(sample.policy_mask, dtype=torch.bool)
        policy_mask = policy_mask.to(device)
    return Rollout(
        batch={key: value.to(device) for key, value in batch.items()},
        starts=torch.tensor([len(p["prompt_ids"]) - 1 for p in rows], device=device),
        lengths=torch.tensor(lengths, device=device),
        prompts=rows,
        answers=texts,
        finished=[sample.finished for sample in sampled],
        engine_logps=[sample.logps for sample in sampled],
        rewards=torch.tensor(totals, dtype=torch.float32, device=device),
        per_function=per_function,
        seconds=time.perf_counter() - start,
        media=[p["media"] for p in rows] if "media" in rows[0] else None,
        policy_mask=policy_mask,
        trajectories=trajectories if tools else None,
        tool_seconds=tool_seconds,
        generation_seconds=sampled_at - start,
        rewards_seconds=scored_at - sampled_at,
    )


def to_answers(values: torch.Tensor, starts: torch.Tensor, width: int) -> torch.Tensor:
    """Per-target tensors [rows, length - 1] -> the answer tokens only, left-aligned: [rows, width]."""
    index = (starts.unsqueeze(1) + torch.arange(width, device=values.device)).clamp(max=values.shape[1] - 1)
    return torch.gather(values, 1, index)


def answer_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def trained_mask(rollout: Rollout) -> torch.Tensor:
    """[rows, width]: the answer tokens the loss, the KL and the log-probs cover: the policy's own tokens
    (tool results, appended by the tool loop, are never trained)."""
    mask = answer_mask(rollout.lengths, rollout.width)
    return mask if rollout.policy_mask is None else mask & rollout.policy_mask[:, : rollout.width]


def policy_tokens_first(mask: torch.Tensor) -> torch.Tensor:
    """Per row, the column order that puts its policy tokens first, in order (tool-result tokens after):
    per-token recursions such as GAE run over the policy's tokens only, as if the tool results (the
    environment's turns, no action of the policy) were not there. Without tools: the identity."""
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)


def select(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows of a scoring batch, trimmed to their longest sequence."""
    picked = {key: value[rows] for key, value in batch.items()}
    length = int(picked["attention_mask"].sum(-1).max())
    return {key: value[:, :length] for key, value in picked.items()}


def flatten(padded: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Padded scoring rows (input_ids, attention_mask, labels) in one row without padding, as train_sft's
    and train_dpo's padding-free batches (FlatCollator): each row's tokens are its attention_mask
    positions, its position ids restart at 0, and the sample offsets let the attention (turbo_varlen,
    flash-attention) keep each sample to itself. `unflatten` puts per-target values back in rows."""
    mask = padded["attention_mask"].bool()
    ids, labels, keep = padded["input_ids"].tolist(), padded["labels"].tolist(), mask.tolist()
    features = [
        {
            "input_ids": [token for token, real in zip(row_ids, row_keep, strict=True) if real],
            "labels": [label for label, real in zip(row_labels, row_keep, strict=True) if real],
        }
        for row_ids, row_labels, row_keep in zip(ids, labels, keep, strict=True)
    ]
    flat = FlatCollator()(features)
    keys = ("input_ids", "labels", "position_ids", *OFFSET_KEYS)
    return {key: to_device(flat[key], mask.device) for key in keys}


def unflatten(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-target values of a flattened batch ([1, total - 1]) -> those of its padded rows ([rows, length
    - 1], 0 at the padding): the value at a row's token is its next token's in both (at a row's last
    token, off the answer, the flat row's next token is the next row's first)."""
    mask = attention_mask.bool()
    per_token = torch.nn.functional.pad(values[0], (0, 1))  # the last token of the row predicts nothing
    return values.new_zeros(mask.shape).masked_scatter(mask, per_token)[:, :-1]


def policy_token_logps(
    model: Any,
    rollout: Rollout,
    rows: torch.Tensor,
    entropy: bool = False,
    flat: bool = False,
    shared: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The policy's per-token answer log-probs of `rows` ([rows, width], left-aligned; 0 past the answer),
    recomputed by the training model through turbo.trainers.logps; and the entropy when asked for.
    `flat`: the rows are scored in one row without padding (`flatten`; the same values), which the
    model's attention must support (sample offsets read; no virtual tokens, no media). `shared`: in one
    row too, each distinct prompt once for all its answers (turbo.data.shared_prompts; the same
    values; the attention must be turbo_varlen, the output layer a plain linear head)."""
    if shared:
        return policy_shared_logps(model, rollout, rows, entropy)
    width = int(rollout.lengths[rows].max())
    batch: dict[str, Any] = select(rollout.batch, rows)
    if rollout.media is not None:
        from turbo.data.multimodal_batches import stack_media

        device = rollout.rewards.device
        stacked = stack_media([rollout.media[row] for row in rows.tolist()])
        batch["modality_inputs"] = {modality: value.to(device) for modality, value in stacked.items()}
    # chunked: only the answer positions reach the output layer (not the prompt's; the same values)
    tokens = token_logps(model, flatten(batch) if flat else batch, entropy=entropy, chunked=True)
    logps, token_entropy = tokens.logps, tokens.entropy
    if flat:
        logps = unflatten(logps, batch["attention_mask"])
        token_entropy = None if token_entropy is None else unflatten(token_entropy, batch["attention_mask"])
    starts = rollout.starts[rows]
    logps = to_answers(logps, starts, width)
    token_entropy = None if token_entropy is None else to_answers(token_entropy.detach(), starts, width)
    return logps, token_entropy


def policy_shared_logps(
    model: Any, rollout: Rollout, rows: torch.Tensor, entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """policy_token_logps with shared prompts: each row's answer tokens given its prompt."""
    from turbo.data.shared_prompts import SharedPrompts

    ids = rollout.batch["input_ids"][rows].tolist()
    starts, lengths = rollout.starts[rows].tolist(), rollout.lengths[rows].tolist()
    prompts = [row[: start + 1] for row, start in zip(ids, starts, strict=True)]
    answers = [row[start + 1 : start + 1 + n] for row, start, n in zip(ids, starts, lengths, strict=True)]
    shared = SharedPrompts.build(prompts, answers, rollout.rewards.device)
    tokens = token_logps(model, {"shared_prompts": shared}, entropy=entropy)
    return tokens.logps, tokens.entropy


@torch.no_grad()
def frozen_token_logps(
    model: Any,
    rollout: Rollout,
    chunk: int,
    reference: bool,
    ref_model: Any = None,
    flat: bool = False,
    shared: bool = False,
) -> torch.Tensor:
    """Per-token answer log-probs of every row without gradients, in chunks of `chunk` rows, [rows, width]
    padded to the rollout's longest answer: the policy's (reference False), or the reference's: the
    separate `ref_model`, else the policy with its adapter disabled. The seconds are added to the
    rollout's old_logps_seconds or reference_seconds. `flat`, `shared`: as policy_token_logps."""
    began = time.perf_counter()
    model = getattr(model, "module", model)  # the adapter is disabled on the unwrapped model
    scorer = ref_model if reference and ref_model is not None else model
    context = adapter_disabled(model) if reference and ref_model is None else nullcontext()
    out = torch.zeros(len(rollout.answers), rollout.width, device=rollout.rewards.device)
    with context:
        for start in range(0, len(rollout.answers), chunk):
            rows = torch.arange(start, min(start + chunk, len(rollout.answers)), device=out.device)
            logps, _ = policy_token_logps(scorer, rollout, rows, flat=flat, shared=shared)
            out[rows, : logps.shape[1]] = logps
    if reference:
        rollout.reference_seconds += time.perf_counter() - began
    else:
        rollout.old_logps_seconds += time.perf_counter() - began
    return out


def passes(
    rows: int, mini_batches: int, forward_batch: int | None, generator: torch.Generator
) -> Iterator[tuple[bool, list[torch.Tensor]]]:
    """One epoch over a rollout: shuffled mini-batches, each as the row indices of its forward passes;
    with whether it is the epoch's last mini-batch."""
    order = torch.randperm(rows, generator=generator)
    size = rows // mini_batches
    for index in range(mini_batches):
        mini = order[index * size : (index + 1) * size]
        step = forward_batch or size
        yield index == mini_batches - 1, [mini[i : i + step] for i in range(0, size, step)]


def optimise(
    trainer: Any,
    model: Any,
    rows: int,
    *,
    epochs: int,
    mini_batches: int,
    forward_batch: int | None,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    extra_parameters: list[torch.nn.Parameter] | None = None,
) -> torch.Tensor:
    """epochs x mini_batches optimiser updates over one rollout. `loss_of(rows, mini_batch)` gives the
    loss of one forward pass over `rows` (indices), normalised over the whole `mini_batch` (indices) so
    that the passes of a mini-batch sum to its loss; every
    update but the last steps the optimiser here, the last is left to the Trainer (clipping, optimiser
    and scheduler step, logging). `extra_parameters` (the value model) are clipped here. Its seconds are
    logged as time/forward_backward."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(trainer.state.global_step)
    total = torch.zeros((), device=trainer.args.device)
    for epoch in range(epochs):
        for last, forward_rows in passes(rows, mini_batches, forward_batch, generator):
            mini_batch = torch.cat(forward_rows).to(trainer.args.device)
            loss_sum = torch.zeros((), device=trainer.args.device)
            final = last and epoch == epochs - 1
            for chunk in forward_rows:
                loss = loss_of(chunk.to(trainer.args.device), mini_batch)
                with schedule_held(trainer, hold=not final):  # DeepSpeed steps inside backward
                    trainer.accelerator.backward(loss)
                loss_sum += loss.detach()
            total = loss_sum
            if extra_parameters:
                average_gradients(extra_parameters)  # outside the DDP wrapper: averaged here
                if trainer.args.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(extra_parameters, trainer.args.max_grad_norm)
            if not final:
                if trainer.args.max_grad_norm > 0:
                    trainer.accelerator.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
                trainer.optimizer.step()
                trainer.optimizer.zero_grad()
    trainer.metrics(model)["time/forward_backward"].append(time.perf_counter() - start)
    return total


def rollout_metrics(rollout: Rollout, train_logps: torch.Tensor | None) -> dict[str, float]:
    """Mean/std of the total and of each reward, answer length, share of answers that ended with EOS,
    rollout seconds (and the step's phases, time/...), and the mean absolute gap between the engine's and
    the training model's log-probs."""
    metrics = {
        "reward/mean": rollout.rewards.mean().item(),
        "reward/std": rollout.rewards.std().item() if len(rollout.rewards) > 1 else 0.0,
        "answer_length": rollout.lengths.float().mean().item(),
        "answers_finished": sum(rollout.finished) / len(rollout.finished),
        "rollout_seconds": rollout.seconds,
        "time/generation": rollout.generation_seconds,
        "time/rewards": rollout.rewards_seconds,
        "time/old_logps": rollout.old_logps_seconds,
        "time/reference": rollout.reference_seconds,
    }
    for label, values in rollout.per_function.items():
        column = torch.tensor(values)
        metrics[f"reward/{label}/mean"] = column.mean().item()
        metrics[f"reward/{label}/std"] = column.std().item() if len(values) > 1 else 0.0
    if train_logps is not None:
        policy = None if rollout.policy_mask is None else rollout.policy_mask.tolist()
        gaps = [
            abs(engine - train)
            for row, engine_row in enumerate(rollout.engine_logps)
            for column, (engine, train) in enumerate(
                zip(engine_row, train_logps[row, : len(engine_row)].tolist(), strict=True)
            )
            if policy is None or policy[row][column]
        ]
        if gaps:
            metrics["rollout/logp_gap"] = sum(gaps) / len(gaps)
    if rollout.trajectories is not None:
        metrics.update(tool_metrics(rollout.trajectories, rollout.policy_mask, rollout.lengths))
        metrics["tools/seconds"] = rollout.tool_seconds
    return metrics


def tool_metrics(
    trajectories: list[list[dict[str, Any]]], policy_mask: torch.Tensor | None, lengths: torch.Tensor
) -> dict[str, float]:
    """Per answer on average: tool calls, policy turns, tool-result tokens; failed calls of the rollout."""
    calls = [sum(segment["role"] == "tool" for segment in row) for row in trajectories]
    turns = [sum(segment["role"] == "policy" for segment in row) for row in trajectories]
    errors = sum(bool(segment.get("error")) for row in trajectories for segment in row)
    answers = len(trajectories)
    result_tokens = 0.0
    if policy_mask is not None:
        inside = answer_mask(lengths, policy_mask.shape[1])
        result_tokens = (inside & ~policy_mask).sum().item() / answers
    return {
        "tools/calls_per_answer": sum(calls) / answers,
        "tools/errors": float(errors),
        "tools/result_tokens": result_tokens,
        "turns": sum(turns) / answers,
    }
