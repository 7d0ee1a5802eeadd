"""build_index through the real CLI: the passages folder and faiss index it writes (vectors equal the
encoder's own forward), their round trip with transformers' RagRetriever, and bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ..helpers import CONFIGS, DATASETS, run_turbo

BUILD = CONFIGS / "build_index" / "tiny.json"
INFERENCE = CONFIGS / "inference" / "rag" / "base.json"
PASSAGES = DATASETS / "rag" / "passages.jsonl"


def build(folder: Path, *extra: str, expect: int = 0):
    return run_turbo(
        "build_index", "--settings_path", BUILD,
        "--set", f"index_settings.index_path={folder / 'index.faiss'}",
        "--set", f"index_settings.passages_path={folder / 'passages'}",
        *extra, expect=expect,
    )  # fmt: skip


def reference_vectors(model_path: Path, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised last hidden states of a plain transformers forward."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path, dtype=torch.float32).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


@pytest.fixture(scope="module")
def built(rag_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    build(folder)
    return folder


def test_build_index_writes_the_passages_and_a_flat_index(rag_models, built: Path) -> None:
    import faiss
    from datasets import load_from_disk

    rows = [json.loads(line) for line in PASSAGES.read_text().splitlines()]
    passages = load_from_disk(str(built / "passages"))
    assert set(passages.column_names) == {"id", "title", "text", "embeddings"}
    assert passages["id"] == [row["id"] for row in rows]
    assert passages["text"] == [row["text"] for row in rows]
    texts = [f"{row['title']}\n{row['text']}" for row in rows]
    expected = reference_vectors(rag_models / "bert_tiny", texts)
    assert np.allclose(np.array(passages["embeddings"]), expected, atol=1e-5)
    index = faiss.read_index(str(built / "index.faiss"))
    assert (index.ntotal, index.d, index.metric_type) == (12, 64, faiss.METRIC_INNER_PRODUCT)
    scores, ids = index.search(expected, 1)
    assert ids[:, 0].tolist() == list(range(12))  # every passage finds itself
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
    encoding = json.loads((built / "passages" / "turbo_encoding.json").read_text())
    assert encoding | {"encoder": None} == {
        "encoder": None, "pooling": "mean", "normalize": True, "prefix": "", "max_length": 64,
        "metric": "inner_product", "index_factory": "Flat", "dimension": 64, "count": 12,
    }  # fmt: skip


def test_index_types_that_need_training(rag_models, tmp_path: Path) -> None:
    import faiss

    build(tmp_path, "--set", "index_factory=IVF2,Flat")
    index = faiss.read_index(str(tmp_path / "index.faiss"))
    assert index.is_trained and index.ntotal == 12 and "IVF" in type(index).__name__


def test_our_index_loads_in_transformers_rag_retriever(rag_models, built: Path) -> None:
    from transformers import BertConfig, LlamaConfig, RagConfig
    from transformers.models.rag.retrieval_rag import CustomHFIndex, RagRetriever

    from turbo.modeling.rag.retriever import load_retriever

    ours = load_retriever(built / "index.faiss", built / "passages", "index_settings", 64, 3)
    queries = reference_vectors(rag_models / "bert_tiny", ["What is the capital of Vantu?", "bread flour"])
    index = CustomHFIndex.load_from_disk(64, str(built / "passages"), str(built / "index.faiss"))
    config = RagConfig(
        question_encoder=BertConfig(hidden_size=64).to_dict(),
        generator=LlamaConfig().to_dict(),
        index_name="custom",
        n_docs=3,
    )
    retriever = RagRetriever(config, question_encoder_tokenizer=None, generator_tokenizer=None, index=index)
    embeddings, ids, docs = retriever.retrieve(queries, n_docs=3)
    assert ids.tolist() == ours.search(queries, 3).tolist()
    assert np.allclose(embeddings, ours.embeddings(ids))
    assert docs[0]["title"][0] == "Vantu" and docs[1]["title"][0] == "Bread"
    assert [[p.title for p in row] for row in ours.documents(ids)] == [d["title"] for d in docs]


def test_an_index_written_the_transformers_way_loads_in_ours(tmp_path: Path) -> None:
    """As transformers' examples/research_projects/rag/use_own_knowledge_dataset.py writes one:
    save_to_disk without an id column, then an HNSW index saved with get_index(...).save."""
    import faiss
    from datasets import Dataset

    from turbo.modeling.rag.retriever import load_retriever

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    dataset = Dataset.from_dict(
        {
            "title": [f"t{i}" for i in range(50)],
            "text": [f"text {i}" for i in range(50)],
            "embeddings": vectors,
        }
    )
    dataset.save_to_disk(str(tmp_path / "passages"))
    dataset.add_faiss_index(
        "embeddings", custom_index=faiss.IndexHNSWFlat(16, 128, faiss.METRIC_INNER_PRODUCT)
    )
    dataset.get_index("embeddings").save(str(tmp_path / "index.faiss"))
    queries = rng.normal(size=(4, 16)).astype(np.float32)
    _, expected = dataset.search_batch("embeddings", queries, k=5)
    ours = load_retriever(tmp_path / "index.faiss", tmp_path / "passages", "index_settings", 16, 5)
    ids = ours.search(queries, 5)
    assert ids.tolist() == np.asarray(expected).tolist()
    assert [p.id for p in ours.documents(ids)[0]] == [str(i) for i in ids[0]]  # row numbers as ids
    assert np.allclose(ours.embeddings(ids), vectors[ids])


def inference(tmp_path: Path, *settings: str, expect: int = 2) -> str:
    result = run_turbo(
        "inference_rag", "--inference_settings_path", INFERENCE, "--set", f"save_path={tmp_path / 'out'}",
        *[item for setting in settings for item in ("--set", setting)], expect=expect,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    return result.stderr


def write_foreign(folder: Path, width: int, embeddings: bool = True) -> Path:
    import faiss
    from datasets import Dataset

    vectors = np.random.default_rng(1).normal(size=(5, width)).astype(np.float32)
    columns = {"title": ["a"] * 5, "text": ["b"] * 5} | ({"embeddings": vectors} if embeddings else {})
    Dataset.from_dict(columns).save_to_disk(str(folder / "passages"))
    index = faiss.IndexFlatIP(width)
    index.add(vectors)
    faiss.write_index(index, str(folder / "index.faiss"))
    return folder


ENTRY = "inference_settings.0.model_settings"


def test_index_of_another_width_than_the_encoder(rag_models, tmp_path: Path) -> None:
    folder = write_foreign(tmp_path, width=32)
    stderr = inference(
        tmp_path, f"{ENTRY}.index_settings.index_path={folder / 'index.faiss'}",
        f"{ENTRY}.index_settings.passages_path={folder / 'passages'}",
    )  # fmt: skip
    assert "index_settings.index_path" in stderr and "width 32" in stderr and "64" in stderr


def test_retrieval_vector_size_that_differs_from_the_encoder(rag_models, tmp_path: Path) -> None:
    stderr = inference(tmp_path, f"{ENTRY}.retrieval_settings.retrieval_vector_size=768")
    assert "retrieval_settings.retrieval_vector_size: 768, but the question encoder" in stderr
    assert "gives vectors of width 64" in stderr


def test_passages_without_embeddings(rag_models, tmp_path: Path) -> None:
    folder = write_foreign(tmp_path, width=64, embeddings=False)
    stderr = inference(
        tmp_path, f"{ENTRY}.index_settings.index_path={folder / 'index.faiss'}",
        f"{ENTRY}.index_settings.passages_path={folder / 'passages'}",
    )  # fmt: skip
    assert "index_settings.passages_path" in stderr and "no embeddings column" in stderr


def test_faiss_file_that_does_not_load(rag_models, tmp_path: Path) -> None:
    broken = tmp_path / "broken.faiss"
    broken.write_bytes(b"not a faiss index at all")
    stderr = inference(tmp_path, f"{ENTRY}.index_settings.index_path={broken}")
    assert f"index_settings.index_path: {broken} is not a faiss index" in stderr


def test_n_docs_larger_than_the_corpus(rag_models, tmp_path: Path) -> None:
    stderr = inference(tmp_path, f"{ENTRY}.retrieval_settings.n_docs=13")
    assert "n_docs is 13 but the index holds only 12 passages" in stderr


def test_empty_and_bad_passages(rag_models, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = build(tmp_path / "a", "--set", f"passages_source={empty}", expect=2)
    assert f"passages_source: {empty} holds no passages" in result.stderr
    assert not (tmp_path / "a" / "passages").exists() and not (tmp_path / "a" / "index.faiss").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "title": "x", "text": "fine"}\n{"id": 2, "title": "y"}\n')
    result = build(tmp_path / "b", "--set", f"passages_source={bad}", expect=2)
    assert f"{bad}:2: text" in result.stderr
    result = build(tmp_path / "c", "--set", "index_factory=NotAnIndex", expect=2)
    assert "index_factory: 'NotAnIndex' is not a faiss index_factory string" in result.stderr
