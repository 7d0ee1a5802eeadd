"""build_index: passages (JSONL or a datasets folder) -> embeddings -> a `datasets` passages folder
(title, text, embeddings, id) and a faiss index file: the layout transformers' RagRetriever reads.

Passages stream through in shards (SHARD_SIZE rows encoded, written to disk, dropped from memory);
the shards are joined memory-mapped, and the index is trained on a seeded sample (when its type
needs training) and filled chunk by chunk. Outputs appear only once complete.

With index_shards > 1 the index is written as that many faiss files of consecutive passages, each a copy
of the one trained (empty) index filled with its own range, written and dropped in turn; index_path is
then a JSON manifest naming them (modeling/rag/retriever.py reads both layouts).

Under torchrun (WORLD_SIZE > 1) every rank reads the passages and encodes its part of each chunk; rank 0
joins the parts in order and writes the one passages folder and index (a gloo process group only
synchronises; the vectors travel through the scratch folder beside passages_path).
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
from turbo.modeling.rag.retriever import ENCODING_FILE, SHARDS_FORMAT
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


def encode_shards(
    settings: BuildIndexSettings, model: Any, tokenizer: Any, folder: Path, rank: int = 0, world: int = 1
) -> list[Path]:
    """Encode the passages shard by shard; each shard is a saved datasets folder under `folder`. With
    world > 1, this rank encodes only its consecutive part of each chunk (shard_<chunk>_<rank>), so that
    the folders of all ranks sorted by name are the passages in order."""
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
    progress = tqdm(desc="encoding passages", unit=" passages", disable=rank > 0)
    for number, whole in enumerate(iter_passages(settings.passages_source, chunk=SHARD_SIZE)):
        share = -(-len(whole) // world)
        chunk = whole[rank * share : (rank + 1) * share]
        if not chunk:
            continue
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
        shard = folder / f"shard_{number:05d}_{rank:03d}"
        Dataset.from_dict({**columns, "embeddings": list(vectors)}, features=features).save_to_disk(
            str(shard)
        )
        shards.append(shard)
    progress.close()
    return shards


def train_index(index: Any, passages: Any, settings: BuildIndexSettings) -> None:
    """Train the index on a seeded sample when its type needs it."""
    import numpy as np

    if index.is_trained:
        return
    vectors = passages.with_format("numpy", columns=["embeddings"], dtype="float32")
    count = len(passages)
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


def add_vectors(index: Any, passages: Any, start: int, stop: int) -> Any:
    """Add the vectors of passages start ... stop - 1, ADD_CHUNK at a time."""
    import numpy as np

    vectors = passages.with_format("numpy", columns=["embeddings"], dtype="float32")
    for first in tqdm(range(start, stop, ADD_CHUNK), desc="indexing", disable=stop - start <= ADD_CHUNK):
        last = min(first + ADD_CHUNK, stop)
        index.add(np.ascontiguousarray(vectors[first:last]["embeddings"], dtype=np.float32))
    return index


def shard_name(index_path: Path, number: int) -> str:
    return f"{index_path.stem}.shard{number:05d}{index_path.suffix}"


def write_index(
    index: Any, passages: Any, settings: BuildIndexSettings, index_path: Path
) -> list[tuple[Path, Path]]:
    """Train and fill the index, written to temporary files beside index_path: one faiss file, or
    index_shards files of consecutive passages and their manifest (last). (temporary, final) pairs."""
    import faiss

    index_path.parent.mkdir(parents=True, exist_ok=True)
    train_index(index, passages, settings)
    count = len(passages)
    shards = min(settings.index_shards, count)
    written: list[tuple[Path, Path]] = []
    entries = []
    size = -(-count // shards)
    try:
        if shards == 1:
            written.append((index_path.with_name(f".{index_path.name}.tmp"), index_path))
            faiss.write_index(add_vectors(index, passages, 0, count), str(written[-1][0]))
            return written
        for number, start in enumerate(range(0, count, size)):
            stop = min(start + size, count)
            shard = add_vectors(faiss.clone_index(index), passages, start, stop)
            final = index_path.with_name(shard_name(index_path, number))
            written.append((final.with_name(f".{final.name}.tmp"), final))
            faiss.write_index(shard, str(written[-1][0]))
            del shard  # one shard in memory at a time
            entries.append({"path": final.name, "offset": start, "count": stop - start})
        written.append((index_path.with_name(f".{index_path.name}.tmp"), index_path))
        write_json(
            written[-1][0],
            {
                "format": SHARDS_FORMAT,
                "index_factory": settings.index_factory,
                "metric": "inner_product",
                "dimension": int(index.d),
                "count": count,
                "shards": entries,
            },
        )
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    return written


def remove_stale_shards(index_path: Path, kept: set[Path]) -> None:
    """Shard files of an earlier build at this index_path that the new one does not name."""
    for old in index_path.parent.glob(f"{index_path.stem}.shard[0-9]*{index_path.suffix}"):
        if old not in kept:
            old.unlink(missing_ok=True)


def ranks() -> tuple[int, int]:
    """(rank, world size) under torchrun, with a gloo process group started; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world


def shared_scratch(parent: Path, rank: int, world: int) -> Path:
    """A fresh scratch folder under `parent`, made by rank 0 and named to every rank."""
    folder = [str(tempfile.mkdtemp(prefix=".build_index.", dir=parent))] if rank == 0 else [""]
    if world > 1:
        import torch.distributed as dist

        dist.broadcast_object_list(folder, src=0)
    return Path(folder[0])


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def run(settings: BuildIndexSettings) -> None:
    model, tokenizer = load_encoder(settings.encoder_settings)
    build(settings, model, tokenizer)


def build(settings: BuildIndexSettings, model: Any, tokenizer: Any) -> int:
    """Everything after the encoder loads; returns the number of passages indexed (0 on ranks > 0)."""
    from datasets import concatenate_datasets, disable_progress_bars, load_from_disk

    disable_progress_bars()  # the shards' save/load bars; encoding has its own
    rank, world = ranks()
    width = int(model.config.hidden_size)
    index = empty_index(settings.index_factory, width)
    passages_path = Path(settings.index_settings.passages_path)
    index_path = Path(settings.index_settings.index_path)
    passages_path.parent.mkdir(parents=True, exist_ok=True)
    scratch = shared_scratch(passages_path.parent, rank, world)
    try:
        encode_shards(settings, model, tokenizer, scratch, rank, world)
        barrier(world)  # every rank's vectors are on disk
        if rank > 0:
            barrier(world)  # rank 0 has written the index
            return 0
        shards = sorted(scratch.glob("shard_*"))
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
            written = write_index(index, passages, settings, index_path)
        for tmp, final in written:  # the manifest (or the one index file) last
            os.replace(tmp, final)
        remove_stale_shards(index_path, {final for _, final in written})
    finally:
        if rank == 0:
            shutil.rmtree(scratch, ignore_errors=True)
    barrier(world)
    logger.info(
        "indexed %d passages (%s, width %d, %d index file%s%s): %s and %s", len(passages),
        settings.index_factory, width, len(written) - (len(written) > 1), "s" if len(written) > 2 else "",
        f", {world} ranks encoding" if world > 1 else "", passages_path, index_path,
    )  # fmt: skip
    return len(passages)
