"""preprocess_multimodal_dataset: encode every media file of a folder once into one safetensors file.

Threads decode the next batches while the encoder runs on the current one. A file that cannot be
read is reported (log and the .json config beside the output), never fatal.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from turbo.errors import DataError
from turbo.io import write_json
from turbo.media import EXTENSIONS, MediaItem, find_media
from turbo.settings.pipelines.preprocessing import PreprocessMultimodalSettings

logger = logging.getLogger("turbo")

PREFETCH_BATCHES = 2


def _read(reader: Any, item: MediaItem) -> Any:
    try:
        return reader.read(item)
    except Exception as exc:  # any file that cannot be decoded is reported, not fatal
        return exc


def decoded_batches(
    items: list[MediaItem], reader: Any, batch_size: int, workers: int
) -> Iterator[list[tuple[MediaItem, Any]]]:
    """Batches of (item, tensor or the DataError it raised), decoded ahead by `workers` threads."""
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if workers == 0:
        for batch in batches:
            yield [(item, _read(reader, item)) for item in batch]
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[list[tuple[MediaItem, Future]]] = deque()
        for batch in batches:
            pending.append([(item, pool.submit(_read, reader, item)) for item in batch])
            if len(pending) > PREFETCH_BATCHES:
                yield [(item, future.result()) for item, future in pending.popleft()]
        while pending:
            yield [(item, future.result()) for item, future in pending.popleft()]


def run(settings: PreprocessMultimodalSettings) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from turbo.modeling.multimodal.encoders import build_encoder, encoder_shape
    from turbo.modeling.multimodal.readers import build_reader

    folder = Path(settings.dataset_path)
    if not folder.is_dir():
        raise DataError(f"dataset_path: {folder} is not a folder of media")
    n_tokens, width = encoder_shape(settings.encoder_settings)
    items = find_media(folder, tuple(settings.extensions or EXTENSIONS[settings.modality]))
    if not items:
        raise DataError(f"dataset_path: no {settings.modality} files under {folder}")
    reader = build_reader(settings.reader_settings)
    encoder = build_encoder(settings.encoder_settings).eval()
    features: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    with tqdm(total=len(items), desc=f"encoding {settings.modality}", unit="file") as progress:
        for batch in decoded_batches(items, reader, settings.batch_size, settings.num_workers):
            good = [(item, tensor) for item, tensor in batch if not isinstance(tensor, Exception)]
            for item, error in batch:
                if isinstance(error, Exception):
                    skipped[item.key] = str(error).removeprefix(f"{item.where}: ")
                    logger.warning("skipped %s: %s", item.key, skipped[item.key])
            if good:
                with torch.inference_mode():
                    encoded = encoder(torch.stack([tensor for _, tensor in good]))
                for (item, _), row in zip(good, encoded, strict=True):
                    features[item.key] = row.detach().cpu().contiguous().clone()
            progress.update(len(batch))
    output = settings.output_file
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    save_file(features, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, output)
    config = {
        "modality": settings.modality,
        "modality_encoder_type": settings.encoder_settings.modality_encoder_type,
        "encoder_path": str(settings.encoder_settings.encoder_path),
        "reader_type": settings.reader_settings.reader_type,
        "dataset_path": str(folder),
        "tokens_per_item": n_tokens,
        "width": width,
        "encoded": len(features),
        "skipped": skipped,
    }
    write_json(output.with_suffix(".json"), config)
    logger.info("encoded %d files into %s; %d skipped", len(features), output, len(skipped))
    return config
