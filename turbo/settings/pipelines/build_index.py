from __future__ import annotations

from pydantic import Field

from turbo.settings.base import Seed, StrictModel
from turbo.settings.paths import InputPath
from turbo.settings.rag import EncoderModelSettings, IndexSettings, Pooling


class BuildIndexSettings(StrictModel):
    """Passages -> embeddings -> a `datasets` passages folder and a faiss index (the RagRetriever layout)."""

    passages_source: InputPath = Field(
        description="JSONL of passages (id, title, text) or a datasets folder with title and text columns."
    )
    encoder_settings: EncoderModelSettings
    index_settings: IndexSettings = Field(description="Where to write the index file and passages folder.")
    index_factory: str = Field(
        "Flat", min_length=1, description="A faiss index_factory string: Flat, HNSW32, IVF4096,PQ64, ..."
    )
    pooling: Pooling = Field("mean", description="Mean of the token vectors, or the first ([CLS]) one.")
    normalize: bool = Field(False, description="L2-normalise the vectors (inner product = cosine).")
    batch_size: int = Field(64, gt=0, description="Passages per encoder forward.")
    max_length: int = Field(512, gt=0, description="Passage tokens kept for the encoder.")
    prefix: str = Field("", description='Put before every passage for the encoder, e.g. "passage: " (e5).')
    train_size: int = Field(
        100_000, gt=0, description="Vectors (a seeded sample) that train an index type which needs training."
    )
    index_shards: int = Field(
        1,
        ge=1,
        description="Split the index into this many faiss files of consecutive passages (for an index "
        "bigger than memory: each is built, written and dropped in turn, and read memory-mapped). "
        "index_path is then a small JSON manifest naming the shard files written beside it "
        "(<stem>.shard00000<suffix>, ...); inference_rag and train_rag search the shards as one index. "
        "1: one faiss file at index_path (the layout transformers' RagRetriever also reads).",
    )
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")
