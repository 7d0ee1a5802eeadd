"""Shared test helpers: the tiny offline models and a runner for the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
CONFIGS = FIXTURES / "configs"
DATASETS = FIXTURES / "datasets"

sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="session")
def fixture_models() -> Path:
    """tests/fixtures/models/{llama_tiny, llama_seq_cls, llama_rm} and LoRA adapters on each
    (llama_tiny_adapter, llama_rm_adapter, llama_seq_cls_adapter), built once and cached."""
    from build_models import build_all

    return build_all()


@pytest.fixture(scope="session")
def multimodal_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{clip_tiny, siglip_tiny, whisper_tiny} beside llama_tiny, and the drawn media."""
    from build_multimodal import build_all

    return build_all(fixture_models)


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
    import json

    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
