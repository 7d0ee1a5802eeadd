"""What the machine can do, measured by the benchmarks themselves: matmul peak per dtype, model FLOP.

    python benchmarks/machine.py            # the matmul peaks (float32, bfloat16) and memory bandwidth

MFU (model FLOP/s utilisation) = FLOP per token x tokens/s / the matmul peak measured here, at the
training dtype. FLOP per token of a decoder of N parameters (the output layer counted, the input
embedding lookup not), L layers, width d, samples of mean length S (causal attention: a token attends
to (S+1)/2 positions on average):

    full fine-tuning  6N + 6 L d S   (forward 2N, backward 4N: activation and weight gradients)
    LoRA              4N + 6 L d S   (frozen weights get no weight gradient; adapters are ~0.1 % of N)
    generation        2N + 2 L d C   per generated token, C = mean context length

(6 L d S = 12 L d x S/2: QK^T and AV, 2 FLOP per multiply-add, forward + twice for backward.)
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

FORMULAS = {
    "full": "6N + 6*L*d*S",
    "lora": "4N + 6*L*d*S",
    "generate": "2N + 2*L*d*C",
}


def matmul_peak(dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = 2.0) -> float:
    """The best FLOP/s of a size x size matmul at `dtype` over about `seconds` on this device (CPU)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def memory_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s of the best of `repeats` full reads of a `gib` GiB float32 tensor (a sum over it): the
    speed at which a decode step can stream the weights, which bounds generation at small batches."""
    data = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    data.sum()  # pages touched, caches warm
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return data.numel() * data.element_size() / best


def cpu_model() -> str:
    """The CPU's model name, cores, and the flags that decide its bf16 speed (amx, avx512_bf16)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    wanted = [flag for flag in flags if flag.startswith("amx") or flag in {"avx512_bf16", "avx512f", "avx2"}]
    return f"{name} ({os.cpu_count()} cores; {' '.join(wanted) or 'no avx512/amx flags'})"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: numbers taken above ~0.5 are not results (other work ran)."""
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def peaks(seconds: float = 2.0) -> dict[str, float]:
    return {name: matmul_peak(getattr(torch, name), seconds=seconds) for name in ("float32", "bfloat16")}


def faster_dtype(measured: dict[str, float]) -> str:
    """The training dtype this machine should use: bfloat16 only where its matmuls are faster."""
    return "bfloat16" if measured["bfloat16"] > measured["float32"] else "float32"


def model_shape(config: Any, parameters: int) -> dict[str, int]:
    text = getattr(config, "text_config", config)
    return {"N": parameters, "L": text.num_hidden_layers, "d": text.hidden_size}


def flop_per_token(kind: str, shape: dict[str, int], length: float) -> float:
    """FORMULAS[kind] with S (or C) = length."""
    n, layers, width = shape["N"], shape["L"], shape["d"]
    weights = {"full": 6, "lora": 4, "generate": 2}[kind]
    attention = 2 if kind == "generate" else 6
    return weights * n + attention * layers * width * length


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters counted once (tied embeddings once), i.e. the output layer's matmul is in N."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def describe_peaks(measured: dict[str, float]) -> str:
    return (
        f"matmul peak (2048^2, this machine now): float32 {measured['float32'] / 1e9:.0f} GFLOP/s, "
        f"bfloat16 {measured['bfloat16'] / 1e9:.0f} GFLOP/s -> train in {faster_dtype(measured)}"
    )


def describe_bandwidth(bandwidth: float) -> str:
    return (
        f"memory bandwidth (best sum over a 1 GiB tensor, {torch.get_num_threads()} threads): "
        f"{bandwidth / 1e9:.1f} GB/s"
    )


if __name__ == "__main__":
    print(f"{cpu_model()}; {load_average()}")
    print(describe_peaks(peaks()))
    print(describe_bandwidth(memory_bandwidth()))
