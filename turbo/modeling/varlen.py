"""Variable-length attention on any device, for padding-free packed batches.

`turbo.data.packing.FlatCollator` puts a whole batch in one row and passes `cu_seq_lens_q`, the
samples' start offsets. flash_attention_2 reads them natively; on CPU (and for sdpa/eager models)
turbo switches the model to "turbo_varlen": the samples are gathered into a (samples x longest)
batch, right-padded, and attend through one fused causal SDPA call (a query never sees the padding
after it, so no mask is needed), then the real positions are gathered back. That is neither a
(total x total) block-diagonal mask over the whole row (work quadratic in the row) nor one small
kernel call per sample (hundreds of calls per layer, each paying the kernel's fixed cost and a
thread synchronisation). Samples are grouped by length so that padding stays under half of a
group's positions. A batch without offsets (evaluation of unpacked rows, generation) runs plain SDPA.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "turbo_varlen"
SCORES_PER_CALL = 2_000_000  # float32 attention scores per matmul_attention call (8 MB: stays in cache)


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention output (batch, length, heads, head_dim), as transformers' attention functions return it."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    p = dropout if module.training else 0.0
    shared = kwargs.get("shared_prompts")
    if shared is not None:  # answers over one copy of their prompt (turbo.data.shared_prompts)
        return shared_prompt_attention(module, query, key, value, shared, dropout, scaling), None
    if cu_seq_lens_q is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    bounds = cu_seq_lens_q.tolist()
    segments = [(start, end - start) for start, end in zip(bounds, bounds[1:], strict=False) if end > start]
    outputs, positions, padded = [], [], []
    done = 0  # padded outputs before this group's
    for group in length_groups(segments):
        starts = torch.tensor([start for start, _ in group], device=query.device)
        lengths = torch.tensor([length for _, length in group], device=query.device)
        offsets = torch.arange(group[0][1], device=query.device)  # the longest comes first
        index = (starts[:, None] + offsets).clamp(max=query.shape[2] - 1)  # (samples, longest)
        real = offsets < lengths[:, None]
        out = causal_attention(*(take(tensor, index) for tensor in (query, key, value)), p, scaling)
        outputs.append(out.transpose(1, 2).flatten(0, 1))  # (samples x longest, heads, head_dim)
        positions.append(index[real])
        padded.append(real.flatten().nonzero().squeeze(1) + done)
        done += real.numel()
    unpad = torch.empty(query.shape[2], dtype=torch.long, device=query.device)
    unpad[torch.cat(positions)] = torch.cat(padded)  # each row position's place among the padded outputs
    return torch.cat(outputs).index_select(0, unpad).unsqueeze(0), None


def take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(1, heads, total, head_dim) at the row positions `index` (rows, width) -> (rows, heads, width,
    head_dim); index_select, whose backward (index_add) is about twice as fast on a CPU as indexing's."""
    picked = tensor[0].index_select(1, index.flatten())
    return picked.view(tensor.shape[1], *index.shape, tensor.shape[3]).transpose(0, 1)


def shared_prompt_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    shared: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
) -> torch.Tensor:
    """The attention of a row of shared prompts (turbo.data.shared_prompts.SharedPrompts): (1, heads,
    total, head_dim) -> (1, total, heads, head_dim)."""
    p = dropout if module.training else 0.0

    prompt_key, prompt_value = take(key, shared.prompt_index), take(value, shared.prompt_index)
    prompts = causal_attention(take(query, shared.prompt_index), prompt_key, prompt_value, p, scaling)
    outputs = [prompts.transpose(1, 2).flatten(0, 1)]  # (prompts x longest, heads, head_dim)
    if shared.answer_index.shape[1]:
        own = shared.answer_prompt
        keys = torch.cat([prompt_key.index_select(0, own), take(key, shared.answer_index)], dim=2)
        values = torch.cat([prompt_value.index_select(0, own), take(value, shared.answer_index)], dim=2)
        answers = masked_attention(take(query, shared.answer_index), keys, values, shared.visible, p, scaling)
        outputs.append(answers.transpose(1, 2).flatten(0, 1))
    return torch.cat(outputs).index_select(0, shared.unpad).unsqueeze(0)


def causal_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, dropout: float, scaling: float | None
) -> torch.Tensor:
    """Causal attention of right-padded (samples, heads, length, head_dim) rows (a query never sees the
    padding after it): matmul_attention where it is faster, else SDPA."""
    if use_matmul_attention(query, dropout):
        return matmul_attention(query, key, value, scaling)
    return torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        dropout_p=dropout,
        is_causal=True,
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )


def masked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    visible: torch.Tensor,
    dropout: float,
    scaling: float | None,
) -> torch.Tensor:
    """Attention in which query i of sample s sees key j where visible[s, i, j] (bool)."""
    if use_matmul_attention(query, dropout):
        precise = torch.promote_types(query.dtype, torch.float32)
        bias = torch.zeros(visible.shape, dtype=precise, device=query.device)
        return matmul_attention(query, key, value, scaling, bias.masked_fill_(~visible, float("-inf")))
    return torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=visible[:, None],
        dropout_p=dropout,
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )


def use_matmul_attention(query: torch.Tensor, dropout: float) -> bool:
    """bfloat16 attention on a CPU, trained (gradients on), without dropout: matmul_attention beats SDPA's
    flash kernel there. Without gradients (a reference's or an evaluation's forward) the two are even
    and SDPA keeps no scores in memory."""
    bfloat16_cpu = query.device.type == "cpu" and query.dtype == torch.bfloat16
    return bfloat16_cpu and dropout == 0.0 and torch.is_grad_enabled()


def matmul_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scaling: float | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of (samples, heads, length, head_dim) queries over (samples, kv_heads, keys, head_dim)
    keys and values as softmax(q k^T + bias) v: the matmuls in the inputs' dtype, the scores and softmax
    in float32. `bias` (samples, length, keys), 0 or -inf, says what each query sees; None: causal.
    Grouped-query heads share their key and value without copies (a group's queries are one matmul
    against its key). Samples go a few at a time, so that a call's scores stay under SCORES_PER_CALL."""
    samples, heads, length, width = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    group = heads // kv_heads
    scale = scaling if scaling is not None else width**-0.5
    precise = torch.promote_types(query.dtype, torch.float32)  # the scores' dtype: float32 at least
    if bias is None:
        future = torch.ones(length, keys, dtype=torch.bool, device=query.device).triu_(1)
        bias = torch.zeros(1, length, keys, dtype=precise, device=query.device)
        bias.masked_fill_(future, float("-inf"))
    step = max(1, SCORES_PER_CALL // (heads * length * keys))
    outputs = []
    for start in range(0, samples, step):
        q = query[start : start + step].reshape(-1, kv_heads, group * length, width)
        scores = (q @ key[start : start + step].transpose(-1, -2)).view(-1, kv_heads, group, length, keys)
        seen = bias if bias.shape[0] == 1 else bias[start : start + step]
        weights = (scores.to(precise) * scale + seen[:, None, None]).softmax(-1).to(query.dtype)
        out = weights.view(-1, kv_heads, group * length, keys) @ value[start : start + step]
        outputs.append(out.view(-1, heads, length, width))
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def length_groups(segments: list[tuple[int, int]], waste: float = 0.5) -> list[list[tuple[int, int]]]:
    """(start, length) segments in groups, longest first, each padded to its first (longest) length
    with at most `waste` of its positions padding (a group of one has none)."""
    ordered = sorted(segments, key=lambda segment: -segment[1])
    groups: list[list[tuple[int, int]]] = []
    real = 0
    for segment in ordered:
        if groups and real + segment[1] >= (1 - waste) * groups[-1][0][1] * (len(groups[-1]) + 1):
            groups[-1].append(segment)
            real += segment[1]
        else:
            groups.append([segment])
            real = segment[1]
    return groups


def use_varlen_attention(model: torch.nn.Module) -> bool:
    """Switch an sdpa/eager model (or a peft model around one) to "turbo_varlen"; False if it keeps its own.

    flash-attention kernels already take the offsets, and models without `set_attn_implementation`
    are left alone.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager", NAME):
        return False
    if not hasattr(base, "set_attn_implementation"):
        return False
    AttentionInterface.register(NAME, varlen_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    base.set_attn_implementation(NAME)
    return True


def reads_offsets(model: torch.nn.Module) -> bool:
    """True when the model's attention reads `cu_seq_lens_q` itself (turbo_varlen, flash-attention)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    implementation = str(getattr(getattr(base, "config", None), "_attn_implementation", None))
    return implementation == NAME or implementation.startswith("flash")


def attend_by_offsets(*models: torch.nn.Module | None) -> bool:
    """Whether every model given (None skipped) keeps each sample of a padding-free row to itself:
    sdpa/eager models are switched to "turbo_varlen" (use_varlen_attention), flash-attention reads the
    offsets itself. Stops at the first model that cannot."""
    return all(use_varlen_attention(model) or reads_offsets(model) for model in models if model is not None)
