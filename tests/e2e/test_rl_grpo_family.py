"""The GRPO family through the real CLI on the tiny llama (transformers rollouts, the short-answer reward
of test_rl.py): bnpo with RLOO advantages, cispo with REINFORCE++ advantages, and GSPO (sequence-level
ratio) with dynamic sampling, the overlong penalty and a rollout correction each raise the mean reward;
the rollout dumps hold what the run trained on; truncated answers get no loss; a resumed run with the new
options together continues exactly as the uninterrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ..helpers import read_jsonl, run_turbo
from .test_rl import GRPO, assert_reward_rises, mean, train_rows

GROUP = 4  # num_generations of the fixture file


def grpo(folder: Path, *more: str, **options: object) -> None:
    sets = [f"trainer_settings.{name}={json.dumps(value)}" for name, value in options.items()]
    args = ["train_grpo", "--experiment_settings_path", str(GRPO), "--set", f"log_path={folder}"]
    run_turbo(*args, *[part for value in sets for part in ("--set", value)], *more)


def groups(rows: list[dict]) -> list[list[dict]]:
    return [rows[i : i + GROUP] for i in range(0, len(rows), GROUP)]


def test_bnpo_with_rloo_advantages_raises_the_reward(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "bnpo_rloo"
    grpo(folder, loss_type="bnpo", advantage_estimator="rloo", forward_batch_size=8)
    rows = train_rows(folder)
    assert [row["step"] for row in rows] == list(range(1, 31))
    assert_reward_rises(rows, margin=5.0)
    # every logging step (logging_steps 1) dumps its rollout: 4 prompts x 4 answers
    assert sorted((folder / "rollouts").iterdir()) == sorted(
        folder / "rollouts" / f"step_{step}.jsonl" for step in range(1, 31)
    )
    dump = read_jsonl(folder / "rollouts" / "step_30.jsonl")
    assert len(dump) == 16
    assert mean([row["reward"] for row in dump]) == pytest.approx(rows[-1]["reward/mean"], abs=1e-5)
    for group in groups(dump):
        assert len({row["id"] for row in group}) == 1
        total = sum(row["reward"] for row in group)
        for row in group:  # RLOO: the reward minus the mean of the other three answers
            assert row["advantage"] == pytest.approx(row["reward"] - (total - row["reward"]) / 3, abs=1e-5)
            assert row["reward"] == row["rewards"]["length"]
            assert row["truncated"] == (not row["finished"]) and 1 <= row["tokens"] <= 8


def test_cispo_with_reinforce_pp_advantages_raises_the_reward(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "cispo_reinforce_pp"
    grpo(
        folder, "--set", "trainer_settings.logging_steps=5",
        loss_type="cispo", epsilon_high=4.0, advantage_estimator="reinforce_pp",
    )  # fmt: skip
    rows = train_rows(folder)
    assert [row["step"] for row in rows] == [5, 10, 15, 20, 25, 30]
    first, last = rows[0]["reward/mean"], mean([row["reward/mean"] for row in rows[-2:]])
    assert last > first + 5.0, [row["reward/mean"] for row in rows]
    # dumped at the logging steps; REINFORCE++: group-centred rewards over their std across the rollout
    assert sorted(path.name for path in (folder / "rollouts").iterdir()) == [
        f"step_{step}.jsonl" for step in (10, 15, 20, 25, 30, 5)
    ]
    dump = read_jsonl(folder / "rollouts" / "step_5.jsonl")
    centred = [row["reward"] - mean([r["reward"] for r in group]) for group in groups(dump) for row in group]
    std = (sum(value**2 for value in centred) / (len(centred) - 1)) ** 0.5
    if std > 0:
        assert [row["advantage"] for row in dump] == pytest.approx(
            [c / (std + 1e-4) for c in centred], abs=1e-4
        )


def test_gspo_with_dynamic_sampling_overlong_penalty_and_correction(fixture_models, tmp_path: Path) -> None:
    folder = tmp_path / "gspo_dynamic"
    grpo(
        folder,
        importance_sampling_level="sequence",
        dynamic_sampling={"max_rounds": 3},
        overlong_penalty={"buffer": 4, "penalty": 1.0},
        rollout_correction={"level": "sequence", "mode": "mask"},
        rollout_dump_steps=10,
    )
    rows = train_rows(folder)
    assert_reward_rises(rows, margin=5.0)
    # transformers rollouts: the sampler is the training model, the correction weights are 1
    assert all(row["rollout_correction/weight_mean"] == 1.0 for row in rows)
    assert all(row["rollout_correction/masked_fraction"] == 0.0 for row in rows)
    # the overlong penalty is a reward of its own, in the total
    for row in rows:
        total = row["reward/length/mean"] + row["reward/overlong_penalty/mean"]
        assert row["reward/mean"] == pytest.approx(total, abs=1e-5)
    assert rows[0]["overlong/truncated_fraction"] > rows[-1]["overlong/truncated_fraction"]
    # once answers converge, groups of equal rewards are dropped and more prompts sampled
    assert all(1 <= row["dynamic_sampling/rounds"] <= 3 for row in rows)
    assert any(
        row["dynamic_sampling/rounds"] > 1 and row["dynamic_sampling/groups_dropped"] > 0 for row in rows
    )
    assert sorted(path.name for path in (folder / "rollouts").iterdir()) == [
        "step_10.jsonl", "step_20.jsonl", "step_30.jsonl"
    ]  # fmt: skip
    for step in (10, 20, 30):
        dump = read_jsonl(folder / "rollouts" / f"step_{step}.jsonl")
        assert len(dump) == 16  # the step always trains rollout_batch_size groups
        for row in dump:
            assert row["rewards"]["overlong_penalty"] == pytest.approx(-max(0, row["tokens"] - 4) / 4)


def test_truncated_answers_get_no_loss(fixture_models, tmp_path: Path) -> None:
    """The untrained tiny llama never ends an answer within 8 tokens: masked, nothing is trained."""
    folder = tmp_path / "masked"
    grpo(folder, "--set", "trainer_settings.max_steps=2", mask_truncated_answers=True)
    rows = train_rows(folder)
    assert [row["overlong/truncated_fraction"] for row in rows] == [1.0, 1.0]
    assert all(row["loss"] == 0.0 and row["policy_loss"] == 0.0 and row["grad_norm"] == 0.0 for row in rows)


@pytest.mark.slow
def test_grpo_family_resume_continues_as_the_uninterrupted_run(fixture_models, tmp_path: Path) -> None:
    """cispo, sequence level, RLOO, dynamic sampling, overlong penalty, rollout correction and two passes
    per rollout together: the resumed run samples the same answers (and extra prompts) and ends with the
    same adapter."""
    options = {
        "loss_type": "cispo", "importance_sampling_level": "sequence", "advantage_estimator": "rloo",
        "dynamic_sampling": {"max_rounds": 2}, "overlong_penalty": {"buffer": 4},
        "rollout_correction": {"mode": "mask"}, "num_iterations": 2, "forward_batch_size": 8,
        "max_steps": 4, "save_steps": 2,
    }  # fmt: skip
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    grpo(straight, **options)
    grpo(resumed, **options)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    shutil.rmtree(resumed / "final")
    grpo(resumed, "--set", "trainer_settings.resume_from_checkpoint=true", **options)
    rows, expected = train_rows(resumed), train_rows(straight)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    for name in ("reward/mean", "loss", "dynamic_sampling/rounds", "dynamic_sampling/groups_dropped"):
        assert [row[name] for row in rows] == pytest.approx(
            [row[name] for row in expected], rel=1e-4, abs=1e-5
        )
    for step in (3, 4):
        ours = read_jsonl(resumed / "rollouts" / f"step_{step}.jsonl")
        theirs = read_jsonl(straight / "rollouts" / f"step_{step}.jsonl")
        assert [(row["id"], row["answer"]) for row in ours] == [(row["id"], row["answer"]) for row in theirs]
    final = load_file(resumed / "final" / "adapter_model.safetensors")
    reference = load_file(straight / "final" / "adapter_model.safetensors")
    for key, tensor in reference.items():
        assert final[key].allclose(tensor, atol=1e-4), (key, (final[key] - tensor).abs().max())
