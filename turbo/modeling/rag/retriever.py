"""Retrieval over a faiss index and the `datasets` passages folder beside it (RagRetriever's layout).

The passages folder holds the columns title, text and embeddings (an id column is optional); row i
of the folder is vector i of the index. build_index also records how the passages were encoded in
ENCODING_FILE inside the folder, so questions are encoded the same way.

An index may also be sharded (build_index with index_shards > 1): index_path is then a small JSON
manifest naming shard files beside it, each a faiss index of consecutive passages (shard k holds rows
offset_k ... offset_k + count_k - 1). They are searched as one (faiss IndexShards, ids shifted by each
shard's offset), which gives the ids and scores of the unsharded index for Flat and IVF types (the shards
share one trained quantizer). Shards are memory-mapped where faiss can (IO_FLAG_MMAP).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turbo.errors import DataError, ModelError

ENCODING_FILE = "turbo_encoding.json"
SHARDS_FORMAT = "turbo-faiss-shards"  # the "format" of a sharded index's manifest
REQUIRED_COLUMNS = ("title", "text", "embeddings")


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str


def read_encoding(passages_path: Path) -> dict[str, Any]:
    """How build_index encoded the passages ({} for a folder made by another tool)."""
    path = Path(passages_path) / ENCODING_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a sharded index (build_index, index_shards > 1), or None when `path` is not one
    (a faiss index file). DataError for a manifest that cannot be read."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            if file.read(1) != b"{":
                return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DataError(f"{path}: not a faiss index, nor a sharded index's JSON manifest: {exc}") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if (
        manifest.get("format") != SHARDS_FORMAT
        or not isinstance(shards, list)
        or not shards
        or not all(isinstance(shard, dict) and isinstance(shard.get("path"), str) for shard in shards)
    ):
        raise DataError(
            f"{path}: not a sharded index manifest (expected format {SHARDS_FORMAT!r} and a list of shards "
            "with a path each, as build_index writes)"
        )
    return manifest


def shard_paths(path: Path, manifest: dict[str, Any]) -> list[Path]:
    """The shard files a manifest names, relative to the manifest's folder."""
    return [Path(path).parent / shard["path"] for shard in manifest["shards"]]


def index_dimension(path: Path) -> int:
    """The vector width of a faiss index file, or of every shard a sharded index's manifest names, read
    from the headers (no faiss import, no index load). DataError when a file is no float faiss index,
    a shard is missing, or the shards differ in width."""
    manifest = read_manifest(path)
    if manifest is None:
        return file_dimension(path)
    widths = {}
    for shard in shard_paths(path, manifest):
        if not shard.is_file():
            raise DataError(f"{path}: its shard {shard} is missing")
        widths[shard] = file_dimension(shard)
    if len(set(widths.values())) > 1:
        raise DataError(
            f"{path}: its shards hold vectors of different widths ("
            + ", ".join(f"{shard.name}: {width}" for shard, width in widths.items())
            + "); rebuild the index (build_index)"
        )
    return next(iter(widths.values()))


def file_dimension(path: Path) -> int:
    """The vector width of a faiss index file, read from its header (no faiss import, no index load).

    faiss writes a float index as a four-letter type code ('IxFI', 'IHNf', 'IwFl', ...), then its
    header: the width (int32), the number of vectors (int64), ... (faiss/impl/index_write.cpp,
    write_index_header). Binary indexes (codes 'IB..') hold bits, not float vectors. DataError when the
    file is no float faiss index."""
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    code = head[:4]
    if len(head) < 16 or not (code.isascii() and code.isalnum() and code.startswith(b"I")):
        raise DataError(f"{path} is not a faiss index file (it does not start with a faiss type code)")
    if code.startswith(b"IB"):
        raise DataError(f"{path} is a binary faiss index; retrieval needs a float index (build_index)")
    width = int.from_bytes(head[4:8], "little", signed=True)
    count = int.from_bytes(head[8:16], "little", signed=True)
    if width <= 0 or count < 0:
        raise DataError(f"{path} is not a faiss index file (its header gives width {width}, {count} vectors)")
    return width


def _read_one(path: Path, where: str, mmap: bool = False) -> Any:
    import faiss

    if not path.is_file():
        raise ModelError(f"{where}: {path} is not a file")
    if mmap:  # on disk, paged in as searched; not every index type can be read this way
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            pass
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where}: {path} is not a faiss index faiss can read ({reason})") from exc


def read_sharded_index(path: Path, manifest: dict[str, Any], where: str) -> Any:
    """One faiss IndexShards over the shards of a manifest, ids numbered across shards in their order."""
    import faiss

    shards = [_read_one(shard, where, mmap=True) for shard in shard_paths(path, manifest)]
    widths = {int(shard.d) for shard in shards}
    if len(widths) > 1:
        raise ModelError(f"{where}: the shards of {path} hold vectors of different widths {sorted(widths)}")
    for shard, entry in zip(shards, manifest["shards"], strict=True):
        expected = entry.get("count")
        if expected is not None and int(shard.ntotal) != int(expected):
            raise ModelError(
                f"{where}: {Path(path).parent / entry['path']} holds {shard.ntotal} vectors, but {path} "
                f"says {expected}; rebuild the index (build_index)"
            )
        if hasattr(shard, "hnsw"):
            shard.hnsw.efSearch = max(shard.hnsw.efSearch, 64)
    index = faiss.IndexShards(widths.pop(), False, True)  # not threaded; successive ids
    for shard in shards:
        index.add_shard(shard)  # faiss keeps a reference to each shard (referenced_objects)
    return index


def read_faiss_index(path: Path, where: str) -> Any:
    """A faiss index file, or the shards a manifest names searched as one index (read_sharded_index)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{where}: {path} is not a file")
    try:
        manifest = read_manifest(path)
    except DataError as exc:
        raise ModelError(f"{where}: {exc}") from None
    if manifest is not None:
        return read_sharded_index(path, manifest, where)
    return _read_one(path, where)


def load_passages(path: Path, where: str) -> Any:
    """The passages folder as a datasets.Dataset, checked for the RagRetriever columns."""
    from datasets import load_from_disk

    path = Path(path)
    try:
        passages = load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise DataError(f"{where}: {path} is not a folder saved by datasets' save_to_disk: {exc}") from exc
    if not hasattr(passages, "column_names") or isinstance(passages.column_names, dict):
        raise DataError(f"{where}: {path} holds several splits; save one Dataset (save_to_disk)")
    missing = [column for column in REQUIRED_COLUMNS if column not in passages.column_names]
    if missing:
        hint = " (run build_index to compute them)" if "embeddings" in missing else ""
        raise DataError(
            f"{where}: {path} has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}{hint}; "
            f"it has {', '.join(passages.column_names)}"
        )
    if len(passages) == 0:
        raise DataError(f"{where}: {path} holds no passages")
    return passages


class Retriever:
    """Nearest passages by inner product (or the index's own metric), searched in one faiss call."""

    def __init__(self, index: Any, passages: Any) -> None:
        self.index = index
        self.passages = passages
        self._vectors = passages.with_format("numpy", columns=["embeddings"], dtype="float32")
        self._has_ids = "id" in passages.column_names
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(index.hnsw.efSearch, 64)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def search(self, queries: Any, n_docs: int) -> Any:
        """(batch, n_docs) row numbers of the nearest passages. A slot the index cannot fill (-1, as
        an IVF index with a small nprobe may return) repeats the first hit."""
        import numpy as np

        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), n_docs)
        missing = ids < 0
        if missing.any():
            ids = np.where(missing, ids[:, :1], ids)
        return ids.astype(np.int64)

    def embeddings(self, ids: Any) -> Any:
        """(batch, n_docs, width) stored passage vectors."""
        import numpy as np

        flat = self._vectors[ids.reshape(-1).tolist()]["embeddings"]
        return np.asarray(flat, dtype=np.float32).reshape(*ids.shape, -1)

    def documents(self, ids: Any) -> list[list[Passage]]:
        """The passages of each row of ids; a passage's id is its `id` column, else its row number."""
        rows = self.passages.select_columns(["id", "title", "text"] if self._has_ids else ["title", "text"])
        out = []
        for row_ids in ids.tolist():
            picked = rows[row_ids]
            names = [str(name) for name in picked["id"]] if self._has_ids else [str(i) for i in row_ids]
            out.append(
                [
                    Passage(name, title or "", text or "")
                    for name, title, text in zip(names, picked["title"], picked["text"], strict=True)
                ]
            )
        return out


def load_retriever(index_path: Path, passages_path: Path, where: str, width: int, n_docs: int) -> Retriever:
    """Passages and index checked against each other, the question width and n_docs."""
    passages = load_passages(passages_path, f"{where}.passages_path")
    index = read_faiss_index(index_path, f"{where}.index_path")
    if index.d != width:
        raise ModelError(
            f"{where}.index_path: {index_path} holds vectors of width {index.d} but the question "
            f"vectors are {width} wide (retrieval_vector_size and the question encoder); rebuild the "
            "index with this encoder or use the encoder it was built with"
        )
    stored = len(passages[0]["embeddings"])
    if stored != width:
        raise DataError(
            f"{where}.passages_path: {passages_path} stores embeddings of width {stored}, not {width}"
        )
    if index.ntotal != len(passages):
        raise DataError(
            f"{where}: the index {index_path} holds {index.ntotal} vectors but {passages_path} "
            f"{len(passages)} passages; they must be written together (build_index)"
        )
    if n_docs > index.ntotal:
        raise DataError(
            f"retrieval_settings.n_docs is {n_docs} but the index holds only {index.ntotal} passages"
        )
    return Retriever(index, passages)


def query_encoding(pooling: str | None, normalize: bool | None, recorded: dict[str, Any]) -> tuple[str, bool]:
    """How questions are encoded: as retrieval_settings says, else as build_index encoded the passages."""
    return (
        pooling or recorded.get("pooling") or "mean",
        normalize if normalize is not None else bool(recorded.get("normalize", False)),
    )
