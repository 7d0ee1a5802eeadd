"""dataset_num_proc: tokenisation split over worker processes, with the very ids one process gives.

Only the tokenizer call runs in the workers (rendering, truncation and seeded choices stay in order in
the main process), and the texts come back in their order, so the result does not depend on the
number of processes. The pool starts once per tokenizer and number of processes, and ends at exit.
"""

from __future__ import annotations

import atexit
import multiprocessing
from typing import Any

MIN_TEXTS_PER_WORKER = 64  # below this a worker costs more than it saves

_pools: dict[tuple[int, int], Any] = {}
_worker_tokenizer: Any = None


def _init(tokenizer: Any) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _tokenize(texts: list[str]) -> list[list[int]]:
    return _worker_tokenizer(texts, add_special_tokens=False)["input_ids"]


def _pool(tokenizer: Any, num_proc: int) -> Any:
    key = (id(tokenizer), num_proc)
    if key not in _pools:
        context = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        )
        _pools[key] = context.Pool(num_proc, initializer=_init, initargs=(tokenizer,))
    return _pools[key]


@atexit.register
def close_pools() -> None:
    for pool in _pools.values():
        pool.terminate()
    _pools.clear()


def tokenize_texts(tokenizer: Any, texts: list[str], num_proc: int | None = None) -> list[list[int]]:
    """The token ids of each text (no special tokens added), in `num_proc` processes when set."""
    if not texts:
        return []
    if not num_proc or num_proc <= 1 or len(texts) < 2 * MIN_TEXTS_PER_WORKER:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    size = max(MIN_TEXTS_PER_WORKER, -(-len(texts) // num_proc))
    parts = [texts[start : start + size] for start in range(0, len(texts), size)]
    return [ids for part in _pool(tokenizer, num_proc).map(_tokenize, parts) for ids in part]
