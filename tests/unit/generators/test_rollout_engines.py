"""The rollout engines' one interface: every setting of rollout_settings names an engine of the registry, the
registry opens it, and an engine returns Samples (prompt ids, answer ids, the sampler's log-prob of each
answer token, finished or cut at max_new_tokens) prompt-major. The transformers engine runs here on the tiny
llama; the colocated vLLM engine and the server are driven in tests/e2e/test_rl_vllm*.py and
test_vllm_server.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from turbo.generators import vllm_server
from turbo.generators.engines import ENGINES, engine_name, open_engine
from turbo.generators.rollout_transformers import TransformersEngine
from turbo.generators.vllm_server import VllmServerEngine
from turbo.settings.rollout import RolloutSettings

SERVER = {"url": "http://127.0.0.1:9"}


def test_every_rollout_setting_names_an_engine_of_the_registry() -> None:
    names = {
        engine_name(RolloutSettings()),
        engine_name(RolloutSettings(use_vllm=True)),
        engine_name(RolloutSettings(vllm_server=SERVER)),
    }
    assert names == set(ENGINES) == {"transformers", "vllm", "vllm_server"}


def test_open_engine_opens_the_engine_the_settings_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = SimpleNamespace(eos_token_id=2)
    with open_engine(SimpleNamespace(rollout_settings=RolloutSettings()), tokenizer) as engine:
        assert isinstance(engine, TransformersEngine)
    checked = []  # the server is asked for its model first (tests/unit/generators/test_vllm_server_remote.py)
    monkeypatch.setattr(vllm_server, "check_server", lambda *args: checked.append(args) or "m")
    settings = SimpleNamespace(
        rollout_settings=RolloutSettings(vllm_server=SERVER),
        log_path=str(tmp_path),
        model_settings=SimpleNamespace(model_path="m"),
    )
    with open_engine(settings, tokenizer) as engine:
        assert checked == [(SERVER["url"], "m", None, 600.0, None)]
        assert isinstance(engine, VllmServerEngine)
        assert engine.adapter_folder == tmp_path / "rollout_adapter" and engine.adapter_folder.is_dir()
        assert engine.server_folder == str((tmp_path / "rollout_adapter").resolve())


@pytest.fixture(scope="module")
def tiny(fixture_models: Path) -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = fixture_models / "llama_tiny"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return AutoTokenizer.from_pretrained(path), model


def test_transformers_samples_carry_the_samplers_token_logps(tiny: tuple) -> None:
    tokenizer, model = tiny
    prompts = [tokenizer(text)["input_ids"] for text in ("hello there", "one two three four")]
    engine = TransformersEngine(tokenizer, RolloutSettings(max_new_tokens=6, temperature=0.9, top_k=20))
    torch.manual_seed(0)
    samples = engine.sample(model, prompts, n=3, greedy=False, seed=0)
    assert [sample.prompt_ids for sample in samples] == [prompts[0]] * 3 + [prompts[1]] * 3
    for sample in samples:
        assert len(sample.logps) == len(sample.answer_ids) <= 6
        assert sample.finished == (sample.answer_ids[-1] == tokenizer.eos_token_id)
        assert sample.finished or len(sample.answer_ids) == 6  # else cut at max_new_tokens
        ids = torch.tensor([sample.prompt_ids + sample.answer_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(sample.prompt_ids) - 1 : -1].float()
        expected = logits.log_softmax(-1).gather(1, torch.tensor(sample.answer_ids)[:, None]).squeeze(1)
        torch.testing.assert_close(torch.tensor(sample.logps), expected, atol=1e-4, rtol=1e-4)


def test_greedy_transformers_samples_follow_rollout_settings(tiny: tuple) -> None:
    tokenizer, model = tiny
    prompt = tokenizer("hello there")["input_ids"]
    engine = TransformersEngine(tokenizer, RolloutSettings(max_new_tokens=4, temperature=5.0))
    first, second = (engine.sample(model, [prompt], n=1, greedy=True, seed=seed)[0] for seed in (0, 1))
    assert first == second and len(first.answer_ids) <= 4  # greedy: temperature None, whatever the seed


def test_generation_batch_1_samples_each_prompt_by_the_seed_and_the_prompt_alone(tiny: tuple) -> None:
    """What makes N ranks sample the answers of one process: a prompt's answers do not depend on the other
    prompts of the call, on their order, or on the process's random state (which is left as it was)."""
    tokenizer, model = tiny
    first, second = (tokenizer(text)["input_ids"] for text in ("hello there", "one two three four"))
    engine = TransformersEngine(tokenizer, RolloutSettings(max_new_tokens=6, generation_batch=1))
    together = engine.sample(model, [first, second], n=3, greedy=False, seed=7)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    alone = engine.sample(model, [second], n=3, greedy=False, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert alone == together[3:]
    assert engine.sample(model, [second, first], n=3, greedy=False, seed=7)[3:] == together[:3]
    other_step = engine.sample(model, [second], n=3, greedy=False, seed=8)
    assert [s.answer_ids for s in other_step] != [s.answer_ids for s in alone]
