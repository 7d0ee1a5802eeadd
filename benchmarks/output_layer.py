"""The output layer of a GRPO step: turbo's chunked token log-probs against the full logits, side by side.

    python benchmarks/output_layer.py [--tokens 3840] [--hidden 576] [--vocabulary 49152] [--repeat 5]

Scoring answers needs log softmax(h W^T)[target] per answer token (and GRPO's entropy metric). The plain
way, which TRL's trainers take, builds the logits of every token over the whole vocabulary, casts them to
float32 and takes log_softmax and gather; autograd keeps them for the backward pass. turbo's
`linear_token_logps_entropy` (turbo/trainers/losses/chunked_ce.py) projects a cache-sized chunk of
tokens at a time through one fused log-softmax and computes the gradient with respect to the hidden
states in the same pass. Both run at bfloat16 (the output layer frozen, as under LoRA) on SmolLM2's
shapes by default: the policy's pass (log-probs and entropy, forward and backward) and the reference's
(log-probs, no gradient). Prints the CPU, the load average, each variant's best seconds of `--repeat`,
the ratio, the largest difference from the float32 full-logits result, and the peak memory of each
(tracemalloc does not see tensors: the logits' bytes are computed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from machine import cpu_model, load_average

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from turbo.trainers.losses.chunked_ce import chunk_rows, linear_token_logps_entropy  # noqa: E402


def full_logits(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, entropy: bool):
    """The plain way: every token's float32 logits over the vocabulary, log_softmax, gather."""
    log_probs = (hidden @ weight.T).float().log_softmax(-1)
    logps = log_probs.gather(1, targets[:, None]).squeeze(1)
    entropies = None
    if entropy:
        with torch.no_grad():
            entropies = -(log_probs.exp() * log_probs).sum(-1)
    return logps, entropies


def turbo(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, entropy: bool):
    return linear_token_logps_entropy(hidden, weight, targets, entropy=entropy)


def timed(function, hidden, weight, targets, upstream, policy: bool, repeat: int) -> tuple[float, tuple]:
    """Best seconds of `repeat` calls: the policy's forward + backward with entropy, or the reference's
    forward without gradients; and the last call's log-probs, entropies and hidden-state gradient."""
    best, result = float("inf"), ()
    for _ in range(repeat + 1):  # the first call warms up
        hidden.grad = None
        start = time.perf_counter()
        if policy:
            logps, entropies = function(hidden, weight, targets, entropy=True)
            (logps * upstream).sum().backward()
            result = (logps.detach(), entropies, hidden.grad)
        else:
            with torch.no_grad():
                result = (function(hidden, weight, targets, entropy=False)[0], None, None)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=3840, help="answer tokens (GRPO: 64 answers x 60)")
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--vocabulary", type=int, default=49152)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}; {load_average()}")
    torch.manual_seed(0)
    weight = (torch.randn(args.vocabulary, args.hidden) * 0.05).bfloat16()
    hidden = (torch.randn(args.tokens, args.hidden) * 2).bfloat16().requires_grad_()
    targets = torch.randint(0, args.vocabulary, (args.tokens,))
    upstream = torch.randn(args.tokens)
    with torch.no_grad():  # the float32 truth
        exact = (hidden.float() @ weight.float().T).log_softmax(-1).gather(1, targets[:, None]).squeeze(1)
    logits_mib = args.tokens * args.vocabulary * 4 / 2**20
    chunk = chunk_rows(args.vocabulary)
    print(
        f"{args.tokens} tokens, hidden {args.hidden}, vocabulary {args.vocabulary}, bfloat16, best of "
        f"{args.repeat}; float32 logits: full {logits_mib:.0f} MiB (x2 kept for the backward), "
        f"turbo {chunk} tokens a chunk ({chunk * args.vocabulary * 4 / 2**20:.0f} MiB)"
    )
    for policy, label in ((True, "policy: log-probs + entropy, forward + backward"), (False, "reference")):
        plain, plain_result = timed(full_logits, hidden, weight, targets, upstream, policy, args.repeat)
        ours, our_result = timed(turbo, hidden, weight, targets, upstream, policy, args.repeat)
        error = (our_result[0] - exact).abs().max().item()
        plain_error = (plain_result[0] - exact).abs().max().item()
        print(
            f" {label}: full logits {plain:.3f} s, turbo {ours:.3f} s, {plain / ours:.2f}x; "
            f"largest log-prob difference from float32: turbo {error:.1e}, full logits {plain_error:.1e}"
        )
        if policy:
            gap = (our_result[2].float() - plain_result[2].float()).abs().max().item()
            entropy_gap = (our_result[1] - plain_result[1]).abs().max().item()
            print(f"  hidden-state gradient difference {gap:.1e}, entropy difference {entropy_gap:.1e}")


if __name__ == "__main__":
    main()
