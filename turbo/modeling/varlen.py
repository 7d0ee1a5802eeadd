"""Variable-length attention on any device, for padding-free packed batches.

`turbo.data.packing.FlatCollator` puts a whole batch in one row and passes `cu_seq_lens_q`, the
samples' start offsets. flash_attention_2 reads them natively; on CPU (and for sdpa/eager models)
turbo switches the model to "turbo_varlen": one causal SDPA call per sample, so each sample uses the
fused causal kernel on its own length instead of a (total x total) block-diagonal mask over the
whole row. A batch without offsets (evaluation of unpacked rows, generation) runs plain SDPA.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "turbo_varlen"


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

    if cu_seq_lens_q is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    gqa = query.shape[1] != key.shape[1]
    bounds = cu_seq_lens_q.tolist()
    pieces = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            dropout_p=dropout if module.training else 0.0,
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for start, end in zip(bounds, bounds[1:], strict=False)
        if end > start
    ]
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous(), None


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
