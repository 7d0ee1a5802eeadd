"""Cherry-picks for each train method: its samples as EvalSamples and its way to answer them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings

CHERRY_PICKS = "cherry_picks"


def attach_chat_cherry_picks(
    trainer: Any, settings: Any, samples: list, tokenizer: Any, folder: Path
) -> None:
    """Chat, DPO and KTO: the model generates answers to the cherry-pick prompts at each evaluation."""
    from turbo.errors import SettingsError
    from turbo.metrics.samples import chat_eval_samples
    from turbo.trainers.evaluation import EvaluationCallback, chat_generate, chat_prompt_encoder, reference_of

    cherry_pick = settings.cherry_pick_settings
    if cherry_pick is None:
        return
    compared = sorted({metric.type for metric in cherry_pick.metric_settings if metric.reads_reference})
    if compared and reference_of(trainer, trainer.model) is None:
        names = ", ".join(compared)
        raise SettingsError(
            f"cherry_pick_settings.metric_settings: {names} compares the model with a reference, and this "
            f"run has none (full fine-tuning without a reference model); train an adapter or remove {names}"
        )
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
    from turbo.metrics.samples import chat_eval_samples, classification_eval_samples, pair_eval_samples
    from turbo.trainers.evaluation import EvaluationCallback, score_generate

    cherry_pick = settings.cherry_pick_settings
    if cherry_pick is None:
        return
    batch = trainer.args.per_device_eval_batch_size
    if predict:
        eval_samples = classification_eval_samples(samples)
    elif isinstance(cherry_pick.dataset_settings, PairPreferencesDatasetSettings):
        eval_samples = pair_eval_samples(samples)
    else:
        eval_samples = chat_eval_samples(samples)
    EvaluationCallback(
        cherry_pick, eval_samples, score_generate(tokenizer, batch, predict), folder / CHERRY_PICKS, tokenizer
    ).attach(trainer)


def attach_multimodal_cherry_picks(
    trainer: Any, settings: Any, samples: list, readers: dict, tokenizer: Any, folder: Path
) -> None:
    """Multimodal: the model generates answers to the cherry-pick prompts with their media."""
    from turbo.data.multimodal_batches import media_inputs
    from turbo.generators.transformers import generate_answers
    from turbo.metrics.samples import chat_eval_samples
    from turbo.trainers.evaluation import EvaluationCallback

    cherry_pick = settings.cherry_pick_settings
    if cherry_pick is None:
        return
    batch = trainer.args.per_device_eval_batch_size

    def generate(model: Any, eval_samples: list) -> list[list[str]]:
        payloads = [sample.payload for sample in eval_samples]
        return generate_answers(
            model,
            tokenizer,
            [payload.input_ids for payload in payloads],
            cherry_pick.generator_transformers_settings,
            cherry_pick.custom_generation_settings,
            batch=batch,
            extra_inputs=media_inputs(payloads, readers, next(model.parameters()).device),
        )

    EvaluationCallback(
        cherry_pick, chat_eval_samples(samples), generate, folder / CHERRY_PICKS, tokenizer
    ).attach(trainer)


def attach_rag_cherry_picks(
    trainer: Any, settings: Any, samples: list, tokenizers: Any, encoding: tuple[str, bool], folder: Path
) -> None:
    """RAG: the model retrieves passages for the cherry-pick questions and answers with them; each row
    also names what was retrieved."""
    from turbo.generators.rag import QuestionEncoder, answer_with_retrieval, rag_rows
    from turbo.metrics.samples import chat_eval_samples
    from turbo.trainers.evaluation import EvaluationCallback

    cherry_pick = settings.cherry_pick_settings
    if cherry_pick is None:
        return
    batch = trainer.args.per_device_eval_batch_size
    retrieval = settings.model_settings.retrieval_settings

    def generate(model: Any, eval_samples: list) -> tuple[list[list[str]], list[dict[str, Any]]]:
        payloads = [sample.payload for sample in eval_samples]
        encoder = QuestionEncoder(model.question_encoder, tokenizers.question_encoder, *encoding)
        answers, retrieved = answer_with_retrieval(
            model.generator,
            tokenizers.generator,
            encoder,
            model.retriever,
            payloads,
            cherry_pick.dataset_settings,
            retrieval,
            cherry_pick.generator_transformers_settings,
            cherry_pick.custom_generation_settings,
            batch=batch,
        )
        rows = rag_rows(payloads, answers, retrieved)
        extras = [{key: value for key, value in row.items() if key.startswith("retrieved")} for row in rows]
        return answers, extras

    EvaluationCallback(
        cherry_pick, chat_eval_samples(samples), generate, folder / CHERRY_PICKS, tokenizers.generator
    ).attach(trainer)
