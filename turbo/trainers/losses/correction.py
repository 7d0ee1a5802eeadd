"""Rollout correction as a pure function of tensors: when the answers were sampled by another engine
(vLLM) than the model that trains, weight each token (or answer) by pi_train / pi_sampler, truncated at
`cap` (truncated importance sampling, Yao et al. 2025 "Your efficient RL framework secretly brings you
off-policy RL training") or zeroed beyond it (masked importance sampling). The same formulas as TRL's
`vllm_importance_sampling_mode` (token_/sequence_ truncate/mask) and verl's rollout-correction presets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

LEVELS = ("token", "sequence")
MODES = ("truncate", "mask")


@dataclass
class Correction:
    weights: torch.Tensor  # [answers, tokens] (token level) or [answers, 1] (sequence level); detached
    weight_mean: float  # over answer tokens (token level) or answers (sequence level)
    truncated_fraction: float  # share of weights cut to the cap (mode truncate)
    masked_fraction: float  # share of weights set to 0 (mode mask)

    def metrics(self) -> dict[str, float]:
        return {
            "rollout_correction/weight_mean": self.weight_mean,
            "rollout_correction/truncated_fraction": self.truncated_fraction,
            "rollout_correction/masked_fraction": self.masked_fraction,
        }


@torch.no_grad()
def correction_weights(
    train_logps: torch.Tensor,
    sampler_logps: torch.Tensor,
    mask: torch.Tensor,
    level: str,
    mode: str,
    cap: float,
) -> Correction:
    """token: w_t = exp(logp_train - logp_sampler) per answer token; sequence: one w per answer, the
    exp of the summed log-ratios of its tokens (the answer's probability ratio). truncate: min(w, cap);
    mask: w, or 0 where w > cap. `train_logps` are the training model's log-probs of the sampled tokens
    before any update (pi_old), `sampler_logps` the engine's; both [answers, tokens], 0 off the mask."""
    if level not in LEVELS or mode not in MODES:
        raise ValueError(f"rollout_correction: level one of {LEVELS}, mode one of {MODES}")
    weights = mask.to(train_logps.dtype)
    log_ratio = (train_logps - sampler_logps) * weights
    if level == "sequence":
        log_ratio = log_ratio.sum(-1, keepdim=True)
        weights = (weights.sum(-1, keepdim=True) > 0).to(weights.dtype)
    ratio = torch.exp(log_ratio)
    beyond = ratio > cap
    corrected = ratio.clamp(max=cap) if mode == "truncate" else ratio.masked_fill(beyond, 0.0)
    count = weights.sum().clamp(min=1)
    share = ((beyond.to(weights.dtype) * weights).sum() / count).item()
    return Correction(
        weights=corrected,
        weight_mean=((corrected * weights).sum() / count).item(),
        truncated_fraction=share if mode == "truncate" else 0.0,
        masked_fraction=share if mode == "mask" else 0.0,
    )


def no_correction(rows: int, device: torch.device | str = "cpu") -> Correction:
    """The weights of rollouts sampled by the training model itself (transformers): all 1."""
    return Correction(torch.ones(rows, 1, device=device), 1.0, 0.0, 0.0)


def pad_rows(rows: list[list[float]], width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Ragged per-token values (the engine's log-probs) -> [rows, width], 0 past each row's end."""
    out = torch.zeros(len(rows), width, device=device)
    for index, values in enumerate(rows):
        values = values[:width]
        if values:
            out[index, : len(values)] = torch.tensor(values, device=device)
    return out
