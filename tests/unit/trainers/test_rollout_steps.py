"""Dynamic sampling's rollout surgery (keeping informative groups across rounds, topping up when the rounds
run out), the prompts of extra rounds, the overlong penalty and truncated mask on a rollout, the
correction being 1 with transformers rollouts, and the rollout dump rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from turbo.trainers.dynamic_sampling import draw_prompts, fill_groups, take_rows
from turbo.trainers.logps import answer_rows
from turbo.trainers.rollout import Rollout, answer_mask
from turbo.trainers.rollout_dumps import dump_due, rollout_rows
from turbo.trainers.rollout_steps import loss_mask, penalise_overlong, rollout_correction

PAD = 0


def rollout(name: str, rewards: list[float], answers: list[list[int]]) -> Rollout:
    """Two answers per prompt; prompt ids of different lengths per rollout so that widths differ."""
    prompts = [{"id": f"{name}{i // 2}", "prompt": f"p{name}{i // 2}", "prompt_ids": [5] * (2 + len(name)),
                "reference": "r"} for i in range(len(rewards))]  # fmt: skip
    batch = answer_rows([p["prompt_ids"] for p in prompts], answers, PAD)
    return Rollout(
        batch=batch,
        starts=torch.tensor([len(p["prompt_ids"]) - 1 for p in prompts]),
        lengths=torch.tensor([len(a) for a in answers]),
        prompts=prompts,
        answers=[f"a{name}{i}" for i in range(len(rewards))],
        finished=[a[-1] == 2 for a in answers],
        engine_logps=[[-0.5] * len(a) for a in answers],
        rewards=torch.tensor(rewards),
        per_function={"rule": rewards},
        seconds=1.0,
    )


def test_fill_groups_keeps_informative_groups_across_rounds() -> None:
    first = rollout("a", [1, 1, 0, 1], [[3, 2], [3, 3, 2], [4], [4, 4]])  # groups: equal, informative
    more = {1: rollout("bb", [0, 0, 2, 1], [[6, 6, 6, 6], [6], [7, 2], [7]])}  # equal, informative
    result, metrics = fill_groups(first, more.__getitem__, 2, groups=2, max_rounds=3, pad_token_id=PAD)
    assert result.answers == ["aa2", "aa3", "abb2", "abb3"]
    assert result.rewards.tolist() == [0, 1, 2, 1]
    assert result.per_function == {"rule": [0, 1, 2, 1]}
    assert [p["id"] for p in result.prompts] == ["a1", "a1", "bb1", "bb1"]
    assert result.lengths.tolist() == [1, 2, 2, 1] and result.starts.tolist() == [2, 2, 3, 3]
    assert result.finished == [False, False, True, False] and result.seconds == 2.0
    # each row's ids are its own prompt + answer, right-padded to the longest kept row
    expected = answer_rows([[5] * 3, [5] * 3, [5] * 4, [5] * 4], [[4], [4, 4], [7, 2], [7]], PAD)
    for key, value in expected.items():
        assert result.batch[key][:, : value.shape[1]].tolist() == value.tolist(), key
        assert not result.batch["attention_mask"][:, value.shape[1] :].any()
    assert metrics == {
        "dynamic_sampling/rounds": 2.0,
        "dynamic_sampling/groups_dropped": 2.0,
        "dynamic_sampling/informative_groups": 2.0,
    }


def test_fill_groups_tops_up_with_dropped_groups_when_the_rounds_run_out() -> None:
    first = rollout("a", [1, 1, 0, 1], [[3], [3], [4], [4]])
    calls = []

    def more(round: int) -> Rollout:
        calls.append(round)
        return rollout("bb", [3, 3, 5, 5], [[6], [6], [7], [7]])

    result, metrics = fill_groups(first, more, 2, groups=2, max_rounds=2, pad_token_id=PAD)
    assert calls == [1]
    assert result.rewards.tolist() == [1, 1, 0, 1]  # the informative group and the first dropped one
    assert metrics["dynamic_sampling/rounds"] == 2 and metrics["dynamic_sampling/groups_dropped"] == 2
    assert metrics["dynamic_sampling/informative_groups"] == 1
    whole, _ = fill_groups(first, more, 2, groups=2, max_rounds=1, pad_token_id=PAD)
    assert whole is first and calls == [1]  # max_rounds 1: nothing more is sampled


def test_take_rows_of_one_rollout_is_the_same_rollout() -> None:
    first = rollout("a", [1, 2, 0, 1], [[3, 2], [3, 3, 2], [4], [4, 4]])
    same = take_rows([first], [0, 1, 2, 3], PAD)
    for key in first.batch:
        assert torch.equal(same.batch[key], first.batch[key])
    assert same.answers == first.answers and same.engine_logps == first.engine_logps


def test_draw_prompts_is_seeded() -> None:
    prompts = [{"id": str(i)} for i in range(10)]
    assert draw_prompts(prompts, 4, 7) == draw_prompts(prompts, 4, 7)
    assert draw_prompts(prompts, 4, 7) != draw_prompts(prompts, 4, 8)
    assert len({p["id"] for p in draw_prompts(prompts, 10, 1)}) == 10  # without replacement
    assert len(draw_prompts(prompts[:2], 5, 1)) == 5


def test_overlong_penalty_and_truncated_mask_on_a_rollout() -> None:
    r = rollout("a", [1.0, 0.0], [[3, 3, 3, 3], [3, 2]])  # first cut at 4 tokens, second finished
    penalise_overlong(r, max_tokens=4, settings=SimpleNamespace(buffer=2, penalty=0.5))
    assert r.rewards.tolist() == pytest.approx([0.5, 0.0]) and r.per_function["overlong_penalty"] == [
        -0.5,
        0.0,
    ]
    mask = answer_mask(r.lengths, 4)
    assert loss_mask(r, mask, True).tolist() == [[False] * 4, [True, True, False, False]]
    assert loss_mask(r, mask, False) is mask


def test_rollout_correction_is_one_with_transformers_rollouts_and_off_by_default() -> None:
    r = rollout("a", [1.0, 0.0], [[3, 3], [3, 2]])
    mask = answer_mask(r.lengths, 2)
    train = torch.full((2, 2), -1.5)
    transformers = SimpleNamespace(separate_sampler=False)
    vllm = SimpleNamespace(separate_sampler=True)
    settings = SimpleNamespace(level="token", mode="truncate", cap=2.0)
    assert rollout_correction(None, vllm, r, train, mask) is None
    same = rollout_correction(settings, transformers, r, train, mask)
    assert same.weights.unique().tolist() == [1.0] and same.metrics()["rollout_correction/weight_mean"] == 1.0
    corrected = rollout_correction(settings, vllm, r, train, mask)  # engine -0.5, train -1.5
    assert corrected.weights.flatten().tolist() == pytest.approx([torch.e**-1] * 4)


def test_dump_rows_and_schedule() -> None:
    r = rollout("a", [1.0, 0.0], [[3, 3, 3], [3, 2]])
    rows = rollout_rows(r, [0.7, -0.7])
    assert rows[1] == {
        "id": "a0", "prompt": "pa0", "reference": "r", "answer": "aa1", "reward": 0.0,
        "rewards": {"rule": 0.0}, "advantage": -0.7, "finished": True, "truncated": False, "tokens": 2,
    }  # fmt: skip
    assert [step for step in range(1, 11) if dump_due(step, None, 5)] == [5, 10]  # the logging steps
    assert [step for step in range(1, 11) if dump_due(step, 3, 5)] == [3, 6, 9]
    assert not any(dump_due(step, 0, 1) for step in range(1, 11))
