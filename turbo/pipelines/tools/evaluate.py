"""Score inference outputs with the cherry-pick metrics: one metrics.json, the rows with their values."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from turbo.data.records import ROLE_ALIASES
from turbo.errors import DataError
from turbo.io import write_json, write_jsonl
from turbo.pipelines.inference.common import score_rows
from turbo.settings.pipelines.evaluate import EvaluateSettings

logger = logging.getLogger("turbo")


def output_files(path: Path) -> list[Path]:
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"outputs_path: no .jsonl file under {path}")
    return files


def read_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("answers"), list):
            raise DataError(f"{path}:{number}: not an inference output row (no 'answers' list)")
        messages = row.get("messages", [])
        if not isinstance(messages, list) or not all(_is_message(m) for m in messages):
            raise DataError(f"{path}:{number}: 'messages' must be a list of {{role, content}} objects")
        rows.append(row)
    return rows


def _is_message(message: object) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") in {"user", "bot", "system", *ROLE_ALIASES}
        and isinstance(message.get("content"), str)
    )


def run(settings: EvaluateSettings) -> None:
    root = Path(settings.outputs_path)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for path in output_files(root):
        name = str(path.relative_to(root)) if root.is_dir() else path.name
        means, rows = score_rows(settings.metric_settings, read_rows(path), path.stem)
        results[name] = means
        write_jsonl(Path(settings.save_path) / name, rows)
        logger.info("%s: %s", name, ", ".join(f"{k}={v:.4g}" for k, v in means.items()))
    write_json(Path(settings.save_path) / "metrics.json", results)
