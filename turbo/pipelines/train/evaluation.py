"""Cherry-picks for each train method: its samples as EvalSamples and its way to answer them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHERRY_PICKS = "cherry_picks"


def attach_chat_cherry_picks(
    trainer: Any, settings: Any, samples: list, tokenizer: Any, folder: Path
) -> None:
    """Chat, DPO and KTO: the model generates answers to the cherry-pick prompts at each evaluation."""
    from turbo.metrics.samples import chat_eval_samples
    from turbo.trainers.evaluation import EvaluationCallback, chat_generate, chat_prompt_encoder

    cherry_pick = settings.cherry_pick_settings
    if cherry_pick is None:
        return
    batch = trainer.args.per_device_eval_batch_size
    EvaluationCallback(
        cherry_pick,
        chat_eval_samples(samples),
        chat_generate(cherry_pick, tokenizer, batch),
        folder / CHERRY_PICKS,
        tokenizer,
        encode_prompt=chat_prompt_encoder(cherry_pick.dataset_settings, tokenizer, settings.seed),
    ).attach(trainer)


def attach_score_cherry_picks(
    trainer: Any, settings: Any, samples: list, tokenizer: Any, folder: Path, *, predict: bool
) -> None:
    """Reward models score the cherry-pick conversations; classifiers predict their labels."""
    from turbo.metrics.samples import chat_eval_samples, classification_eval_samples
    from turbo.trainers.evaluation import EvaluationCallback, score_generate

    cherry_pick = settings.cherry_pick_settings
    if cherry_pick is None:
        return
    batch = trainer.args.per_device_eval_batch_size
    eval_samples = classification_eval_samples(samples) if predict else chat_eval_samples(samples)
    EvaluationCallback(
        cherry_pick, eval_samples, score_generate(tokenizer, batch, predict), folder / CHERRY_PICKS, tokenizer
    ).attach(trainer)
