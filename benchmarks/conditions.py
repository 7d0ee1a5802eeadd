"""What a benchmark's numbers were taken under: the CPU (model name, bfloat16/AMX flags) and the load.

Numbers taken on a loaded machine mislead (issue 24, "How to measure"): every benchmark prints these
before its table and each run's load average beside its result.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2", "fma")


def cpu_description() -> str:
    """'AMD EPYC, 2 cores, flags avx512f avx512_bf16 ...' from /proc/cpuinfo (the platform elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    model = fields.get("model name") or platform.machine()
    flags = set(fields.get("flags", "").split())
    present = [flag for flag in FLAGS if flag in flags]
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(present) or 'none of ' + ' '.join(FLAGS)}"


def load_average() -> str:
    """The 1/5/15-minute load averages, as uptime prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def describe_conditions() -> str:
    threads = os.environ.get("OMP_NUM_THREADS", "unset (all cores)")
    return f"CPU: {cpu_description()}; OMP_NUM_THREADS={threads}; load average now {load_average()}"


if __name__ == "__main__":
    print(describe_conditions())
