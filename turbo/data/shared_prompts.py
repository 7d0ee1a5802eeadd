"""Shared prompts: a group's answers to one prompt scored in one pass over a single copy of the prompt.

GRPO samples n answers per prompt; scored as n rows of prompt + answer, every prompt token passes the
model n times (forward, backward and the reference's forward). Here a padding-free row holds each
distinct prompt once, followed by all of its answers:

    [prompt_1, answer_1a, answer_1b, ..., prompt_2, answer_2a, ...]

with position ids that continue each answer from the end of its prompt, and an attention in which a
prompt token sees its prompt's earlier tokens and an answer token sees its whole prompt and its own
earlier tokens, never another answer. Every answer token then has the same context as in its own row,
so the log-probs and their gradients are those of the unshared rows (the prompt's gradient is the sum
over its answers, as it is there). This is the shared-prefix forward of Prefix Grouper (Liu et al.
2025, arXiv:2506.05433).

`SharedPrompts.build` lays out the row once per batch (index tensors); the "turbo_varlen" attention
(turbo.modeling.varlen.shared_prompt_attention) reads it in every layer when the batch carries it
(`shared_prompts=` passed through the model's forward): two attention calls per layer, the prompts
right-padded and causal, and the answers right-padded, each over its prompt's keys and its own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch


@dataclass(frozen=True)
class SharedPrompts:
    """The layout of a row of shared prompts, as index tensors on the batch's device."""

    input_ids: torch.Tensor  # [1, total]: each distinct prompt, then its answers
    position_ids: torch.Tensor  # [1, total]: prompts from 0, answers from their prompt's length
    prompt_index: torch.Tensor  # [prompts, longest prompt]: row positions (past a prompt's end: its last)
    prompt_real: torch.Tensor  # [prompts, longest prompt]: bool, a real prompt position
    answer_index: torch.Tensor  # [answers, longest answer]: row positions, in the order given
    answer_real: torch.Tensor  # [answers, longest answer]
    answer_prompt: torch.Tensor  # [answers]: the index of each answer's prompt
    visible: torch.Tensor  # [answers, longest answer, longest prompt + longest answer]: bool, seen keys
    unpad: torch.Tensor  # [total]: each row position's place in [prompt_index; answer_index] flattened
    source: torch.Tensor  # [answers, longest answer]: the row position whose output predicts each token

    @classmethod
    def build(cls, prompts: list[list[int]], answers: list[list[int]], device: Any) -> SharedPrompts:
        """The row for answers[i] to prompts[i] (equal prompts, by their token ids, are stored once)."""
        distinct: dict[tuple[int, ...], int] = {}
        for prompt in prompts:
            distinct.setdefault(tuple(prompt), len(distinct))
        owner = [distinct[tuple(prompt)] for prompt in prompts]
        by_prompt: list[list[int]] = [[] for _ in distinct]
        for row, prompt in enumerate(owner):
            by_prompt[prompt].append(row)
        ids: list[int] = []
        positions: list[int] = []
        prompt_rows: list[list[int]] = []
        answer_rows: list[list[int]] = [[] for _ in answers]
        for prompt, rows in zip(distinct, by_prompt, strict=True):
            prompt_rows.append(list(range(len(ids), len(ids) + len(prompt))))
            ids += prompt
            positions += range(len(prompt))
            for row in rows:
                answer_rows[row] = list(range(len(ids), len(ids) + len(answers[row])))
                ids += answers[row]
                positions += range(len(prompt), len(prompt) + len(answers[row]))
        prompt_index, prompt_real = _padded(prompt_rows, device)
        answer_index, answer_real = _padded(answer_rows, device)
        answer_width = answer_index.shape[1]
        lengths = torch.tensor([len(prompt) for prompt in distinct], device=device)
        answer_prompt = torch.tensor(owner, device=device)
        sees_prompt = prompt_real[answer_prompt][:, None, :].expand(-1, answer_width, -1)
        sees_answer = torch.ones(answer_width, answer_width, dtype=torch.bool, device=device).tril()
        visible = torch.cat([sees_prompt, sees_answer.expand(len(answers), -1, -1)], dim=2)
        padded = torch.cat([prompt_index.flatten(), answer_index.flatten()])
        real = torch.cat([prompt_real.flatten(), answer_real.flatten()])
        unpad = torch.empty(len(ids), dtype=torch.long, device=device)
        unpad[padded[real]] = real.nonzero().squeeze(1)
        last = (prompt_index[:, 0] + lengths - 1)[answer_prompt]  # each prompt's last token
        source = torch.cat([last[:, None], answer_index[:, :-1]], dim=1) if answer_width else answer_index
        return cls(
            input_ids=torch.tensor([ids], device=device),
            position_ids=torch.tensor([positions], device=device),
            prompt_index=prompt_index,
            prompt_real=prompt_real,
            answer_index=answer_index,
            answer_real=answer_real,
            answer_prompt=answer_prompt,
            visible=visible,
            unpad=unpad,
            source=source,
        )

    def to(self, device: Any, non_blocking: bool = False) -> SharedPrompts:
        """The layout on `device` (itself when it is there); accelerate moves batches with it."""
        if self.input_ids.device == torch.device(device):
            return self
        moved = {
            field.name: getattr(self, field.name).to(device, non_blocking=non_blocking)
            for field in fields(self)
        }
        return SharedPrompts(**moved)

    @property
    def targets(self) -> torch.Tensor:
        """[answers, longest answer]: the answer tokens (0 past an answer's end)."""
        return self.input_ids[0][self.answer_index] * self.answer_real


def _padded(rows: list[list[int]], device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Position lists -> [rows, longest] positions (a row's last one repeated past its end; 0 if empty)
    and the bool mask of real ones."""
    width = max((len(row) for row in rows), default=0)
    index = torch.tensor([row + [row[-1] if row else 0] * (width - len(row)) for row in rows], device=device)
    real = torch.tensor([[True] * len(row) + [False] * (width - len(row)) for row in rows], device=device)
    return index.reshape(len(rows), width), real.reshape(len(rows), width)
