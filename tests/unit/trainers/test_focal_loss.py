import math

import pytest
import torch
import torch.nn.functional as F

from turbo.trainers.losses.focal import balanced_class_weights, focal_loss


def test_gamma_zero_without_alpha_is_cross_entropy() -> None:
    logits = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    assert torch.allclose(focal_loss(logits, labels), F.cross_entropy(logits, labels), atol=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_matches_formula(gamma: float) -> None:
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1], [-1.0, 1.5]])
    labels = torch.tensor([0, 1, 1])
    alpha = torch.tensor([0.25, 0.75])
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        p = math.exp(row[label]) / sum(math.exp(x) for x in row)
        expected += -alpha[label].item() * (1 - p) ** gamma * math.log(p)
    expected /= len(labels)
    assert focal_loss(logits, labels, gamma=gamma, alpha=alpha).item() == pytest.approx(expected, rel=1e-6)


def test_gamma_down_weights_easy_examples() -> None:
    easy = torch.tensor([[5.0, -5.0]])
    label = torch.tensor([0])
    assert focal_loss(easy, label, gamma=2.0) < 1e-3 * focal_loss(easy, label)


def test_balanced_weights() -> None:
    assert balanced_class_weights([0, 0, 0, 1], 2) == pytest.approx([4 / 6, 4 / 2])
    assert balanced_class_weights([0, 1], 3) == pytest.approx([2 / 3, 2 / 3, 1.0])
