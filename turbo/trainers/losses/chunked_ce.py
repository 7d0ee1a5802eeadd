"""Next-token cross-entropy through the output layer, a chunk of tokens at a time.

The plain path projects every position of the batch onto the whole vocabulary and keeps those
float32 logits (and their gradient) for the backward pass: batch x length x vocabulary x 4 bytes,
twice (400 MiB each for 8 x 256 tokens and SmolLM2's 49,152 tokens). Here only the positions that
carry a label are projected, `chunk` rows at a time; each chunk's loss and its gradients with respect
to the hidden states (and the output weight, when it trains) are computed at once and the logits are
freed, so memory holds one chunk of logits and the work skips every ignored position (prompts under
`only_answer_loss`, padding). The loss equals the plain one: the same float32 log-softmax per token.

A chunk's logits go through one fused log-softmax kernel (read once in the matmul's dtype, written once
in float32) instead of logsumexp, subtraction and exp as separate passes over [chunk, vocabulary]
buffers, and a chunk is sized so that its float32 logits (CHUNK_BYTES) stay in the last-level cache:
at SmolLM2's 49,152-token vocabulary, 128 rows (benchmarks/output_layer.py measures a GRPO policy pass
against the full logits).
"""

from __future__ import annotations

import torch

from turbo.labels import IGNORE_INDEX

CHUNK_BYTES = 32 * 2**20  # float32 logits per chunk

# Causal LMs whose logits are exactly lm_head(last hidden state): no bias, soft-capping or scaling.
PLAIN_HEAD_MODEL_TYPES = {
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "smollm3",
    "phi3",
    "olmo2",
    "gemma",
}


def chunk_rows(vocabulary: int) -> int:
    """Rows per chunk: a power of two whose float32 logits fit CHUNK_BYTES (32 to 1,024 rows)."""
    rows = 32
    while rows < 1024 and 2 * rows * vocabulary * 4 <= CHUNK_BYTES:
        rows *= 2
    return rows


def chunk_log_softmax(rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """float32 log softmax(rows @ weight.T): the logits in the matmul's dtype, one fused kernel over them."""
    return torch.log_softmax(rows @ weight.T, dim=-1, dtype=torch.float32)


def no_logits(device: torch.device) -> torch.Tensor:
    """transformers' `logits_to_keep` that keeps no position: the model returns its hidden states and its
    output layer projects nothing. (`logits_to_keep=1` projects one position onto the whole vocabulary,
    which on CPU copies the transposed output weight first: 56 MB, about 60 ms per SmolLM2 forward.)"""
    return torch.empty(0, dtype=torch.long, device=device)


def supports_chunked_loss(model: torch.nn.Module) -> bool:
    """True when the model's logits are a plain linear layer of its final hidden states."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    peft_config = getattr(model, "peft_config", {})
    if any(str(getattr(c, "peft_type", "LORA")).split(".")[-1] != "LORA" for c in peft_config.values()):
        return False  # prompt/prefix tuning add virtual positions to the hidden states
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    return (
        getattr(getattr(base, "config", None), "model_type", None) in PLAIN_HEAD_MODEL_TYPES
        and isinstance(head, torch.nn.Linear)
        and head.bias is None
        and head.weight.dim() == 2
    )


class _LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(hidden_i @ weight.T, target_i); gradients computed in the forward pass, chunk by chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            rows = hidden[start : start + chunk]
            goal = targets[start : start + chunk]
            log_probs = chunk_log_softmax(rows, weight)
            total -= log_probs.gather(1, goal[:, None]).sum()
            if need_hidden or need_weight:
                grad = log_probs.exp_()  # softmax, in place of the log-probs
                grad[torch.arange(len(goal), device=goal.device), goal] -= 1
                grad = grad.to(hidden.dtype)
                if grad_hidden is not None:
                    grad_hidden[start : start + chunk] = grad @ weight
                if grad_weight is not None:
                    grad_weight += (grad.T @ rows).float()
        ctx.save_for_backward(
            grad_hidden if grad_hidden is not None else torch.empty(0),
            grad_weight.to(weight.dtype) if grad_weight is not None else torch.empty(0),
        )
        return total

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        grad_hidden, grad_weight = ctx.saved_tensors  # type: ignore[attr-defined]
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]  # type: ignore[attr-defined]
        return (
            grad_hidden * grad_output.to(grad_hidden.dtype) if need_hidden else None,
            grad_weight * grad_output.to(grad_weight.dtype) if need_weight else None,
            None,
            None,
        )


def shifted_targets(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states (n, d) of the positions whose next label is not ignored, and those labels (n,)."""
    targets = labels[..., 1:].reshape(-1)
    keep = targets != IGNORE_INDEX
    rows = hidden[..., :-1, :].reshape(-1, hidden.shape[-1])
    return rows[keep], targets[keep]


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """transformers' causal-LM loss of `lm_head(hidden)` without the full logits.

    hidden (batch, length, d) are the final (normed) hidden states, weight (vocabulary, d) the output
    layer, labels (batch, length) unshifted with -100 where ignored. Returns the mean over the labelled
    tokens, or their sum / num_items_in_batch when it is given (as transformers does under gradient
    accumulation).
    """
    rows, targets = shifted_targets(hidden, labels.to(hidden.device))
    rows = rows.to(weight.dtype)  # as the output layer reads them (float32 states from float32 adapters)
    chunk = chunk or chunk_rows(weight.shape[0])
    if torch.is_grad_enabled() and (rows.requires_grad or weight.requires_grad):
        total = _LinearCrossEntropy.apply(rows, weight, targets, chunk)
    else:
        total = -project(rows, weight, targets, chunk).sum()
    if num_items_in_batch is not None:
        if isinstance(num_items_in_batch, torch.Tensor):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
    return total / targets.numel()


def project(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk: int,
    entropy: torch.Tensor | None = None,
    grad_hidden: torch.Tensor | None = None,
) -> torch.Tensor:
    """log softmax(hidden @ weight.T)[targets] per row, a chunk of rows at a time; fills `entropy` with
    each row's entropy and `grad_hidden` with weight.T @ (onehot - softmax) when they are given."""
    logps = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk):
        goal = targets[start : start + chunk]
        log_probs = chunk_log_softmax(hidden[start : start + chunk], weight)
        logps[start : start + chunk] = log_probs.gather(1, goal[:, None]).squeeze(1)
        if grad_hidden is None and entropy is None:
            continue
        probs = log_probs.exp() if entropy is not None else log_probs.exp_()
        if entropy is not None:  # -sum p log p
            entropy[start : start + chunk] = -torch.linalg.vecdot(probs, log_probs)
        if grad_hidden is not None:
            grad = probs.neg_()  # onehot - softmax, in place
            grad[torch.arange(len(goal), device=goal.device), goal] += 1
            grad_hidden[start : start + chunk] = grad.to(hidden.dtype) @ weight
    return logps


class _LinearTokenLogps(torch.autograd.Function):
    """log softmax(hidden_i @ weight.T)[target_i] per row i, a chunk of rows at a time.

    With a frozen weight (LoRA, a reference) the gradient of each row's log-prob with respect to its
    hidden state, weight.T @ (onehot - softmax), is computed in the forward pass and scaled by the
    upstream gradient in the backward; with a trained weight the backward recomputes each chunk.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        entropy: torch.Tensor | None = None,
    ) -> torch.Tensor:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        early = need_hidden and not need_weight
        grad_hidden = torch.empty_like(hidden) if early else None
        logps = project(hidden, weight, targets, chunk, entropy, grad_hidden)
        ctx.chunk = chunk  # type: ignore[attr-defined]
        if early:
            ctx.save_for_backward(grad_hidden)
        elif need_weight:
            ctx.save_for_backward(hidden, weight, targets)
        return logps

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None, None]:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]  # type: ignore[attr-defined]
        if not need_weight:
            (grad_hidden,) = ctx.saved_tensors  # type: ignore[attr-defined]
            return grad_hidden * grad_output[:, None].to(grad_hidden.dtype), None, None, None, None
        hidden, weight, targets = ctx.saved_tensors  # type: ignore[attr-defined]
        chunk = ctx.chunk  # type: ignore[attr-defined]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        for start in range(0, hidden.shape[0], chunk):
            rows, goal = hidden[start : start + chunk], targets[start : start + chunk]
            grad = chunk_log_softmax(rows, weight).exp_().neg_()  # onehot - softmax
            grad[torch.arange(len(goal), device=goal.device), goal] += 1
            grad = grad.mul_(grad_output[start : start + chunk, None].float()).to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = grad @ weight
            grad_weight += (grad.T @ rows).float()
        return grad_hidden, grad_weight.to(weight.dtype), None, None, None


def linear_token_logps(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """log softmax(hidden @ weight.T)[targets] per row, float32, without the full logits.

    hidden (n, d) the final hidden states of the positions to score, weight (vocabulary, d) the output
    layer, targets (n,) the tokens they predict. Equal to the plain full-logits log-softmax and its
    gradients; memory holds one chunk of logits at a time.
    """
    return linear_token_logps_entropy(hidden, weight, targets, chunk, entropy=False)[0]


def linear_token_logps_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk: int | None = None,
    entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """linear_token_logps, and with `entropy` the entropy of each row's softmax (a metric: no gradient)
    from the same logits: one projection onto the vocabulary, not two."""
    hidden = hidden.to(weight.dtype)  # as the output layer reads them
    chunk = chunk or chunk_rows(weight.shape[0])
    entropies = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device) if entropy else None
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearTokenLogps.apply(hidden, weight, targets, chunk, entropies), entropies
    with torch.no_grad():
        return project(hidden, weight, targets, chunk, entropies), entropies
