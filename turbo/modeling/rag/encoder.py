"""A text encoder (BERT-style `AutoModel`) that pools token vectors into one vector per text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.modeling.tokenizer import (
    QUESTION_ENCODER_TOKENIZER,
    has_tokenizer_files,
    rag_tokenizer_folder,
    read_tokenizer,
)
from turbo.settings.rag import EncoderModelSettings, RagModelSettings


def encoder_width(settings: EncoderModelSettings, where: str) -> int:
    """The encoder's vector width from its config.json (read before any weights load)."""
    path = Path(settings.model_path) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{where}.model_path: cannot read {path}: {exc}") from exc
    width = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    if not isinstance(width, int):
        raise ModelError(f"{where}.model_path: {path} names no hidden_size")
    return width


def load_encoder(settings: EncoderModelSettings, where: str = "encoder_settings") -> tuple[Any, Any]:
    """The encoder model (float32 unless transformers_settings.dtype says otherwise) and its tokenizer."""
    import torch
    from transformers import AutoModel

    from turbo.modeling.loading import model_load_error  # (imports torch: not at module level)

    path = Path(settings.model_path)
    trust = settings.transformers_settings.trust_remote_code
    dtype = settings.transformers_settings.dtype
    kwargs: dict[str, Any] = dict(settings.model_kwargs)
    kwargs["dtype"] = (dtype if dtype == "auto" else getattr(torch, dtype)) if dtype else torch.float32
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True, trust_remote_code=trust, **kwargs)
    except Exception as exc:  # noqa: BLE001 - whatever transformers raises is reported against a field
        raise model_load_error(exc, path, settings, where) from exc
    if settings.tokenizer_path is not None:
        tokenizer_path, field = Path(settings.tokenizer_path), f"{where}.tokenizer_path"
    else:
        tokenizer_path, field = encoder_tokenizer_folder(path), f"{where}.model_path"
    return model, read_tokenizer(tokenizer_path, field, trust_remote_code=trust)


def encoder_tokenizer_folder(model_path: Path) -> Path:
    """The encoder's own folder, or, where it holds no tokenizer, the question_encoder_tokenizer/ beside it
    (train_rag's final folder: question_encoder/ and question_encoder_tokenizer/, RagTokenizer's layout)."""
    beside = model_path.parent / QUESTION_ENCODER_TOKENIZER
    if not has_tokenizer_files(model_path) and beside.is_dir():
        return beside
    return rag_tokenizer_folder(model_path, QUESTION_ENCODER_TOKENIZER)


def pool(hidden: Any, attention_mask: Any, pooling: str, normalize: bool) -> Any:
    """(batch, length, width) token vectors -> (batch, width): masked mean or the first token."""
    import torch

    if pooling == "cls":
        vectors = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        vectors = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors


def embed(model: Any, input_ids: Any, attention_mask: Any, pooling: str, normalize: bool) -> Any:
    """Pooled vectors of a tokenised batch, with gradients when the caller allows them."""
    output = model(input_ids=input_ids, attention_mask=attention_mask)
    return pool(output.last_hidden_state, attention_mask, pooling, normalize)


def tokenize(tokenizer: Any, texts: list[str], max_length: int, pairs: list[str] | None = None) -> Any:
    return tokenizer(
        texts,
        pairs,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )


def encode_texts(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    pooling: str,
    normalize: bool,
    max_length: int,
    batch_size: int,
    pairs: list[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Any:
    """float32 numpy vectors of `texts` (with `pairs` as second segments), no gradients.
    `on_batch(n)` is called after each forward of n texts (a progress bar)."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenize(
                tokenizer,
                texts[start : start + batch_size],
                max_length,
                pairs[start : start + batch_size] if pairs is not None else None,
            ).to(device)
            vectors = embed(model, batch["input_ids"], batch["attention_mask"], pooling, normalize)
            out.append(vectors.float().cpu().numpy())
            if on_batch is not None:
                on_batch(len(out[-1]))
    model.train(was_training)
    width = model.config.hidden_size
    return np.concatenate(out) if out else np.zeros((0, width), dtype=np.float32)


def vector_size(model_settings: RagModelSettings, where: str) -> int:
    """The width of the question vectors: retrieval_settings.retrieval_vector_size where it is set, else
    the question encoder's (its config.json). The preflight checks that the two and the index agree."""
    size = model_settings.retrieval_settings.retrieval_vector_size
    if size is not None:
        return size
    return encoder_width(model_settings.question_encoder_settings, f"{where}.question_encoder_settings")
