"""Answer log-probs and the reference model: the one seam every method that scores answers shares.

A batch holds rows of `input_ids` and `labels` (`IGNORE_INDEX` off the answer), and either an
`attention_mask` (padded rows: one sample per row) or `position_ids` that restart at 0 for each sample
(packed rows, see turbo.data.packing: several samples per row, the padding its own block); multimodal
rows also carry `modality_inputs`, which the model reads with the ids. Keys
may carry a prefix (KTO's KL rows are `kl_input_ids`, `kl_attention_mask`, `kl_labels`).

- `answer_rows`: such a batch from prompt and answer token ids (the answers of a generator).
- `token_logps`: per target position, log p(token t+1 | tokens <= t) of each answer token, the mask of
  answer positions, and optionally the entropy of the next-token distribution (PPO, GRPO).
- `answer_logps`: per sample, the sum over its answer tokens, their count, `means`, and the mean
  logit (a metric). For models whose logits are a plain linear head it projects only the answer
  positions onto the vocabulary, a chunk at a time (`chunked`): the full-vocabulary float32 logits of
  the batch (prompts and padding included) are never built, and the log-probs and their gradients
  are those of the full logits. Prompt-learning adapters (prompt tuning, P-tuning) prepend virtual
  tokens to the sequence: their logits are dropped, so position t always predicts label t+1.
- `reference_logps`: the reference's summed answer log-probs, precomputed (carried in the batch),
  from a separate frozen model, or from the policy with its adapter disabled, in that order;
  `precompute_reference_logps` fills them in once before training.
- `lc_alpha` (LD-DPO): pair rows [chosen; rejected] scored with the tokens past the shorter answer's
  length down-weighted, for the policy and the reference alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from turbo.data.packing import OFFSET_KEYS
from turbo.labels import IGNORE_INDEX
from turbo.trainers.losses.chunked_ce import linear_token_logps_entropy, no_logits, supports_chunked_loss

ROW_KEYS = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "labels",
    "modality_inputs",
    "shared_prompts",
    *OFFSET_KEYS,
)
# what the model reads of a batch: multimodal rows also carry their media (`modality_inputs`, the
# tensors of each modality in the order their spans appear, turbo.modeling.multimodal.model), and
# padding-free rows the offsets of their samples
MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", "modality_inputs", *OFFSET_KEYS)


@dataclass
class TokenLogps:
    """Per row and target position t (the prediction of token t + 1), [rows, length - 1] each."""

    logps: torch.Tensor  # log-prob of the answer token; 0 off the answer
    mask: torch.Tensor  # bool: the target is an answer token
    mean_logits: torch.Tensor  # the mean logit over the vocabulary (detached)
    segments: torch.Tensor  # the sample of the target within its row (0 for padded rows)
    entropy: torch.Tensor | None = None  # entropy of the next-token distribution, when asked for


@dataclass
class AnswerLogps:
    """Per sample (one a row when padded, one a packed sample otherwise), in batch order."""

    sums: torch.Tensor  # summed answer log-probs
    counts: torch.Tensor  # answer tokens
    mean_logits: torch.Tensor  # the mean logit over the answer tokens (detached)

    @property
    def means(self) -> torch.Tensor:
        """Answer log-probs averaged over the answer tokens (0 for an empty answer)."""
        return self.sums / self.counts.clamp(min=1)


def rows(batch: Mapping[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    """The row tensors of `batch` stored under `prefix` (input_ids, labels, and the mask or positions)."""
    return {key: batch[prefix + key] for key in ROW_KEYS if prefix + key in batch}


def answer_rows(
    prompts: list[list[int]], answers: list[list[int]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Right-padded rows of prompt + answer token ids with labels on the answers: a batch to score
    answers given their prompts (generated ones in PPO and GRPO)."""
    width = max(len(prompt) + len(answer) for prompt, answer in zip(prompts, answers, strict=True))
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(prompts), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        length = len(prompt) + len(answer)
        input_ids[row, :length] = torch.tensor(prompt + answer, dtype=torch.long)
        labels[row, len(prompt) : length] = torch.tensor(answer, dtype=torch.long)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _is_prompt_learning(model: Any) -> bool:
    config = getattr(getattr(model, "module", model), "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def answer_logits(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits aligned with `batch["labels"]`: [rows, length, vocab], virtual tokens dropped."""
    labels = batch["labels"]
    inputs = {key: batch[key] for key in MODEL_KEYS if key in batch}
    if "position_ids" in inputs and _is_prompt_learning(model):
        raise ValueError("packed rows (position_ids) cannot be scored with a prompt-learning adapter")
    logits = model(**inputs, use_cache=False).logits
    return logits[:, logits.shape[1] - labels.shape[1] :]  # prompt learning prepends virtual tokens


def _segments(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The sample of each target position within its row: a new one at each position id 0."""
    positions = batch.get("position_ids")
    if positions is None:
        return torch.zeros_like(batch["labels"][:, 1:])
    return (positions == 0).long().cumsum(-1)[:, 1:] - 1


def output_weight(model: Any) -> torch.Tensor | None:
    """The output layer's weight when the logits are exactly `hidden @ weight.T` (see
    `supports_chunked_loss`) and the weight is whole on this rank (not a ZeRO-3 shard); else None."""
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if not supports_chunked_loss(inner):
        return None
    weight = inner.get_output_embeddings().weight
    return None if weight.numel() == 0 or hasattr(weight, "ds_id") else weight


def _answer_mask(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    mask = batch["labels"][:, 1:] != IGNORE_INDEX
    if "position_ids" in batch:
        mask &= batch["position_ids"][:, 1:] != 0  # a sample's first token is never predicted from another
    return mask


def token_logps(
    model: Any, batch: Mapping[str, torch.Tensor], entropy: bool = False, chunked: bool = False
) -> TokenLogps:
    """Per-token answer log-probs of `batch` under `model` (one forward pass). `chunked`: project only
    the answer positions (where the model allows it; the same values; the entropy on them only)."""
    if "shared_prompts" in batch:  # each distinct prompt once, its answers after it
        return shared_token_logps(model, batch["shared_prompts"], entropy)
    weight = output_weight(model) if chunked and not _is_prompt_learning(model) else None
    if weight is not None:
        return _chunked_token_logps(model, batch, weight, entropy)
    logits = answer_logits(model, batch)[:, :-1].float()
    return logits_token_logps(logits, batch["labels"][:, 1:], _answer_mask(batch), _segments(batch), entropy)


def logits_token_logps(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor, entropy: bool
) -> TokenLogps:
    """TokenLogps from float32 logits [rows, width, vocabulary] whose position i predicts targets[:, i]
    (the log-probs 0 where `mask` is False)."""
    log_norm = logits.logsumexp(-1)
    picked = torch.gather(logits, 2, targets.clamp(min=0).unsqueeze(2)).squeeze(2)
    logps = (picked - log_norm) * mask
    token_entropy = None
    if entropy:  # a metric: no gradient, so its [rows, length, vocab] intermediates are not kept
        with torch.no_grad():
            token_entropy = log_norm - (logits.softmax(-1) * logits).sum(-1)
    return TokenLogps(logps, mask, logits.detach().mean(-1), segments, token_entropy)


def _chunked_token_logps(
    model: Any, batch: Mapping[str, torch.Tensor], weight: torch.Tensor, entropy: bool = False
) -> TokenLogps:
    """token_logps from the final hidden states: only the answer positions reach the output layer (the
    entropy too, 0 elsewhere)."""
    inputs = {key: batch[key] for key in MODEL_KEYS if key in batch}
    keep = no_logits(batch["labels"].device)
    outputs = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=keep)
    hidden = outputs.hidden_states[-1][:, :-1]
    mask = _answer_mask(batch)
    picked, entropies = linear_token_logps_entropy(
        hidden[mask], weight, batch["labels"][:, 1:][mask], entropy=entropy
    )
    logps = torch.zeros(mask.shape, dtype=torch.float32, device=hidden.device).masked_scatter(mask, picked)
    with torch.no_grad():  # the mean logit over the vocabulary is the hidden state times the mean row
        mean_logits = hidden.float() @ weight.mean(0, dtype=torch.float32)
    token_entropy = None
    if entropies is not None:
        zeros = torch.zeros(mask.shape, dtype=torch.float32, device=hidden.device)
        token_entropy = zeros.masked_scatter(mask, entropies)
    return TokenLogps(logps, mask, mean_logits, _segments(batch), token_entropy)


def scores_shared_prompts(*models: Any) -> bool:
    """Whether every model given (None skipped) can score a row of shared prompts (shared_token_logps):
    its attention is turbo_varlen, which reads the layout (flash-attention kernels do not), and its
    logits a plain linear head."""
    from turbo.modeling.varlen import NAME

    def shares(model: Any) -> bool:
        inner = getattr(model, "module", model)
        base = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
        attention = getattr(getattr(base, "config", None), "_attn_implementation", None)
        return attention == NAME and output_weight(model) is not None

    return all(shares(model) for model in models if model is not None)


def shared_token_logps(model: Any, shared: Any, entropy: bool = False) -> TokenLogps:
    """token_logps of a row of shared prompts (turbo.data.shared_prompts.SharedPrompts: each
    distinct prompt once, its answers after it), per answer and answer token: [answers, longest answer],
    left-aligned (0 past an answer's end), one sample per row. The model's attention must be turbo_varlen
    and its logits a plain linear head (a ZeRO-3 shard of it: the model's own forward gives every logit).
    The values and gradients are those of scoring each prompt + answer as its own row."""
    weight = output_weight(model)
    shared = shared.to(next(getattr(model, "module", model).parameters()).device)
    outputs = model(
        input_ids=shared.input_ids,
        position_ids=shared.position_ids,
        shared_prompts=shared,
        use_cache=False,
        output_hidden_states=weight is not None,
        # the chunked head reads the hidden states; a ZeRO-3 shard: the model's own head, every logit
        logits_to_keep=no_logits(shared.input_ids.device) if weight is not None else 0,
    )
    mask = shared.answer_real
    segments = torch.zeros_like(shared.answer_index)  # one sample per row
    if weight is None:
        logits = outputs.logits[0][shared.source].float()  # the logits before each answer token
        return logits_token_logps(logits, shared.targets, mask, segments, entropy)
    hidden = outputs.hidden_states[-1][0]
    states = hidden.index_select(0, shared.source[mask])  # the output before each real answer token
    zeros = torch.zeros(mask.shape, dtype=torch.float32, device=hidden.device)
    picked, entropies = linear_token_logps_entropy(states, weight, shared.targets[mask], entropy=entropy)
    logps = zeros.masked_scatter(mask, picked)
    with torch.no_grad():  # the mean logit over the vocabulary is the hidden state times the mean row
        mean_logits = (hidden.float() @ weight.mean(0, dtype=torch.float32))[shared.source]
    token_entropy = None if entropies is None else zeros.masked_scatter(mask, entropies)
    return TokenLogps(logps, mask, mean_logits, segments, token_entropy)


def reduce_answers(tokens: TokenLogps) -> AnswerLogps:
    """Sum the per-token log-probs over each sample's answer. Padded rows are one sample each (an
    answerless row included); in packed rows a block without answer tokens (the padding) is no sample."""
    mask = tokens.mask
    if not bool((tokens.segments > 0).any()):
        counts = mask.sum(-1)
        mean_logits = (tokens.mean_logits * mask).sum(-1) / counts.clamp(min=1)
        return AnswerLogps(tokens.logps.sum(-1), counts, mean_logits)
    per_row = tokens.segments.amax(-1) + 1
    offsets = torch.cumsum(per_row, 0) - per_row
    index = (tokens.segments + offsets.unsqueeze(1))[mask]
    total = int(per_row.sum())
    sums = tokens.logps.new_zeros(total).index_add_(0, index, tokens.logps[mask])
    counts = torch.zeros(total, dtype=torch.long, device=mask.device).index_add_(
        0, index, torch.ones_like(index)
    )
    logit_sums = tokens.mean_logits.new_zeros(total).index_add_(0, index, tokens.mean_logits[mask])
    keep = counts > 0
    return AnswerLogps(sums[keep], counts[keep], logit_sums[keep] / counts[keep])


def length_desensitised(tokens: TokenLogps, alpha: float) -> AnswerLogps:
    """LD-DPO (Liu et al. 2024, arXiv:2409.06411, eq. 8) on padded rows [chosen; rejected]: the answer
    tokens past the length of the pair's shorter answer count alpha times, so a longer answer is no
    longer favoured (or penalised) for its extra tokens alone: sum_{t <= l} log p_t + alpha * sum_{t > l}
    log p_t, with l = min(|chosen|, |rejected|). alpha 1 is the plain sum."""
    if bool((tokens.segments > 0).any()):
        raise ValueError("length-desensitised log-probs need padded [chosen; rejected] rows, not packed ones")
    mask = tokens.mask
    counts = mask.sum(-1)
    shorter = torch.minimum(*counts.chunk(2)).repeat(2)
    index = mask.long().cumsum(-1)  # 1 at the first answer token of each row
    weights = torch.where(index > shorter.unsqueeze(1), alpha, 1.0) * mask
    mean_logits = (tokens.mean_logits * mask).sum(-1) / counts.clamp(min=1)
    return AnswerLogps((tokens.logps * weights).sum(-1), counts, mean_logits)


def answer_logps(
    model: Any, batch: Mapping[str, torch.Tensor], lc_alpha: float | None = None, chunked: bool = True
) -> AnswerLogps:
    """Per-sample answer log-probs (sum, count, mean) of `batch` under `model`, with gradients; only the
    answer positions are projected onto the vocabulary unless `chunked` is false. `lc_alpha`: the rows
    are padded [chosen; rejected] pairs, desensitised to length (`length_desensitised`)."""
    tokens = token_logps(model, batch, chunked=chunked)
    return reduce_answers(tokens) if lc_alpha is None else length_desensitised(tokens, lc_alpha)


def adapter_disabled(model: Any) -> Any:
    """A context in which the PEFT `model` runs as its base model (the reference of adapter training)."""
    if not hasattr(model, "disable_adapter"):
        raise ValueError("no reference: the model has no adapter to disable and no reference model was given")
    return model.disable_adapter()


@torch.no_grad()
def model_reference_logps(
    model: Any, batch: Mapping[str, torch.Tensor], disable_adapter: bool, lc_alpha: float | None = None
) -> torch.Tensor:
    """Summed answer log-probs under `model` (a frozen reference), or under it with its adapter disabled."""
    with adapter_disabled(model) if disable_adapter else nullcontext():
        return answer_logps(model, batch, lc_alpha).sums


def reference_logps(
    policy: Any,
    batch: Mapping[str, torch.Tensor],
    keys: tuple[str, ...],
    prefix: str = "",
    ref_model: Any = None,
    lc_alpha: float | None = None,
) -> torch.Tensor:
    """The reference's summed answer log-probs of the rows under `prefix`: the precomputed values in
    `batch[keys]` (one key per block of rows, in order), else `ref_model`, else the unwrapped `policy`
    with its adapter disabled."""
    if all(key in batch for key in keys):
        return torch.cat([batch[key] for key in keys])
    if ref_model is not None:
        return model_reference_logps(ref_model, rows(batch, prefix), False, lc_alpha)
    return model_reference_logps(policy, rows(batch, prefix), True, lc_alpha)


def to_device(value: Any, device: Any) -> Any:
    """A tensor, or a dict of them (the media of multimodal rows), on `device`."""
    if isinstance(value, Mapping):
        return {key: to_device(item, device) for key, item in value.items()}
    return value.to(device) if isinstance(value, torch.Tensor) else value  # max_length_q is an int


def precompute_reference_logps(
    features: list[dict[str, Any]],
    model: Any,
    collator: Any,
    batch_size: int,
    disable_adapter: bool,
    keys: Mapping[str, tuple[str, ...]],
    lc_alpha: float | None = None,
) -> list[dict[str, Any]]:
    """The features with the reference's summed answer log-probs added, computed once.

    `keys` maps a row prefix of the collated batch to the feature keys it fills: the rows split into
    as many equal blocks as keys, in order (DPO: `{"": ("ref_chosen_logps", "ref_rejected_logps")}`
    over [chosen; rejected]; KTO: `{"": ("reference_logps",), "kl_": ("reference_kl_logps",)}`).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(features), batch_size):
        chunk = features[start : start + batch_size]
        batch = {key: to_device(value, device) for key, value in collator(chunk).items()}
        values: dict[str, list[float]] = {}
        for prefix, names in keys.items():
            sums = model_reference_logps(model, rows(batch, prefix), disable_adapter, lc_alpha)
            values.update(zip(names, (block.tolist() for block in sums.chunk(len(names))), strict=True))
        for i, feature in enumerate(chunk):
            out.append({**feature, **{name: column[i] for name, column in values.items()}})
    model.train(was_training)
    return out
