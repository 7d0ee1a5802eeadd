"""Score inference outputs with the cherry-pick metrics: one metrics.json, the rows with their values."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from turbo.data.records import ROLE_ALIASES
from turbo.errors import DataError
from turbo.io import write_json, write_jsonl
from turbo.metrics.registry import compute_scores, summarize
from turbo.metrics.samples import output_eval_samples
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


def score_rows(metrics: list[Any], rows: list[dict], source: str) -> tuple[dict[str, Any], list[dict]]:
    """The means of `metrics` over inference output rows, and the rows each with its own 'metrics'."""
    samples, answers = output_eval_samples(rows, source)
    per_sample = compute_scores(metrics, samples, answers, None, per_sample=True)
    text = compute_scores(metrics, samples, answers, None, per_sample=False)
    scores = [{**t, **p} for t, p in zip(text, per_sample, strict=True)]
    means, _ = summarize(metrics, scores)
    every = {label: values for metric in scores for label, values in metric.items()}
    scored = []
    for index, sample in enumerate(samples):
        given = rows[index].get("answers", [])  # each answer keeps its other fields (log-probs, ...)
        row = {
            **sample.row,
            "answers": [{**given[k], "id": str(k), "content": a} for k, a in enumerate(answers[index])],
        }
        row["metrics"] = {label: values[index] for label, values in every.items()}
        scored.append(row)
    return means, scored


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
