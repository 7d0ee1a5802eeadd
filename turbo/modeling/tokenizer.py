"""Loading a tokenizer from a local folder: any failure of the libraries becomes one ModelError that
names the field; a tokenizer.json that current `tokenizers` refuses falls back to the slow files; a
RagTokenizer folder (train_rag's final folder) gives its generator_tokenizer/."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import SpecialTokensSettings, TokenizerSettings

logger = logging.getLogger("turbo")

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token")
FAST_FILE = "tokenizer.json"
# what a tokenizer is built from without tokenizer.json (sentencepiece models, BPE / WordPiece vocabularies)
SLOW_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "vocab.txt")
TOKENIZER_FILES = (FAST_FILE, "tokenizer_config.json", *SLOW_FILES)
# transformers' RagTokenizer layout: one folder holding both tokenizers
GENERATOR_TOKENIZER, QUESTION_ENCODER_TOKENIZER = "generator_tokenizer", "question_encoder_tokenizer"


def has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def rag_tokenizer_folder(folder: Path, part: str) -> Path:
    """`folder`, or its `part` subfolder (generator_tokenizer, question_encoder_tokenizer) where `folder` is
    a RagTokenizer folder: no tokenizer files of its own, the part's folder inside."""
    if folder.is_dir() and not has_tokenizer_files(folder) and (folder / part).is_dir():
        return folder / part
    return folder


def load_tokenizer(
    tokenizer_settings: TokenizerSettings,
    model_settings: ModelSettings,
    special_tokens: SpecialTokensSettings | None = None,
) -> Any:
    """The tokenizer from a local folder, with the missing special tokens added."""
    field = (
        "tokenizer_settings.tokenizer_path"
        if tokenizer_settings.tokenizer_path
        else "model_settings.model_path"
    )
    path = rag_tokenizer_folder(
        Path(tokenizer_settings.tokenizer_path or model_settings.model_path), GENERATOR_TOKENIZER
    )
    tokenizer = read_tokenizer(
        path,
        field,
        use_fast=tokenizer_settings.use_fast,
        trust_remote_code=model_settings.transformers_settings.trust_remote_code,
        kwargs=tokenizer_settings.tokenizer_kwargs,
        kwargs_field="tokenizer_settings.tokenizer_kwargs",
    )
    add_missing_special_tokens(tokenizer, special_tokens or SpecialTokensSettings())
    new_tokens = [
        token
        for token in (model_settings.embeddings_initialization_strategy or {})
        if token not in tokenizer.get_vocab()
    ]
    if new_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": new_tokens})
    return tokenizer


def read_tokenizer(
    path: Path | str,
    field: str,
    *,
    use_fast: bool = True,
    trust_remote_code: bool = False,
    kwargs: dict[str, Any] | None = None,
    kwargs_field: str = "tokenizer_settings.tokenizer_kwargs",
) -> Any:
    """AutoTokenizer.from_pretrained on a local folder. Whatever the libraries raise becomes one ModelError:
    against `kwargs_field` where the folder loads without those kwargs, else against `field` (the path).
    Where tokenizer.json cannot be read and use_fast is false or a tokenizer.model is there, the tokenizer
    is built from the slow files (tokenizer.model, vocab files) instead before giving up."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{field}: tokenizer folder {path} does not exist")
    kwargs = dict(kwargs or {})
    try:
        return _auto_tokenizer(path, trust_remote_code, kwargs)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception; every failure is reported
        error = exc
    if kwargs and _loads(path, trust_remote_code):
        raise ModelError(
            f"{kwargs_field}: the tokenizer at {path} loads, but not with {', '.join(sorted(kwargs))}: "
            f"{describe(error)}"
        ) from error
    slow = [name for name in SLOW_FILES if (path / name).is_file()]
    wants_slow = not use_fast or (path / "tokenizer.model").is_file()
    if (path / FAST_FILE).is_file() and slow and wants_slow:
        try:
            tokenizer = _slow_tokenizer(path, trust_remote_code, kwargs)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(
                f"{field}: cannot load a tokenizer from {path}: {FAST_FILE}: {describe(error)}; "
                f"and from {', '.join(slow)} without it: {describe(exc)}"
            ) from error
        logger.warning(
            "%s: %s in %s cannot be read (%s); the tokenizer was built from %s instead",
            field, FAST_FILE, path, describe(error), ", ".join(slow),
        )  # fmt: skip
        return tokenizer
    hint = (
        ""
        if slow or not (path / FAST_FILE).is_file()
        else f" (no {' or '.join(SLOW_FILES[:2])} to fall back to)"
    )
    raise ModelError(f"{field}: cannot load a tokenizer from {path}: {describe(error)}{hint}") from error


def describe(exc: BaseException) -> str:
    """The first line of an exception's message (with its type where the type says something)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 300 else text[:300] + " ..."
    name = type(exc).__name__
    if not text:
        return name
    return text if name in ("Exception", "OSError", "ValueError") else f"{name}: {text}"


def _auto_tokenizer(path: Path, trust_remote_code: bool, kwargs: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        path, local_files_only=True, trust_remote_code=trust_remote_code, **kwargs
    )


def _loads(path: Path, trust_remote_code: bool) -> bool:
    try:
        _auto_tokenizer(path, trust_remote_code, {})
    except Exception:  # noqa: BLE001
        return False
    return True


def _slow_tokenizer(path: Path, trust_remote_code: bool, kwargs: dict[str, Any]) -> Any:
    """The tokenizer built as if tokenizer.json were absent: from a folder of links to every other file
    (transformers then converts the sentencepiece model or vocabulary files)."""
    with tempfile.TemporaryDirectory(prefix="turbo_tokenizer_") as tmp:
        for item in path.iterdir():
            if item.name != FAST_FILE:
                (Path(tmp) / item.name).symlink_to(item.resolve())
        tokenizer = _auto_tokenizer(Path(tmp), trust_remote_code, kwargs)
    tokenizer.name_or_path = str(path)
    return tokenizer


def add_missing_special_tokens(tokenizer: Any, settings: SpecialTokensSettings) -> None:
    """Set each configured special token the tokenizer lacks; a pad token falls back to eos."""
    missing = {
        name: value
        for name in SPECIAL_TOKEN_NAMES
        if (value := getattr(settings, name)) is not None and getattr(tokenizer, name) is None
    }
    if missing:
        tokenizer.add_special_tokens(missing)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
