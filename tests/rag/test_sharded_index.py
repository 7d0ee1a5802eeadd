"""A sharded index through the real CLI: build_index with index_shards writes shard files and a manifest;
inference_rag over it retrieves the same ids with the same scores (and answers the same) as over the
unsharded index of the same passages; validate finds a missing shard; build_index under torchrun (2
ranks encoding) writes the index one process writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ..helpers import CONFIGS, REPO, read_jsonl, run_turbo

BUILD = CONFIGS / "build_index" / "tiny.json"
INFERENCE = CONFIGS / "inference" / "rag" / "base.json"
ENTRY = "inference_settings.0.model_settings"
IVF = "index_factory=IVF2,Flat"  # shards share one trained quantizer, so the search is the same


def build_args(folder: Path, *settings: str) -> list[str]:
    sets = [
        f"index_settings.index_path={folder / 'index.faiss'}",
        f"index_settings.passages_path={folder / 'passages'}",
    ]
    return [
        "build_index",
        "--settings_path",
        str(BUILD),
        *[x for s in (*sets, *settings) for x in ("--set", s)],
    ]


def build(folder: Path, *settings: str) -> Path:
    run_turbo(*build_args(folder, *settings))
    return folder


def infer(index: Path, out: Path, *settings: str, expect: int = 0):
    sets = [
        f"save_path={out}", f"{ENTRY}.index_settings.index_path={index / 'index.faiss'}",
        f"{ENTRY}.index_settings.passages_path={index / 'passages'}", f"{ENTRY}.retrieval_settings.n_docs=4",
        *settings,
    ]  # fmt: skip
    return run_turbo(
        "inference_rag", "--inference_settings_path", INFERENCE, *[x for s in sets for x in ("--set", s)],
        expect=expect,
    )  # fmt: skip


@pytest.fixture(scope="module")
def indexes(rag_models, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sharded")
    return build(root / "whole", IVF), build(root / "sharded", IVF, "index_shards=3")


def test_build_index_writes_shards_and_a_manifest(indexes: tuple[Path, Path]) -> None:
    import faiss

    whole, sharded = indexes
    manifest = json.loads((sharded / "index.faiss").read_text())
    assert manifest | {"shards": None} == {
        "format": "turbo-faiss-shards", "index_factory": "IVF2,Flat", "metric": "inner_product",
        "dimension": 64, "count": 12, "shards": None,
    }  # fmt: skip
    assert manifest["shards"] == [
        {"path": f"index.shard{k:05d}.faiss", "offset": 4 * k, "count": 4} for k in range(3)
    ]
    assert sorted(p.name for p in sharded.iterdir()) == [
        "index.faiss", *(f"index.shard0000{k}.faiss" for k in range(3)), "passages",
    ]  # fmt: skip
    shards = [faiss.read_index(str(sharded / entry["path"])) for entry in manifest["shards"]]
    assert [shard.ntotal for shard in shards] == [4, 4, 4]
    one = faiss.read_index(str(whole / "index.faiss"))
    centroids = [index.quantizer.reconstruct_n(0, index.nlist) for index in (*shards, one)]
    assert all(np.array_equal(c, centroids[-1]) for c in centroids)  # one quantizer, trained once


def test_sharded_search_equals_the_unsharded_search(indexes: tuple[Path, Path], tmp_path: Path) -> None:
    """Through inference_rag: every question retrieves the same ids with the same scores, and the answers
    (generated from those passages) are the same."""
    whole, sharded = indexes
    infer(whole, tmp_path / "whole")
    infer(sharded, tmp_path / "sharded")
    (expected,) = list((tmp_path / "whole").rglob("*.jsonl"))
    (got,) = list((tmp_path / "sharded").rglob("*.jsonl"))
    rows, reference = read_jsonl(got), read_jsonl(expected)
    assert len(rows) == len(reference) > 0
    assert [r["retrieved_ids"] for r in rows] == [r["retrieved_ids"] for r in reference]
    assert [r["retrieved_scores"] for r in rows] == [r["retrieved_scores"] for r in reference]
    assert rows == reference
    assert len({tuple(r["retrieved_ids"]) for r in rows}) > 1  # the questions do not all retrieve alike


def test_train_rag_over_the_shards_trains_as_over_one_index(
    indexes: tuple[Path, Path], tmp_path: Path
) -> None:
    """train_rag's retriever reads the manifest too: 3 steps give the losses of the unsharded index."""
    losses = []
    for index in indexes:
        folder = tmp_path / index.name
        run_turbo(
            "train_rag", "--experiment_settings_path", CONFIGS / "train" / "rag" / "lora.json",
            "--set", f"log_path={folder}", "--set", "trainer_settings.max_steps=3",
            "--set", f"model_settings.index_settings.index_path={index / 'index.faiss'}",
            "--set", f"model_settings.index_settings.passages_path={index / 'passages'}",
        )  # fmt: skip
        losses.append([row["loss"] for row in read_jsonl(folder / "metrics.jsonl") if "loss" in row])
    assert len(losses[0]) == 3 and losses[1] == losses[0]


def test_the_retriever_searches_the_shards_as_one(indexes: tuple[Path, Path]) -> None:
    from datasets import load_from_disk

    from turbo.modeling.rag.retriever import load_retriever

    whole, sharded = indexes
    vectors = np.array(load_from_disk(str(whole / "passages"))["embeddings"], dtype=np.float32)
    queries = vectors + np.random.default_rng(0).normal(scale=0.3, size=vectors.shape).astype(np.float32)
    one = load_retriever(whole / "index.faiss", whole / "passages", "x", 64, 4)
    many = load_retriever(sharded / "index.faiss", sharded / "passages", "x", 64, 4)
    assert many.size == 12 and many.dimension == 64
    assert np.array_equal(many.search(queries, 6), one.search(queries, 6))
    scores_one, _ = one.index.search(queries, 6)
    scores_many, _ = many.index.search(queries, 6)
    assert np.array_equal(scores_many, scores_one)


def test_a_missing_shard_is_reported_before_anything_loads(
    indexes: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    _, sharded = indexes
    broken = tmp_path / "broken"
    shutil.copytree(sharded, broken)
    (broken / "index.shard00001.faiss").unlink()
    sets = [
        f"{ENTRY}.index_settings.index_path={broken / 'index.faiss'}",
        f"{ENTRY}.index_settings.passages_path={broken / 'passages'}",
        f"save_path={tmp_path / 'out'}",
    ]
    result = run_turbo(
        "validate",
        INFERENCE,
        "--command",
        "inference_rag",
        *[x for s in sets for x in ("--set", s)],
        expect=2,
    )
    assert "Traceback" not in result.stderr
    shard = broken / "index.shard00001.faiss"
    assert (
        f"index_settings.index_path: {broken / 'index.faiss'}: its shard {shard} is missing" in result.stderr
    )


def test_rebuilding_with_fewer_shards_removes_the_old_ones(rag_models, tmp_path: Path) -> None:
    build(tmp_path, "index_shards=4")
    build(tmp_path, "index_shards=2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.faiss", "index.shard00000.faiss", "index.shard00001.faiss", "passages",
    ]  # fmt: skip


@pytest.mark.slow
def test_build_index_under_torchrun_writes_the_one_process_index(
    indexes: tuple[Path, Path], tmp_path: Path
) -> None:
    """2 ranks encode half the passages each; rank 0 writes one passages folder and index, equal to the
    one-process build's (same rows, vectors equal to float precision, same search)."""
    import faiss
    from datasets import load_from_disk

    whole, _ = indexes
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
        "-m", "turbo", *build_args(tmp_path, IVF),
    ]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-6000:]
    assert result.stderr.count("indexed 12 passages") == 1  # rank 0 alone writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", "passages"]  # no scratch left
    ours, reference = load_from_disk(str(tmp_path / "passages")), load_from_disk(str(whole / "passages"))
    assert ours["id"] == reference["id"] and ours["text"] == reference["text"]
    vectors = np.array(ours["embeddings"], dtype=np.float32)
    assert np.allclose(vectors, np.array(reference["embeddings"]), atol=1e-5)
    ids = faiss.read_index(str(tmp_path / "index.faiss")).search(vectors, 3)[1]
    assert np.array_equal(ids, faiss.read_index(str(whole / "index.faiss")).search(vectors, 3)[1])
