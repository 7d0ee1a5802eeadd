"""build_index: passages (JSONL or a datasets folder) -> embeddings -> a `datasets` passages folder
(title, text, embeddings, id) and a faiss index file: the layout transformers' RagRetriever reads.

Passages stream through in shards (SHARD_SIZE rows encoded, written to disk, dropped from memory);
the shards are joined memory-mapped, and the index is trained on a seeded sample (when its type
needs training) and filled chunk by chunk. Outputs appear only once complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from turbo.data.rag import iter_passages
from turbo.errors import DataError, SettingsError
from turbo.io import atomic_dir, write_json
from turbo.modeling.rag.encoder import encode_texts, load_encoder
from turbo.modeling.rag.retriever import ENCODING_FILE
from turbo.settings.pipelines.build_index import BuildIndexSettings

logger = logging.getLogger("turbo")

SHARD_SIZE = 10_000  # passages encoded and written per shard
ADD_CHUNK = 10_000  # vectors added to the index per call


def passage_text(row: dict[str, str], prefix: str) -> str:
    """What the encoder reads for a passage: prefix, title on its own line, text."""
    return f"{prefix}{row['title']}\n{row['text']}" if row["title"] else f"{prefix}{row['text']}"


def empty_index(factory: str, width: int) -> Any:
    import faiss

    try:
        return faiss.index_factory(width, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise SettingsError(
            f"index_factory: {factory!r} is not a faiss index_factory string for vectors of width {width} "
            f"({reason}); e.g. 'Flat', 'HNSW32', 'IVF256,Flat', 'IVF4096,PQ64'"
        ) from None


def encode_shards(settings: BuildIndexSettings, model: Any, tokenizer: Any, folder: Path) -> list[Path]:
    """Encode the passages shard by shard; each shard is a saved datasets folder under `folder`."""
    from datasets import Dataset, Features, List, Value

    features = Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "text": Value("string"),
            "embeddings": List(Value("float32")),
        }
    )
    shards: list[Path] = []
    progress = tqdm(desc="encoding passages", unit=" passages")
    for chunk in iter_passages(settings.passages_source, chunk=SHARD_SIZE):
        vectors = encode_texts(
            model,
            tokenizer,
            [passage_text(row, settings.prefix) for row in chunk],
            pooling=settings.pooling,
            normalize=settings.normalize,
            max_length=settings.max_length,
            batch_size=settings.batch_size,
            on_batch=progress.update,
        )
        columns = {name: [row[name] for row in chunk] for name in ("id", "title", "text")}
        shard = folder / f"shard_{len(shards):05d}"
        Dataset.from_dict({**columns, "embeddings": list(vectors)}, features=features).save_to_disk(
            str(shard)
        )
        shards.append(shard)
    progress.close()
    return shards


def fill_index(index: Any, passages: Any, settings: BuildIndexSettings) -> Any:
    """Train the index on a seeded sample when its type needs it, then add every vector in chunks."""
    import numpy as np

    vectors = passages.with_format("numpy", columns=["embeddings"], dtype="float32")
    count = len(passages)
    if not index.is_trained:
        rng = np.random.default_rng(settings.seed)
        sample = np.sort(rng.choice(count, size=min(count, settings.train_size), replace=False))
        training = np.ascontiguousarray(vectors[sample.tolist()]["embeddings"], dtype=np.float32)
        logger.info("training the %s index on %d vectors", settings.index_factory, len(training))
        try:
            index.train(training)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            raise DataError(
                f"index_factory: {settings.index_factory!r} cannot be trained on {len(training)} passages "
                f"({reason}); use fewer clusters or 'Flat' / 'HNSW32' for a small corpus"
            ) from None
    for start in tqdm(range(0, count, ADD_CHUNK), desc="indexing", disable=count <= ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_CHUNK]["embeddings"], dtype=np.float32))
    return index


def run(settings: BuildIndexSettings) -> None:
    model, tokenizer = load_encoder(settings.encoder_settings)
    build(settings, model, tokenizer)


def build(settings: BuildIndexSettings, model: Any, tokenizer: Any) -> int:
    """Everything after the encoder loads; returns the number of passages indexed."""
    import faiss
    from datasets import concatenate_datasets, disable_progress_bars, load_from_disk

    disable_progress_bars()  # the shards' save/load bars; encoding has its own
    width = int(model.config.hidden_size)
    index = empty_index(settings.index_factory, width)
    passages_path = Path(settings.index_settings.passages_path)
    index_path = Path(settings.index_settings.index_path)
    passages_path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build_index.", dir=passages_path.parent))
    try:
        shards = encode_shards(settings, model, tokenizer, scratch)
        if not shards:
            raise DataError(f"passages_source: {settings.passages_source} holds no passages")
        passages = concatenate_datasets([load_from_disk(str(shard)) for shard in shards])
        with atomic_dir(passages_path) as folder:
            passages.save_to_disk(str(folder))
            write_json(
                folder / ENCODING_FILE,
                {
                    "encoder": str(settings.encoder_settings.model_path),
                    "pooling": settings.pooling,
                    "normalize": settings.normalize,
                    "prefix": settings.prefix,
                    "max_length": settings.max_length,
                    "metric": "inner_product",
                    "index_factory": settings.index_factory,
                    "dimension": width,
                    "count": len(passages),
                },
            )
            fill_index(index, passages, settings)
            index_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_path.with_name(f".{index_path.name}.tmp")
            faiss.write_index(index, str(tmp))
        os.replace(tmp, index_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info(
        "indexed %d passages (%s, width %d): %s and %s", len(passages), settings.index_factory, width,
        passages_path, index_path,
    )  # fmt: skip
    return len(passages)
