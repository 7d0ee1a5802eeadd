"""glibc's malloc tuned for training: large tensors reuse freed heap memory instead of new pages.

PyTorch's CPU allocator is plain malloc. glibc serves a request above its mmap threshold (128 KiB at
first, raised up to 32 MiB as mmapped blocks are freed) with a fresh mmap and gives it back on free, and
trims the heap's free top above twice that threshold. A training step allocates and frees the same
activations, logits chunks and gradients every step, so each of them comes back as new pages that the
kernel faults in and zeroes again. On 2 cores of an AMD EPYC, three alternating pairs of
benchmarks/grpo_throughput.py's turbo_vllm run (SmolLM2, 4 steps) spent 8.6-10.1 s in the kernel with
glibc's defaults and 6.4-6.8 s tuned, and trained about 2 % faster (README, "Speed").

`tune_allocator` sets what the CPU guides of PyTorch, IPEX and vLLM reach for with tcmalloc or jemalloc,
through glibc's own knobs: requests up to 32 MiB (glibc's largest threshold) come from the heap, and
freed memory stays with the process for the next step (the heap's free top goes back to the kernel only
above 1 GiB). The peak memory stays about the same; the process keeps it between steps, as a GPU caching
allocator does. Child processes (torchrun ranks, a vLLM engine process) get the same settings through
glibc's environment variables.

Left alone where the user chose an allocator: another one preloaded (LD_PRELOAD), glibc tunables
(GLIBC_TUNABLES) or any MALLOC_* variable set; and off with TURBO_MALLOC=default.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # malloc.h
SETTINGS = {  # mallopt parameter: (glibc's environment variable, value)
    M_MMAP_THRESHOLD: ("MALLOC_MMAP_THRESHOLD_", 32 * 2**20),
    M_TRIM_THRESHOLD: ("MALLOC_TRIM_THRESHOLD_", 2**30),
    M_TOP_PAD: ("MALLOC_TOP_PAD_", 256 * 2**20),
}


def user_allocator(environ: Mapping[str, str]) -> str | None:
    """What in the environment shows that the user chose the allocator's settings, or None."""
    if environ.get("TURBO_MALLOC") == "default":
        return "TURBO_MALLOC=default"
    if environ.get("LD_PRELOAD", "").strip():
        return "LD_PRELOAD"
    if "malloc" in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    chosen = sorted(name for name in environ if name.startswith("MALLOC_"))  # glibc's (and jemalloc's CONF)
    return chosen[0] if chosen else None


def glibc() -> bool:
    """Whether this process runs on glibc (Linux with the GNU C library)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError):  # not a glibc system
        return False


def tune_allocator() -> bool:
    """Apply SETTINGS to this process (mallopt) and to its children (environment); True when applied.
    Only on glibc, and not where the user chose (user_allocator)."""
    if not glibc() or user_allocator(os.environ) is not None:
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not all(mallopt(parameter, value) == 1 for parameter, (_, value) in SETTINGS.items()):
        return False
    os.environ.update({name: str(value) for name, value in SETTINGS.values()})
    return True
