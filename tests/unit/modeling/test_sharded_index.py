"""Sharded faiss indexes without an encoder: write_index over random vectors in shards and unsharded
gives the same ids and scores once read back (Flat and IVF), and a manifest that is broken, names a
missing shard, shards of other widths or counts is refused with a message naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from turbo.errors import DataError, ModelError
from turbo.modeling.rag.retriever import index_dimension, read_faiss_index


def vectors(count: int = 200, width: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, width)).astype(np.float32)


def write(folder: Path, factory: str, shards: int, data: np.ndarray) -> Path:
    from datasets import Dataset

    from turbo.pipelines.preprocessing.build_index import empty_index, write_index

    passages = Dataset.from_dict({"embeddings": list(data)})
    settings = SimpleNamespace(index_factory=factory, index_shards=shards, seed=1, train_size=1000)
    path = folder / "index.faiss"
    for tmp, final in write_index(empty_index(factory, data.shape[1]), passages, settings, path):
        tmp.replace(final)
    return path


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat"])
def test_shards_search_as_the_one_index(factory: str, tmp_path: Path) -> None:
    data = vectors()
    whole = read_faiss_index(write(tmp_path / "one", factory, 1, data), "x")
    path = write(tmp_path / "many", factory, 7, data)  # 200 rows: six shards of 29, one of 26
    manifest = json.loads(path.read_text())
    assert [s["count"] for s in manifest["shards"]] == [29] * 6 + [26]
    sharded = read_faiss_index(path, "x")
    assert (sharded.ntotal, sharded.d, index_dimension(path)) == (200, 16, 16)
    queries = vectors(20, seed=3)
    scores, ids = sharded.search(queries, 10)
    expected_scores, expected_ids = whole.search(queries, 10)
    assert np.array_equal(ids, expected_ids) and np.array_equal(scores, expected_scores)
    assert ids.max() > 29  # the ids of later shards are shifted by their offsets


def test_broken_manifests_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "Flat", 2, vectors(10))
    manifest = json.loads(path.read_text())

    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(DataError, match="not a sharded index manifest"):
        index_dimension(other)
    with pytest.raises(ModelError, match="x: .*not a sharded index manifest"):
        read_faiss_index(other, "x")

    wrong_count = tmp_path / "count.faiss"
    wrong_count.write_text(json.dumps(manifest | {"shards": [manifest["shards"][0] | {"count": 9}]}))
    with pytest.raises(ModelError, match=r"index.shard00000.faiss holds 5 vectors, but .* says 9"):
        read_faiss_index(wrong_count, "x")

    import faiss

    narrow = faiss.IndexFlatIP(8)
    faiss.write_index(narrow, str(tmp_path / "narrow.faiss"))
    mixed = tmp_path / "mixed.faiss"
    mixed.write_text(json.dumps(manifest | {"shards": [manifest["shards"][0], {"path": "narrow.faiss"}]}))
    with pytest.raises(DataError, match="shards hold vectors of different widths"):
        index_dimension(mixed)
