"""train_grpo and train_ppo through the real CLI on the tiny llama with transformers rollouts: the mean
reward rises clearly on a rule reward the model can learn quickly (short answers, in characters), every
per-step metric is logged, the final adapter (and value model) are saved, evaluation writes its
answers and cherry-picks, and a resumed PPO run continues exactly as the uninterrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ..helpers import CONFIGS, read_jsonl, run_turbo, train_rows

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
PPO = CONFIGS / "train" / "ppo" / "lora.json"
COMMON_METRICS = {
    "loss",
    "reward/mean",
    "reward/std",
    "reward/length/mean",
    "reward/length/std",
    "kl",
    "policy_loss",
    "clip_fraction",
    "entropy",
    "answer_length",
    "rollout_seconds",
    "train_seconds",
    "rollout/logp_gap",
}
PHASES = {  # where a step's time goes (issue 24 item 4)
    "time/weight_sync",
    "time/generation",
    "time/rewards",
    "time/old_logps",
    "time/reference",
    "time/forward_backward",
    "time/optimizer",
}


def rl_rows(folder: Path) -> list[dict]:
    return train_rows(folder, "reward/mean")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def assert_reward_rises(rows: list[dict], margin: float) -> None:
    rewards = [row["reward/mean"] for row in rows]
    first, last = mean(rewards[:5]), mean(rewards[-5:])
    assert last > first + margin, rewards


def test_grpo_mean_reward_rises(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "grpo"
    result = run_turbo("train_grpo", "--experiment_settings_path", GRPO, "--set", f"log_path={folder}")
    assert "answers scored padding-free" in result.stdout + result.stderr  # trainer_settings.padding_free
    rows = rl_rows(folder)
    assert [row["step"] for row in rows] == list(range(1, 31))
    assert rows[0].keys() >= COMMON_METRICS
    assert_reward_rises(rows, margin=5.0)  # characters per answer: about 18 at the start
    assert mean([row["answer_length"] for row in rows[-5:]]) < mean(
        [row["answer_length"] for row in rows[:5]]
    )
    # the ratio uses the training model's log-probs; with transformers rollouts they are the engine's too
    assert all(row["rollout/logp_gap"] < 1e-4 for row in rows)
    assert (folder / "final" / "adapter_model.safetensors").is_file()
    assert (folder / "report.html").is_file()
    # each step's time by phase: sampling and scoring are the parts of rollout_seconds; beta 0 and one
    # pass over the rollout compute no reference and no old log-probs
    assert rows[0].keys() >= PHASES
    for row in rows:
        assert row["time/generation"] > 0 and row["time/rewards"] > 0
        assert row["time/generation"] + row["time/rewards"] <= row["rollout_seconds"]
        assert row["time/forward_backward"] > 0 and row["time/optimizer"] > 0
        assert row["time/reference"] == 0 and row["time/old_logps"] == 0
        assert row["time/forward_backward"] <= row["train_seconds"]  # the part of the step after sampling


def test_grpo_evaluation_and_cherry_picks(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "grpo_eval"
    chat = "tests/fixtures/datasets/chat/val_chat.jsonl"
    source = {"name": "val_prompts", "records_path": chat, "sample_rate": 1.0}
    val = {"dataset_type": "chat", "sources": [source]}
    cherry = {"dataset_settings": val, "generator_transformers_settings": {"max_new_tokens": 8}}
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", "trainer_settings.max_steps=4",
        "--set", "trainer_settings.eval_strategy=steps",
        "--set", "trainer_settings.eval_steps=2",
        "--set", "trainer_settings.eval_on_start=true",
        "--set", "trainer_settings.per_device_eval_batch_size=3",
        "--set", "trainer_settings.loss_type=dapo",
        "--set", "trainer_settings.beta=0.1",
        "--set", "trainer_settings.num_iterations=2",
        "--set", f"val_dataset_settings={json.dumps(val)}",
        "--set", f"cherry_pick_settings={json.dumps(cherry)}",
    )  # fmt: skip
    evals = [row for row in read_jsonl(folder / "metrics.jsonl") if "eval_reward/mean" in row]
    assert [row["step"] for row in evals] == [0, 2, 4]
    for step in (0, 2, 4):
        answers = read_jsonl(folder / "eval_answers" / f"step_{step}.jsonl")
        assert len(answers) == 6 and all(row["reward"] == row["rewards"]["length"] for row in answers)
        assert mean([row["reward"] for row in answers]) == pytest.approx(
            next(row for row in evals if row["step"] == step)["eval_reward/mean"]
        )
        assert len(read_jsonl(folder / "cherry_picks" / f"step_{step}.jsonl")) == 6
    trained = rl_rows(folder)
    assert all(row["kl"] > 0 for row in trained[1:])  # beta > 0: the reference is the adapter disabled


def ppo_settings(folder: Path, *more: str) -> list[str]:
    return ["train_ppo", "--experiment_settings_path", str(PPO), "--set", f"log_path={folder}", *more]


def test_ppo_mean_reward_rises(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "ppo"
    result = run_turbo(*ppo_settings(folder))
    assert "answers scored padding-free" in result.stdout + result.stderr  # the value model's passes too
    rows = rl_rows(folder)
    assert [row["step"] for row in rows] == list(range(1, 17))
    assert COMMON_METRICS | PHASES | {"value_loss", "value_clip_fraction", "score", "value"} <= rows[0].keys()
    for row in rows:  # PPO scores the old policy and the reference each step, after sampling
        assert row["time/old_logps"] > 0 and row["time/reference"] > 0
        learn = row["time/old_logps"] + row["time/reference"] + row["time/forward_backward"]
        assert learn <= row["train_seconds"]
    assert_reward_rises(rows, margin=3.0)
    assert (folder / "final" / "value_model" / "model.safetensors").is_file()
    assert (folder / "final" / "adapter_model.safetensors").is_file()


def test_ppo_with_a_reward_model_starts_the_value_model_from_it(fixture_models, tmp_path: Path) -> None:
    """reward_model reward (a train_rm-style classifier) plus a rule; the value model is the reward model."""
    folder = tmp_path / "ppo_rm"
    rm = {
        "model_path": "tests/fixtures/models/llama_rm",
        "model_type": "seq_cls",
        "model_kwargs": {"num_labels": 1},
    }
    rewards = [
        {"type": "reward_model", "model_settings": rm, "weight": 0.5},
        {"type": "regex", "pattern": "a"},
    ]
    run_turbo(
        *ppo_settings(
            folder,
            "--set", "trainer_settings.max_steps=2",
            "--set", f"reward_settings={json.dumps(rewards)}",
            "--set", "trainer_settings.rollout_correction={}",
        )
    )  # fmt: skip
    rows = rl_rows(folder)
    for row in rows:
        assert row["reward/mean"] == pytest.approx(
            0.5 * row["reward/reward_model/mean"] + row["reward/regex/mean"], abs=1e-5
        )
        assert row["rollout_correction/weight_mean"] == 1.0  # transformers rollouts: the policy sampled
    for step in (1, 2):  # the rollout of every logged step, one row per answer, each reward function
        dump = read_jsonl(folder / "rollouts" / f"step_{step}.jsonl")
        assert len(dump) == 8 and all(row["rewards"].keys() == {"reward_model", "regex"} for row in dump)
        for row in dump:
            total = 0.5 * row["rewards"]["reward_model"] + row["rewards"]["regex"]
            assert row["reward"] == pytest.approx(total, abs=1e-5)
    value = load_file(folder / "final" / "value_model" / "model.safetensors")
    start = load_file("tests/fixtures/models/llama_rm/model.safetensors")
    assert value.keys() == start.keys()
    assert not value["score.weight"].allclose(start["score.weight"])  # it trained, from the reward model


@pytest.mark.slow
def test_ppo_resume_continues_as_the_uninterrupted_run(fixture_models, tmp_path: Path) -> None:
    """policy, value model, optimiser, RNG and data position all come back from the checkpoint."""
    short = ("--set", "trainer_settings.max_steps=4", "--set", "trainer_settings.save_steps=2")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_turbo(*ppo_settings(straight, *short))
    run_turbo(*ppo_settings(resumed, *short))
    # as if the run had been stopped after its first checkpoint
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    shutil.rmtree(resumed / "final")
    assert (resumed / "checkpoints" / "checkpoint-2" / "value_model" / "model.safetensors").is_file()
    run_turbo(*ppo_settings(resumed, *short, "--set", "trainer_settings.resume_from_checkpoint=true"))
    rows, expected = rl_rows(resumed), rl_rows(straight)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    for name in ("reward/mean", "loss", "value_loss", "value"):
        assert [row[name] for row in rows] == pytest.approx(
            [row[name] for row in expected], rel=1e-4, abs=1e-5
        )
    for name in ("value_model/model.safetensors", "adapter_model.safetensors"):
        final, reference = load_file(resumed / "final" / name), load_file(straight / "final" / name)
        for key, tensor in reference.items():
            # float32 reductions differ by rounding between a resumed and a straight process on some
            # CPUs; a wrong resume (optimiser, RNG or data position) moves weights by the lr scale
            assert final[key].allclose(tensor, atol=1e-4), (key, (final[key] - tensor).abs().max())


def test_bad_reward_function_is_reported_before_training(fixture_models, tmp_path: Path) -> None:
    result = run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={tmp_path / 'bad'}",
        "--set", 'reward_settings=[{"type": "python", "function": "no_such_module:score"}]',
        expect=2,
    )  # fmt: skip
    assert "no_such_module:score" in result.stderr and "Traceback" not in result.stderr


NEW_TOKEN = ("--set", 'model_settings.embeddings_initialization_strategy={"<|think|>": "hello"}',
             "--set", "model_settings.resize_token_embeddings=true")  # fmt: skip


def test_ppo_and_grpo_with_a_new_token_resize_every_model_that_reads_the_tokenizer(
    fixture_models, tmp_path: Path
) -> None:
    """A token added to the tokenizer grows the policy, and with it the value model (PPO) and a separate
    reference (GRPO's ref_model_settings), which read the same tokenizer."""
    from transformers import AutoTokenizer

    ppo = tmp_path / "ppo_new_token"
    run_turbo(*ppo_settings(ppo, "--set", "trainer_settings.max_steps=2", *NEW_TOKEN))
    size = len(AutoTokenizer.from_pretrained(ppo / "final"))
    assert size == 573  # llama_tiny's 572 and <|think|>
    value = load_file(ppo / "final" / "value_model" / "model.safetensors")
    assert value["model.embed_tokens.weight"].shape[0] == size
    assert [row["step"] for row in train_rows(ppo)] == [1, 2]

    grpo = tmp_path / "grpo_new_token"
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={grpo}",
        "--set", "trainer_settings.max_steps=2",
        "--set", "trainer_settings.beta=0.1",
        "--set", 'ref_model_settings={"model_path": "tests/fixtures/models/llama_tiny"}',
        *NEW_TOKEN,
    )  # fmt: skip
    rows = train_rows(grpo)
    assert [row["step"] for row in rows] == [1, 2] and all("kl" in row for row in rows)
    assert (grpo / "final" / "adapter_model.safetensors").is_file()
