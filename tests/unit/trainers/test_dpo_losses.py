"""Each DPO-family loss against its formula, and against TRL's implementation where TRL has it."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.experimental.cpo import CPOTrainer
from trl.experimental.orpo import ORPOTrainer

from turbo.settings.dpo_losses import DpoLossSettings
from turbo.trainers.losses.dpo import LOSSES, PairLoss
from turbo.trainers.losses.reward import pairwise_reward_loss

TOL = {"atol": 1e-6, "rtol": 0}
LOSS_TYPES = sorted(LOSSES)


def logps(seed: int = 0, batch: int = 6, scale: float = 20.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    values = -scale * torch.rand(4, batch, generator=generator, dtype=torch.float64) - 0.05
    return dict(
        zip(
            ("policy_chosen", "policy_rejected", "reference_chosen", "reference_rejected"),
            values,
            strict=True,
        )
    )


def averaged(seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-token averages: small negative numbers (log-probs of one token)."""
    return logps(seed, scale=3.0)


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logsig(x: float) -> float:
    return math.log(sig(x))


def rows(tensors: dict[str, torch.Tensor]) -> list[tuple[float, float, float, float]]:
    names = ("policy_chosen", "policy_rejected", "reference_chosen", "reference_rejected")
    return list(zip(*(tensors[name].tolist() for name in names), strict=True))


def log1mexp(x: float) -> float:
    return math.log(1 - math.exp(x))


def test_every_settings_loss_type_has_a_function() -> None:
    from typing import get_args

    union = get_args(DpoLossSettings)[0]
    settings_types = {klass.model_fields["loss_type"].annotation.__args__[0] for klass in get_args(union)}
    assert settings_types == set(LOSSES)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_every_loss_has_a_docstring_with_a_formula_and_paper(loss_type: str) -> None:
    doc = LOSSES[loss_type].function.__doc__ or ""
    assert "L = " in doc and "arXiv:" in doc, loss_type


# --- against the formula (plain Python floats, one pair at a time) ---------------------------------

FORMULAS = {
    "sigmoid": lambda w, x, rw, rl, beta=0.1, label_smoothing=0.2: (
        -(1 - label_smoothing) * logsig(beta * ((w - rw) - (x - rl)))
        - label_smoothing * logsig(-beta * ((w - rw) - (x - rl)))
    ),
    "hinge": lambda w, x, rw, rl, beta=0.1: max(0.0, 1 - beta * (w - x)),
    "ipo": lambda w, x, rw, rl, beta=0.1: ((w - rw) - (x - rl) - 1 / (2 * beta)) ** 2,
    "slic_hf": lambda w, x, rw, rl, beta=1.0, delta=1.0, lam=0.1: max(0.0, delta - beta * (w - x)) - lam * w,
    "cpo": lambda w, x, rw, rl, beta=0.1: -logsig(beta * (w - x)) - w,
    "orpo": lambda w, x, rw, rl, beta=0.1: -w - beta * logsig((w - x) - (log1mexp(w) - log1mexp(x))),
    "simpo": lambda w, x, rw, rl, beta=2.0, gamma=1.0: -logsig(beta * (w - x) - gamma),
    "asft": lambda w, x, rw, rl, beta=0.1: (
        -w + beta * (-logsig(w - log1mexp(w)) - logsig(-(x - log1mexp(x))))
    ),
    "apo_zero": lambda w, x, rw, rl, beta=0.1: (1 - sig(beta * (w - rw))) + sig(beta * (x - rl)),
    "apo_down": lambda w, x, rw, rl, beta=0.1: sig(beta * (w - rw)) + (1 - sig(beta * ((w - rw) - (x - rl)))),
    "dpop": lambda w, x, rw, rl, beta=0.1, lam=50.0: (
        -logsig(beta * ((w - rw) - (x - rl) - lam * max(0.0, rw - w)))
    ),
    "nca_pair": lambda w, x, rw, rl, beta=0.1: (
        -logsig(beta * (w - rw)) - 0.5 * logsig(-beta * (w - rw)) - 0.5 * logsig(-beta * (x - rl))
    ),
}
PARAMS = {"sigmoid": {"label_smoothing": 0.2}}
REFERENCE_FREE = {"hinge", "slic_hf", "cpo", "orpo", "simpo", "asft"}  # with their default norm: false


def call(loss_type: str, tensors: dict[str, torch.Tensor], **params: float) -> PairLoss:
    import inspect

    function = LOSSES[loss_type].function
    accepted = inspect.signature(function).parameters
    return function(**{k: v for k, v in tensors.items() if k in accepted}, **params)


@pytest.mark.parametrize("loss_type", sorted(FORMULAS))
def test_loss_matches_its_formula(loss_type: str) -> None:
    tensors = averaged(1) if LOSSES[loss_type].average_log_prob else logps(1)
    tensors = {k: v / 4 if loss_type in {"hinge", "slic_hf", "cpo"} else v for k, v in tensors.items()}
    params = PARAMS.get(loss_type, {})
    result = call(loss_type, tensors, **params)
    expected = [FORMULAS[loss_type](*row, **params) for row in rows(tensors)]
    torch.testing.assert_close(result.losses, torch.tensor(expected, dtype=torch.float64), **TOL)
    beta = params.get("beta", {"simpo": 2.0, "slic_hf": 1.0}.get(loss_type, 0.1))
    chosen = tensors["policy_chosen"] - (0 if loss_type in REFERENCE_FREE else tensors["reference_chosen"])
    torch.testing.assert_close(result.chosen_rewards, beta * chosen, **TOL)


def test_norm_variants_subtract_the_reference() -> None:
    tensors = logps(2)
    h = (tensors["policy_chosen"] - tensors["reference_chosen"]) - (
        tensors["policy_rejected"] - tensors["reference_rejected"]
    )
    torch.testing.assert_close(
        call("hinge", tensors, beta=0.1, norm=True).losses, torch.relu(1 - 0.1 * h), **TOL
    )
    expected = torch.relu(2.0 - 0.5 * h) - 0.3 * tensors["policy_chosen"]
    result = call("slic_hf", tensors, beta=0.5, delta=2.0, lam=0.3, norm=True)
    torch.testing.assert_close(result.losses, expected, **TOL)
    expected = -F.logsigmoid(0.1 * h) - tensors["policy_chosen"]
    torch.testing.assert_close(call("cpo", tensors, beta=0.1, norm=True).losses, expected, **TOL)


def test_sigmoid_with_margin_subtracts_the_margin() -> None:
    tensors = logps(3)
    margin = torch.linspace(0, 2, 6, dtype=torch.float64)
    result = call("sigmoid_with_margin", {**tensors, "margin": margin}, beta=0.1)
    expected = [
        -logsig(0.1 * ((w - rw) - (x - rl)) - m)
        for (w, x, rw, rl), m in zip(rows(tensors), margin.tolist(), strict=True)
    ]
    torch.testing.assert_close(result.losses, torch.tensor(expected, dtype=torch.float64), **TOL)


def test_paired_kto_uses_the_batch_kl_as_reference_point() -> None:
    tensors = logps(4, scale=2.0)
    beta = 0.5
    chosen = (tensors["policy_chosen"] - tensors["reference_chosen"]).tolist()
    rejected = (tensors["policy_rejected"] - tensors["reference_rejected"]).tolist()
    z_w, z_l = max(0.0, sum(chosen) / len(chosen)), max(0.0, sum(rejected) / len(rejected))
    expected = [
        ((1 - sig(beta * (w - z_l))) + (1 - sig(beta * (z_w - r)))) / 2
        for w, r in zip(chosen, rejected, strict=True)
    ]
    result = call("kto", tensors, beta=beta)
    torch.testing.assert_close(result.losses, torch.tensor(expected, dtype=torch.float64), **TOL)


def test_dpop_equals_dpo_while_the_chosen_likelihood_stays_above_the_reference() -> None:
    tensors = logps(5)
    tensors["policy_chosen"] = tensors["reference_chosen"] + 0.5
    torch.testing.assert_close(call("dpop", tensors).losses, call("sigmoid", tensors).losses, **TOL)


def test_reward_model_loss() -> None:
    chosen, rejected = (
        torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64),
        torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64),
    )
    expected = [-logsig(w - x) for w, x in zip(chosen.tolist(), rejected.tolist(), strict=True)]
    torch.testing.assert_close(
        pairwise_reward_loss(chosen, rejected), torch.tensor(expected, dtype=torch.float64), **TOL
    )


# --- against TRL ------------------------------------------------------------------------------------


class _FakeModel:
    """Returns the per-token log-probs TRL's DPOTrainer reads from its fused LM head."""

    training = True

    def __init__(self, per_token: torch.Tensor) -> None:
        self.per_token = per_token

    def __call__(self, **kwargs: object) -> SimpleNamespace:
        zeros = torch.zeros_like(self.per_token)
        return SimpleNamespace(
            log_probs=self.per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool()
        )


def trl_dpo_losses(
    loss_type: str, tensors: dict[str, torch.Tensor], lengths: torch.Tensor, beta: float
) -> torch.Tensor:
    """Per-pair losses of TRL's DPOTrainer._compute_loss, one pair per call (it returns the batch mean)."""
    losses = []
    for i in range(len(lengths)):
        width = int(lengths.max()) + 1
        completion = torch.zeros(2, width)
        completion[0, : int(lengths[i])] = 1  # IPO normalises by the completion token count
        completion[1, : int(lengths[i])] = 1
        per_token = torch.zeros(2, width - 1, dtype=torch.float64)
        per_token[0, 0], per_token[1, 0] = tensors["policy_chosen"][i], tensors["policy_rejected"][i]
        accelerator = SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x)
        stub = SimpleNamespace(
            model=_FakeModel(per_token), accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
            precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=[loss_type],
            loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
            _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
        )  # fmt: skip
        inputs = {
            "input_ids": torch.zeros(2, width, dtype=torch.long),
            "attention_mask": torch.ones(2, width, dtype=torch.long),
            "completion_mask": completion,
            "ref_chosen_logps": tensors["reference_chosen"][i : i + 1],
            "ref_rejected_logps": tensors["reference_rejected"][i : i + 1],
        }
        losses.append(DPOTrainer._compute_loss(stub, stub.model, inputs, return_outputs=False))
    return torch.stack(losses)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo", "nca_pair", "apo_zero", "apo_down"])
def test_reference_losses_match_trl_dpo_trainer(loss_type: str) -> None:
    tensors = logps(6, scale=8.0)
    lengths = torch.tensor([3, 7, 1, 12, 5, 9])
    ours_inputs = tensors
    params: dict[str, object] = {"beta": 0.2}
    if loss_type == "hinge":
        params["norm"] = True  # TRL's hinge subtracts the reference log-ratio
    if LOSSES[loss_type].average_log_prob:  # IPO: ours reads averaged log-probs; TRL averages itself
        ours_inputs = {name: value / lengths for name, value in tensors.items()}
    expected = trl_dpo_losses(loss_type, tensors, lengths, beta=0.2)
    torch.testing.assert_close(call(loss_type, ours_inputs, **params).losses, expected, **TOL)


def _cpo_stub(loss_type: str, beta: float, **extra: float) -> SimpleNamespace:
    return SimpleNamespace(
        alpha=0.0, beta=beta, loss_type=loss_type, label_smoothing=extra.get("label_smoothing", 0.0),
        simpo_gamma=extra.get("gamma", 0.5), accelerator=SimpleNamespace(device="cpu"),
    )  # fmt: skip


def test_simpo_matches_trl() -> None:
    tensors = averaged(7)
    expected, _, _ = CPOTrainer.cpo_loss(
        _cpo_stub("simpo", 2.5, gamma=1.4), tensors["policy_chosen"], tensors["policy_rejected"]
    )
    torch.testing.assert_close(call("simpo", tensors, beta=2.5, gamma=1.4).losses, expected, **TOL)


def test_cpo_and_label_smoothing_match_trl() -> None:
    tensors = logps(8, scale=4.0)
    preference, chosen_rewards, _ = CPOTrainer.cpo_loss(
        _cpo_stub("sigmoid", 0.3), tensors["policy_chosen"], tensors["policy_rejected"]
    )
    result = call("cpo", tensors, beta=0.3)
    torch.testing.assert_close(result.losses, preference - tensors["policy_chosen"], **TOL)
    torch.testing.assert_close(result.chosen_rewards, chosen_rewards, **TOL)
    # reference-free sigmoid with label smoothing == DPO's sigmoid with a zero reference
    smoothed, _, _ = CPOTrainer.cpo_loss(
        _cpo_stub("sigmoid", 0.3, label_smoothing=0.2), tensors["policy_chosen"], tensors["policy_rejected"]
    )
    zero = torch.zeros_like(tensors["policy_chosen"])
    ours = call(
        "sigmoid",
        {**tensors, "reference_chosen": zero, "reference_rejected": zero},
        beta=0.3,
        label_smoothing=0.2,
    )
    torch.testing.assert_close(ours.losses, smoothed, **TOL)


def test_orpo_matches_trl() -> None:
    tensors = averaged(9)
    stub = SimpleNamespace(beta=0.25, accelerator=SimpleNamespace(device="cpu"))
    odds, chosen_rewards, _, _, _ = ORPOTrainer.odds_ratio_loss(
        stub, tensors["policy_chosen"], tensors["policy_rejected"]
    )
    result = call("orpo", tensors, beta=0.25)
    # TRL: loss = nll - mean(beta * log sigmoid(log odds)), with nll = -mean log-prob of the chosen tokens
    torch.testing.assert_close(result.losses, -tensors["policy_chosen"] - odds.double(), **TOL)
    torch.testing.assert_close(result.chosen_rewards, chosen_rewards.double(), **TOL)
