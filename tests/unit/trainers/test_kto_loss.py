import math

import pytest
import torch

from turbo.trainers.losses.kto import kto_loss


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("kl", [0.3, -0.4])
def test_matches_formula(kl: float) -> None:
    policy = torch.tensor([-10.0, -12.0, -8.0, -20.0])
    reference = torch.tensor([-11.0, -11.5, -9.0, -18.0])
    desirable = torch.tensor([True, False, True, False])
    beta, wd, wu = 0.2, 1.33, 0.7
    losses, rewards = kto_loss(policy, reference, desirable, torch.tensor(kl), beta, wd, wu)
    z = max(kl, 0.0)  # the reference point is the KL estimate clamped at 0
    for i in range(4):
        r = policy[i].item() - reference[i].item()
        expected = wd * (1 - sigmoid(beta * (r - z))) if desirable[i] else wu * (1 - sigmoid(beta * (z - r)))
        assert losses[i].item() == pytest.approx(expected, rel=1e-6)
        assert rewards[i].item() == pytest.approx(beta * r, rel=1e-6)


def test_gradient_raises_desirable_and_lowers_undesirable() -> None:
    policy = torch.tensor([-5.0, -5.0], requires_grad=True)
    losses, _ = kto_loss(policy, torch.tensor([-5.0, -5.0]), torch.tensor([True, False]), torch.tensor(0.0))
    losses.mean().backward()
    assert policy.grad[0] < 0 < policy.grad[1]  # descent raises log p of desirable, lowers undesirable


def test_kl_is_not_differentiated() -> None:
    kl = torch.tensor(0.5, requires_grad=True)
    losses, _ = kto_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([True]), kl)
    assert not losses.requires_grad
