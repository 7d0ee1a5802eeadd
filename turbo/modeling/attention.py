"""Which attention kernel can run here (imports nothing heavy until asked about a GPU)."""

from __future__ import annotations

ATTENTION_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


def attention_problem(kind: str | None, check_gpu: bool = True) -> str | None:
    """Why the attention kernel `kind` cannot run here (a package or a CUDA GPU missing), or None."""
    import importlib.util

    package = ATTENTION_PACKAGES.get(kind or "")
    if package is None:
        return None
    if importlib.util.find_spec(package) is None:
        return (
            f"{kind} needs the {package} package, which is not installed; "
            "set attn_implementation: 'sdpa' (or 'eager'), or install it on a CUDA machine"
        )
    if check_gpu:
        import torch

        if not torch.cuda.is_available():
            return f"{kind} runs on CUDA GPUs only and this machine has none; set attn_implementation: 'sdpa'"
    return None
