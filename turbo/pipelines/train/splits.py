"""The data step every train pipeline shares: the training split, then the validation split, then the
cherry-picks, then data_ratio / data_train_split_ratio / data_debug_path, then the data report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from turbo.data.chat import ChatSample, build_chat_samples, segments_preview
from turbo.data.report import DatasetReport
from turbo.errors import SettingsError
from turbo.io import atomic_open, write_json, write_jsonl
from turbo.pipelines.train.common import is_main_process
from turbo.reading import output_folder_problem
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings

logger = logging.getLogger("turbo")

PREVIEW_SAMPLES = 3

Build = Callable[[Any], tuple[list[Any], DatasetReport]]


class Splits(NamedTuple):
    train: list[Any]
    val: list[Any]
    cherry_picks: list[Any]


def load_splits(
    settings: BaseTrainExperimentSettings,
    folder: Path,
    tokenizer: Any,
    build: Build,
    *,
    cherry: Build | None = None,
    previews: Callable[[list[Any]], list[str]] | None = None,
    hold_out: bool = True,
    token_ids: dict[str, int] | None = None,
    debug_side: Callable[[Any], Any] | None = None,
) -> Splits:
    """train_dataset_settings, then val_dataset_settings, made by `build(dataset settings)`; then the
    cherry-picks by `cherry` (by default chat prompts to answer); then, where `hold_out`, training_data;
    then the data report with `previews(train)`."""
    train, report = build(settings.train_dataset_settings)
    reports = {"train": report}
    val: list[Any] = []
    if settings.val_dataset_settings is not None:
        val, reports["val"] = build(settings.val_dataset_settings)
    cherry_picks: list[Any] = []
    if settings.cherry_pick_settings is not None:
        cherry = cherry or (lambda dataset: build_chat_prompts(dataset, tokenizer, settings.seed))
        cherry_picks, reports["cherry_pick"] = cherry(settings.cherry_pick_settings.dataset_settings)
    if hold_out:
        train, val = training_data(settings, tokenizer, train, val, token_ids, debug_side)
    write_data_reports(folder, reports, previews(train) if previews else None)
    return Splits(train, val, cherry_picks)


def build_chat_prompts(dataset: Any, tokenizer: Any, seed: int) -> tuple[list[ChatSample], DatasetReport]:
    return build_chat_samples(dataset, tokenizer, seed=seed, inference=True)


def training_data(
    settings: BaseTrainExperimentSettings,
    tokenizer: Any,
    train: list[Any],
    val: list[Any],
    token_ids: dict[str, int] | None = None,
    debug_side: Callable[[Any], Any] | None = None,
) -> tuple[list[Any], list[Any]]:
    """data_ratio and data_train_split_ratio applied to the training samples (the held-out ones join
    val), then the first training samples (or their `debug_side`) written to data_debug_path, all
    before training starts."""
    from turbo.data.debug import debug_rows, share_and_split

    train, held_out = share_and_split(
        train, settings.data_ratio, settings.data_train_split_ratio, settings.seed
    )
    if settings.data_ratio is not None or held_out:
        logger.info("training on %d samples, %d held out for evaluation", len(train), len(held_out))
    if settings.data_debug_path is not None and is_main_process():
        folder = Path(settings.data_debug_path)
        problem = output_folder_problem(folder)
        if problem:
            raise SettingsError(f"data_debug_path: {problem}")
        folder.mkdir(parents=True, exist_ok=True)
        shown = [debug_side(sample) for sample in train] if debug_side else train
        write_jsonl(folder / "train_samples.jsonl", debug_rows(shown, tokenizer, token_ids))
    return train, [*val, *held_out]


def write_data_reports(
    folder: Path, reports: dict[str, DatasetReport], previews: list[str] | None = None
) -> None:
    """Log what each dataset kept and dropped (data_report.json); write the first samples as the model
    sees them, trained tokens marked (samples_preview.txt), so a masking mistake shows before training."""
    for split, report in reports.items():
        logger.info("%s data: %s", split, report.summary())
    if not is_main_process():
        return
    write_json(
        folder / "data_report.json",
        {split: [source.as_dict() for source in report.sources] for split, report in reports.items()},
    )
    if previews:
        with atomic_open(folder / "samples_preview.txt") as handle:
            handle.write("\n".join(previews))


def chat_previews(samples: list[ChatSample], tokenizer: Any) -> list[str]:
    return [
        f"### sample {i} (record {sample.record.record.id}, {sample.record.where}); "
        f"trained tokens are in [[...]]\n{segments_preview(sample, tokenizer)}\n"
        for i, sample in enumerate(samples[:PREVIEW_SAMPLES])
    ]


def pair_previews(samples: list[Any], tokenizer: Any) -> list[str]:
    """The first pairs as the model sees them, answers (the trained tokens) in [[...]]."""
    return [
        f"### pair {i} ({sample.name}, {sample.record.where})\n"
        f"prompt: {tokenizer.decode(sample.prompt_ids)}\n"
        f"chosen: [[{tokenizer.decode(sample.chosen_ids)}]]\n"
        f"rejected: [[{tokenizer.decode(sample.rejected_ids)}]]\n"
        for i, sample in enumerate(samples[:PREVIEW_SAMPLES])
    ]
