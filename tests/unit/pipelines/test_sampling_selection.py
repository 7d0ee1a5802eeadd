import math
import random

import pytest

from turbo.pipelines.sampling.random import random_choice
from turbo.pipelines.sampling.rm import best_answers
from turbo.pipelines.sampling.rso import accept_probability, rejection_sample


class FixedDraws(random.Random):
    """A generator whose random() returns the given numbers in order."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


def test_acceptance_follows_the_formula() -> None:
    rewards = {"a": 1.0, "b": 0.5, "c": 0.0}
    beta = 0.5
    # round 1: r_max = 1; p(a) = 1, p(b) = e^-1 = 0.368, p(c) = e^-2 = 0.135
    assert accept_probability(0.5, 1.0, beta) == pytest.approx(math.exp(-1))
    # 0.30 < 0.368 accepts b, 0.20 >= 0.135 rejects c; round 2: r_max = 0, so c is accepted by any draw
    assert rejection_sample(rewards, 3, beta, FixedDraws([0.99, 0.30, 0.20, 0.999])) == ["a", "b", "c"]
    # 0.9 >= 0.368 rejects b, 0.1 < 0.135 accepts c; round 2: b is the best left
    assert rejection_sample(rewards, 3, beta, FixedDraws([0.5, 0.9, 0.1, 0.5])) == ["a", "c", "b"]
    # stops as soon as N are accepted: one draw per candidate examined
    draws = FixedDraws([0.0, 0.0, 0.0])
    assert rejection_sample(rewards, 2, beta, draws) == ["a", "b"]
    assert draws.draws == [0.0]


def test_never_more_than_n() -> None:
    rng = random.Random(0)
    for _ in range(200):
        rewards = {str(i): rng.gauss(0, 1) for i in range(rng.randint(1, 8))}
        n = rng.randint(1, 5)
        accepted = rejection_sample(rewards, n, rng.choice([0.01, 0.5, 5.0]), rng)
        assert len(accepted) == min(n, len(rewards))
        assert len(set(accepted)) == len(accepted)


def test_small_beta_keeps_only_the_best_per_round() -> None:
    rewards = {"a": 0.0, "b": 1.0, "c": 2.0}
    assert rejection_sample(rewards, 2, 1e-6, random.Random(3)) == ["c", "b"]


def test_best_answers_and_random_choice() -> None:
    assert best_answers({"a": 0.1, "b": 0.9, "c": 0.5}, 2) == ["b", "c"]
    ids = [str(i) for i in range(6)]
    first = random_choice(ids, 3, random.Random("s"))
    assert first == random_choice(ids, 3, random.Random("s"))
    assert len(first) == 3 and first == sorted(first, key=ids.index)
    assert random_choice(ids[:2], 3, random.Random(0)) == ids[:2]
