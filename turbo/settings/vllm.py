"""vLLM engine settings, and how a generation block maps onto vLLM's sampling. Imports no vllm."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.generation import GenerationSettings, VLLMSamplingSettings

TRANSFORMERS_DEFAULT_TOP_K = 50  # what `generate` samples with when top_k is unset
LoraRank = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]  # the max_lora_rank values vLLM accepts


class VLLMEngineSettings(StrictModel):
    """Arguments of the `vllm.LLM` engine for one model entry (read only with `use_vllm: true`)."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        None,
        description="Weights and activations dtype. None: model_settings.transformers_settings.dtype, "
        "else float32 (as the transformers path). vLLM's 'auto' loads float32 weights as bfloat16 on CPU.",
    )
    tensor_parallel_size: int = Field(1, ge=1, le=1024, description="GPUs to split the model over.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of GPU memory vLLM may take (weights plus KV cache)."
    )
    max_model_len: PositiveCount | None = Field(
        None, description="Longest prompt plus answer in tokens. None: the model's context length."
    )
    max_num_seqs: PositiveCount | None = Field(
        None, description="Sequences decoded together at most. None: vLLM's default (256 on CPU)."
    )
    max_num_batched_tokens: PositiveCount | None = Field(
        None,
        description="Tokens (prompt chunks plus one per decoding sequence) in one engine step at most. "
        "None: vLLM's default (4096 on CPU).",
    )
    enable_prefix_caching: bool = Field(
        True,
        description="Reuse the KV cache of prompt prefixes shared by several requests (a common system "
        "prompt or chat template head), and of a prompt sampled n times.",
    )
    kv_cache_memory_bytes: int | None = Field(
        None,
        gt=0,
        le=2**63 - 1,
        description="KV cache size in bytes. Needed on CPU (None there: 1 GiB); on GPU None sizes it "
        "from gpu_memory_utilization.",
    )
    enforce_eager: bool | None = Field(
        None,
        description="Skip CUDA graphs / torch.compile: starts much faster, decodes slower. "
        "None: true on CPU, false on GPU.",
    )
    enable_lora: bool | None = Field(
        None,
        description="Serve model_settings.adapter_path as a LoRA adapter. None: on with an adapter_path.",
    )
    max_lora_rank: LoraRank | None = Field(
        None,
        description="Largest LoRA rank served (vLLM's allowed values). None: the adapter's rank "
        "(adapter_config.json r) rounded up to an allowed value.",
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other `vllm.LLM` arguments, passed as given."
    )


def vllm_sampling(generation: GenerationSettings) -> VLLMSamplingSettings:
    """The generation block as vLLM sampling: vllm_settings as written, else transformers_settings mapped."""
    if generation.vllm_settings is not None:
        return generation.vllm_settings
    hf = generation.transformers_settings
    if hf.num_beams > 1:
        raise ValueError(
            f"num_beams={hf.num_beams}: beam search is not served by vLLM here; set num_beams: 1 "
            "or use_vllm: false"
        )
    sampling: dict[str, Any] = {"temperature": 0.0}
    if hf.do_sample:
        top_k = TRANSFORMERS_DEFAULT_TOP_K if hf.top_k is None else hf.top_k
        sampling = {
            "temperature": 1.0 if hf.temperature is None else hf.temperature,
            "top_p": 1.0 if hf.top_p is None else hf.top_p,
            "top_k": top_k or None,  # 0 disables top-k in transformers
        }
    return VLLMSamplingSettings(
        n=hf.num_return_sequences,
        max_tokens=hf.max_new_tokens,
        repetition_penalty=hf.repetition_penalty,
        stop=hf.stop_strings,
        logprobs=hf.logprobs,
        **sampling,
    )
