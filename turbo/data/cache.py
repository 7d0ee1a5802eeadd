"""Tokenised datasets cached by content: a second run on the same data skips rendering and tokenising.

The key is a hash of everything the tokenised samples depend on: the dataset settings, the build's
arguments (seed, inference), the bytes of every file the settings name (records files), the
tokenizer's full definition (vocabulary, merges, added tokens, chat template, special tokens) and
the source of turbo's tokenisation code (turbo/data, turbo/modeling/tokenizer.py). Change any of
them and the key changes; nothing is ever invalidated by time.

Entries live in `$TURBO_DATASET_CACHE` (default `~/.cache/turbo/datasets`; `off` turns the cache
off), one file per key, written atomically. They are pickles that only turbo writes; reading one
accepts only turbo's own classes, pydantic's and plain containers.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import turbo
from turbo.io import atomic_open

logger = logging.getLogger("turbo")
T = TypeVar("T")
ENV = "TURBO_DATASET_CACHE"
CODE = [Path(turbo.__file__).parent / "data", Path(turbo.__file__).parent / "modeling" / "tokenizer.py"]
SAFE_MODULES = ("turbo.", "pydantic", "pydantic_core", "pathlib", "collections", "copyreg", "datetime")
SAFE_BUILTINS = {
    "list",
    "dict",
    "set",
    "frozenset",
    "tuple",
    "int",
    "float",
    "str",
    "bytes",
    "bool",
    "object",
}


def cache_folder() -> Path | None:
    value = os.environ.get(ENV, "")
    if value.lower() in ("off", "0", "false", "none"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "turbo" / "datasets"


def _file_digest(path: Path, digest: Any) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _named_files(value: Any) -> list[Path]:
    """Every existing file a settings dump names (records paths, whatever the dataset type)."""
    if isinstance(value, dict):
        return [path for item in value.values() for path in _named_files(item)]
    if isinstance(value, list):
        return [path for item in value for path in _named_files(item)]
    if isinstance(value, str) and len(value) < 4096:
        path = Path(value)
        try:
            return [path] if path.is_file() else []
        except OSError:
            return []
    return []


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """The tokenizer's whole definition as text (vocabulary, merges, added and special tokens, template)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = [
        type(tokenizer).__name__,
        backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True),
        str(getattr(tokenizer, "chat_template", None)),
        json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str),
        str(getattr(tokenizer, "padding_side", None)),
        str(getattr(tokenizer, "truncation_side", None)),
        str(len(tokenizer)),
    ]
    return "\n".join(parts)


def cache_key(settings: Any, tokenizer: Any, **arguments: Any) -> str:
    digest = hashlib.sha256()
    dump = settings.model_dump(mode="json")
    digest.update(json.dumps([dump, arguments, turbo.__version__], sort_keys=True, default=str).encode())
    for path in _named_files(dump):
        digest.update(str(path).encode())
        _file_digest(path, digest)
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    for root in CODE:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(path.name.encode())
            _file_digest(path, digest)
    return digest.hexdigest()


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in SAFE_BUILTINS or module.startswith(SAFE_MODULES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a dataset cache entry")


def _write(path: Path, value: Any) -> None:
    with atomic_open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)


def cached(build: Callable[..., T], settings: Any, tokenizer: Any, **arguments: Any) -> T:
    """`build(settings, tokenizer, **arguments)`, read from the cache if built before."""
    folder = cache_folder()
    if folder is None:
        return build(settings, tokenizer, **arguments)
    key = cache_key(settings, tokenizer, build=f"{build.__module__}.{build.__qualname__}", **arguments)
    path = folder / f"{key}.pkl"
    try:
        value = _Unpickler(io.BytesIO(path.read_bytes())).load()
    except FileNotFoundError:
        pass
    except Exception as error:  # a damaged or foreign entry: build again and overwrite it
        logger.warning("dataset cache entry %s unreadable (%s); tokenising again", path, error)
    else:
        logger.info("tokenised dataset read from the cache: %s", path)
        return value
    value = build(settings, tokenizer, **arguments)
    try:
        _write(path, value)
        logger.info("tokenised dataset cached: %s", path)
    except OSError as error:
        logger.warning("could not write the dataset cache entry %s: %s", path, error)
    return value
