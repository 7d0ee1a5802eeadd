"""What many test files share: the fixture paths, a runner for the real CLI, and readers and checks of
what a run leaves behind (its metrics log, its saved tensors). Fixtures live in tests/conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
CONFIGS = FIXTURES / "configs"
DATASETS = FIXTURES / "datasets"


def run_turbo(*args: str | Path, expect: int | None = 0, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m turbo ARGS` from the repository root, as a user runs it; checks the exit code."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "turbo", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if expect is not None and result.returncode != expect:
        raise AssertionError(
            f"turbo {' '.join(map(str, args))} exited {result.returncode}, expected {expect}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-8000:]}"
        )
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def train_rows(folder: Path, key: str = "loss") -> list[dict]:
    """The rows of a run's metrics.jsonl that carry `key` (train steps: `loss`; RL steps: `reward/mean`)."""
    return [row for row in read_jsonl(folder / "metrics.jsonl") if key in row]


def losses(folder: Path) -> list[float]:
    return [row["loss"] for row in train_rows(folder)]


def assert_loss_falls(folder: Path, factor: float = 0.5) -> None:
    values = losses(folder)
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < factor * first, values


def assert_every_tensor_changed(
    before: Path, after: Path, frozen_parts: tuple[str, ...] = ("original_module",)
) -> dict:
    """Trained tensors all changed; the frozen ones peft saves beside them (embeddings of a resized
    vocabulary) did not. Returns the tensors after training."""
    import torch
    from safetensors.torch import load_file

    old, new = load_file(before), load_file(after)
    assert old.keys() == new.keys() and new
    frozen = [name for name in new if any(part in name for part in frozen_parts)]
    assert all(torch.equal(old[name], new[name]) for name in frozen)
    unchanged = [name for name in new if name not in frozen and torch.equal(old[name], new[name])]
    assert not unchanged, unchanged
    return new
