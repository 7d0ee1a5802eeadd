"""Batched generation with `transformers` `generate`: left-padded prompts, answers per sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from turbo.data.chat import ChatSample
from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings


def _generation_config(settings: GeneratorTransformersSettings, tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    sampling = {}
    if settings.do_sample:
        sampling = {
            k: v for k in ("temperature", "top_p", "top_k") if (v := getattr(settings, k)) is not None
        }
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        num_beams=settings.num_beams,
        do_sample=settings.do_sample,
        repetition_penalty=settings.repetition_penalty,
        num_return_sequences=settings.num_return_sequences,
        stop_strings=settings.stop_strings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        # log-probs come from the raw logits (before temperature, top-k/p and penalties), as vLLM's
        output_logits=settings.logprobs is not None,
        return_dict_in_generate=settings.logprobs is not None,
        **sampling,
    )


def _left_pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


def cut_at_stop_strings(text: str, stop_strings: str | list[str] | None) -> str:
    stops = [stop_strings] if isinstance(stop_strings, str) else stop_strings or []
    positions = [text.find(stop) for stop in stops if stop and stop in text]
    return text[: min(positions)] if positions else text


@torch.no_grad()
def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    settings: GeneratorTransformersSettings,
    custom: CustomGenerationSettings,
    batch: int,
    progress: bool = False,
    extra_inputs: Callable[[int, int], dict[str, Any]] | None = None,
) -> list[list[str]]:
    """num_return_sequences answers for each prompt (token ids), in prompt order.

    `extra_inputs(start, end)` gives more `generate` arguments for prompts[start:end] (e.g. media).
    Without it, prompts are batched longest first (similar lengths together: less left padding).
    """
    answers, _ = generate_answers_with_extras(
        model, tokenizer, prompts, settings, custom, batch, progress, extra_inputs
    )
    return answers


@torch.no_grad()
def generate_answers_with_extras(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    settings: GeneratorTransformersSettings,
    custom: CustomGenerationSettings,
    batch: int,
    progress: bool = False,
    extra_inputs: Callable[[int, int], dict[str, Any]] | None = None,
) -> tuple[list[list[str]], list[list[dict[str, Any]]]]:
    """generate_answers, and per answer its extra output fields (`logprob_fields` when settings.logprobs
    is set, else none), as generate_answers_vllm returns them."""
    if extra_inputs is not None:
        return _generate_in_order(model, tokenizer, prompts, settings, custom, batch, progress, extra_inputs)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers, extras = _generate_in_order(
        model, tokenizer, [prompts[i] for i in order], settings, custom, batch, progress
    )
    by_index = dict(zip(order, zip(answers, extras, strict=True), strict=True))
    return [by_index[i][0] for i in range(len(prompts))], [by_index[i][1] for i in range(len(prompts))]


def _generate_in_order(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    settings: GeneratorTransformersSettings,
    custom: CustomGenerationSettings,
    batch: int,
    progress: bool,
    extra_inputs: Callable[[int, int], dict[str, Any]] | None = None,
) -> tuple[list[list[str]], list[list[dict[str, Any]]]]:
    """generate_answers_with_extras for prompts in the given order, `batch` at a time."""
    config = _generation_config(settings, tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers: list[list[str]] = []
    extras: list[list[dict[str, Any]]] = []
    size = custom.batch or batch
    n = settings.num_return_sequences
    for start in tqdm(range(0, len(prompts), size), desc="generating", disable=not progress):
        chunk = prompts[start : start + size]
        input_ids, attention = _left_pad(chunk, tokenizer.pad_token_id)
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            generation_config=config,
            tokenizer=tokenizer if settings.stop_strings else None,
            **(extra_inputs(start, start + len(chunk)) if extra_inputs is not None else {}),
        )
        sequences = output if settings.logprobs is None else output.sequences
        generated = sequences[:, input_ids.shape[1] :]
        new_tokens = generated if custom.remove_prompt else sequences
        for row in range(len(chunk)):
            texts = []
            for k in range(n):
                ids = new_tokens[row * n + k].tolist()
                if not custom.remove_prompt:
                    ids = ids[input_ids.shape[1] - len(chunk[row]) :]
                while ids and ids[-1] == tokenizer.pad_token_id:
                    ids.pop()
                text = tokenizer.decode(ids, skip_special_tokens=custom.skip_special_tokens)
                texts.append(
                    cut_at_stop_strings(text, settings.stop_strings) if custom.remove_prompt else text
                )
            answers.append(texts)
            top = settings.logprobs
            extras.append(
                [{} for _ in range(n)]
                if top is None
                else [_raw_logprob_fields(output, generated, row * n + k, top, tokenizer) for k in range(n)]
            )
    model.train(was_training)
    return answers, extras


def _raw_logprob_fields(
    output: Any, generated: torch.Tensor, row: int, top: int, tokenizer: Any
) -> dict[str, Any]:
    """logprob_fields of one generated row, from the raw logits `generate` returned (under beam search,
    each step's logits are those of the beam this row came from)."""
    ids = _answer_ids(generated[row].tolist(), tokenizer)
    beams = getattr(output, "beam_indices", None)
    chosen, alternatives = [], []
    for step, token in enumerate(ids):
        source = row if beams is None else int(beams[row, step])
        logps = output.logits[step][source].float().log_softmax(-1)
        chosen.append(float(logps[token]))
        if top:
            values, indices = logps.topk(top)
            alternatives.append(list(zip(indices.tolist(), values.tolist(), strict=True)))
    return logprob_fields(tokenizer, ids, chosen, alternatives if top else None)


def _answer_ids(ids: list[int], tokenizer: Any) -> list[int]:
    """The generated tokens of one row: up to its first EOS (kept), without the padding after a stop."""
    if tokenizer.eos_token_id in ids:
        return ids[: ids.index(tokenizer.eos_token_id) + 1]
    while ids and ids[-1] == tokenizer.pad_token_id:
        ids = ids[:-1]
    return ids


def logprob_fields(
    tokenizer: Any,
    token_ids: list[int],
    logprobs: list[float],
    top: list[list[tuple[int, float]]] | None,
) -> dict[str, Any]:
    """An answer's log-prob fields, the same from every engine: the generated `token_ids`, each one's
    log-prob (`logprobs`) under the model's raw logits, their sum (`cumulative_logprob`) and, when asked
    for, the top-k tokens at each step, likeliest first (`top_logprobs`: token_id, token, logprob)."""
    fields: dict[str, Any] = {
        "token_ids": token_ids,
        "logprobs": logprobs,
        "cumulative_logprob": sum(logprobs),
    }
    if top is not None:
        fields["top_logprobs"] = [
            [
                {"token_id": token, "token": tokenizer.convert_ids_to_tokens(token), "logprob": logp}
                for token, logp in sorted(step, key=lambda pair: -pair[1])
            ]
            for step in top
        ]
    return fields


def answer_rows(
    samples: list[ChatSample],
    answers: list[list[str]],
    extras: list[list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The output JSONL rows: each record as read, its dataset name and its answers (each answer with
    its `extras` fields, such as log-probabilities, when given)."""
    rows = []
    for index, (sample, texts) in enumerate(zip(samples, answers, strict=True)):
        row = sample.record.record.model_dump(mode="json", exclude_none=True)
        row["dataset_name"] = sample.source
        fields = extras[index] if extras is not None else [{}] * len(texts)
        row["answers"] = [
            {"id": str(k), "content": text, **more}
            for k, (text, more) in enumerate(zip(texts, fields, strict=True))
        ]
        rows.append(row)
    return rows


@torch.no_grad()
def sample_answer_ids(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float | None,
    top_p: float = 1.0,
    top_k: int | None = None,
    batch: int | None = None,
    media: list[list[tuple[str, Any]]] | None = None,
    stop: list[str] | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """n answers per prompt as token ids (prompt-major: the n answers of prompt 0 first), each ending at
    its EOS (kept) or at max_new_tokens; and each answer token's log-prob under the raw logits of the
    generating model. temperature None decodes greedily (then n must be 1). `media`: per prompt, its
    (modality, tensor) items, passed to a multimodal model as modality_inputs; its modality tokens are
    never sampled. `stop`: strings after which an answer stops (the tool loop's closing tags; the tokens
    after the stop, padding, are for the caller to drop)."""
    from transformers import GenerationConfig

    sampling = temperature is not None
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        num_return_sequences=n,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        output_logits=True,
        return_dict_in_generate=True,
        # a multimodal model's modality tokens stand for media: an answer never writes one
        suppress_tokens=list(getattr(model, "modality_token_ids", {}).values()) or None,
        stop_strings=stop or None,
        **({"temperature": temperature, "top_p": top_p, "top_k": top_k or 0} if sampling else {}),
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers: list[list[int]] = []
    logps: list[list[float]] = []
    size = batch or len(prompts)
    for start in range(0, len(prompts), size):
        input_ids, attention = _left_pad(prompts[start : start + size], tokenizer.pad_token_id)
        extra = {}
        if media is not None:
            from turbo.data.multimodal_batches import stack_media

            stacked = stack_media(media[start : start + size])
            extra["modality_inputs"] = {modality: value.to(device) for modality, value in stacked.items()}
        if stop:
            extra["tokenizer"] = tokenizer  # generate matches stop strings with it
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            generation_config=config,
            **extra,
        )
        new = output.sequences[:, input_ids.shape[1] :].cpu()
        steps = torch.stack(output.logits, 1).float().log_softmax(-1).cpu()  # [rows, steps, vocab]
        picked = torch.gather(steps, 2, new[:, : steps.shape[1]].unsqueeze(2)).squeeze(2)
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
            answers.append(ids)
            logps.append(picked[row, : len(ids)].tolist())
    model.train(was_training)
    return answers, logps
