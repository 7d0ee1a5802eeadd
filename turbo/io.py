"""Atomic writes: a crash leaves the old file (or none), never a truncated one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` (text as UTF-8, or binary with mode "wb"); rename it over
    `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    with atomic_open(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def replace_dir(source: Path, target: Path) -> None:
    """Move the complete folder `source` to `target`, replacing what was there.

    The old `target` is first renamed to a fresh hidden sibling (never a name that may already hold
    something), put back if the new folder cannot be moved in, and deleted only once the new one is in
    place. Callers decide beforehand that `target` may be replaced (see turbo.settings.outputs).
    """
    source, target = Path(source), Path(target)
    if not target.exists():
        source.rename(target)
        return
    if not target.is_dir() or target.is_symlink():
        raise NotADirectoryError(f"{target} is not a plain folder; not replacing it with {source}")
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
    target.rename(old)
    try:
        source.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def removed_if_refused(folder: str | Path | None) -> Iterator[None]:
    """A run that stops on bad input (exit code 2: a record, a model that will not load, model_kwargs the
    library refuses) leaves nothing behind: the experiment folder it created is removed again. A folder
    that existed before (a resumed or restarted run), or one that holds a checkpoint (training started),
    is kept. Only the main process removes it."""
    from turbo.errors import EXIT_BAD_INPUT, TurboError

    path = Path(folder) if folder is not None else None
    existed = path is None or path.exists()
    try:
        yield
    except TurboError as exc:
        main = os.environ.get("RANK", "0") == "0"
        refused = not existed and main and exc.exit_code == EXIT_BAD_INPUT and path is not None
        if refused and path.is_dir() and not any((path / name).exists() for name in ("checkpoints", "final")):
            shutil.rmtree(path, ignore_errors=True)
        raise
