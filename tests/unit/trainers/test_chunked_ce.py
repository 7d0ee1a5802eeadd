"""Chunked cross-entropy: the same loss and gradients as the plain full-logits loss."""

from __future__ import annotations

import pytest
import torch

from turbo.trainers.losses.chunked_ce import (
    chunked_cross_entropy,
    linear_token_logps,
    linear_token_logps_entropy,
    no_logits,
)


def plain_loss(hidden, weight, labels, num_items_in_batch=None):
    logits = (hidden @ weight.T).float()
    vocabulary = weight.shape[0]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, vocabulary), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
    )
    count = num_items_in_batch if num_items_in_batch is not None else (labels[:, 1:] != -100).sum()
    return loss / count


@pytest.mark.parametrize("train_weight", [False, True])
@pytest.mark.parametrize("num_items", [None, 97])
@pytest.mark.parametrize("chunk", [7, 1024])
def test_loss_and_gradients_equal_the_plain_loss(train_weight, num_items, chunk) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 21, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=train_weight)
    labels = torch.randint(0, 50, (3, 21))
    labels[:, :5] = -100
    labels[1, 15:] = -100
    expected = plain_loss(hidden, weight, labels, num_items)
    expected.backward()
    grads = hidden.grad.clone(), weight.grad.clone() if train_weight else None
    hidden.grad, weight.grad = None, None

    actual = chunked_cross_entropy(hidden, weight, labels, num_items, chunk=chunk)
    (actual * 2).backward()  # the upstream gradient scales both
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden.grad, 2 * grads[0], atol=1e-6, rtol=1e-5)
    if train_weight:
        torch.testing.assert_close(weight.grad, 2 * grads[1], atol=1e-6, rtol=1e-5)
    else:
        assert weight.grad is None


def test_without_gradients_it_is_the_same_loss() -> None:
    torch.manual_seed(1)
    hidden, weight = torch.randn(2, 9, 8), torch.randn(30, 8)
    labels = torch.randint(0, 30, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(
            chunked_cross_entropy(hidden, weight, labels, chunk=4), plain_loss(hidden, weight, labels)
        )


def test_the_model_loss_through_hidden_states_equals_its_own_loss(fixture_models) -> None:
    from transformers import AutoModelForCausalLM

    from turbo.trainers.sft import supports_chunked_loss

    model = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", dtype=torch.float32)
    assert supports_chunked_loss(model)
    torch.manual_seed(0)
    input_ids = torch.randint(0, model.config.vocab_size, (2, 12))
    labels = input_ids.clone()
    labels[:, :4] = -100
    expected = model(input_ids=input_ids, labels=labels).loss
    outputs = model(input_ids=input_ids, output_hidden_states=True, logits_to_keep=no_logits(labels.device))
    assert outputs.logits.shape[1] == 0  # as SftTrainer runs it: the model's own head projects nothing
    actual = chunked_cross_entropy(outputs.hidden_states[-1], model.get_output_embeddings().weight, labels)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("train_weight", [False, True])
@pytest.mark.parametrize("chunk", [5, 1024])
def test_token_logps_and_gradients_equal_the_full_log_softmax(train_weight, chunk) -> None:
    torch.manual_seed(2)
    hidden = torch.randn(13, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=train_weight)
    targets = torch.randint(0, 50, (13,))
    upstream = torch.randn(13)  # each token's log-prob weighs differently in a loss (DPO: per sample)
    expected = (hidden @ weight.T).float().log_softmax(-1).gather(1, targets[:, None]).squeeze(1)
    (expected * upstream).sum().backward()
    grads = hidden.grad.clone(), weight.grad.clone() if train_weight else None
    hidden.grad, weight.grad = None, None

    actual = linear_token_logps(hidden, weight, targets, chunk=chunk)
    (actual * upstream).sum().backward()
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden.grad, grads[0], atol=1e-6, rtol=1e-5)
    if train_weight:
        torch.testing.assert_close(weight.grad, grads[1], atol=1e-6, rtol=1e-5)
    else:
        assert weight.grad is None
    with torch.no_grad():
        without_grad = linear_token_logps(hidden, weight, targets, chunk=chunk)
    torch.testing.assert_close(without_grad, expected.detach())


@pytest.mark.parametrize("train_weight", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_entropy_from_the_same_logits_equals_the_full_softmax(train_weight, grad) -> None:
    """GRPO's and PPO's entropy metric comes out of the log-prob projection: the full softmax's entropy,
    no gradient of its own, and the log-probs and gradients as without it."""
    torch.manual_seed(4)
    hidden = torch.randn(11, 16, requires_grad=grad)
    weight = torch.randn(40, 16, requires_grad=train_weight)
    targets = torch.randint(0, 40, (11,))
    log_probs = (hidden @ weight.T).float().log_softmax(-1)
    expected = -(log_probs.exp() * log_probs).sum(-1).detach()
    logps, entropy = linear_token_logps_entropy(hidden, weight, targets, chunk=4)
    torch.testing.assert_close(entropy, expected, atol=1e-5, rtol=0)
    assert not entropy.requires_grad and bool((entropy > 0).all())
    torch.testing.assert_close(logps, linear_token_logps(hidden, weight, targets, chunk=4), atol=0, rtol=0)
    assert logps.requires_grad == (grad or train_weight)
    if grad:
        logps.sum().backward()
        expected_grad = hidden.grad.clone()
        hidden.grad = None
        linear_token_logps(hidden, weight, targets, chunk=4).sum().backward()
        torch.testing.assert_close(expected_grad, hidden.grad, atol=0, rtol=0)


def test_float32_states_meet_a_bfloat16_output_layer() -> None:
    """bf16 training with float32 LoRA adapters hands float32 states to a bfloat16 head."""
    torch.manual_seed(3)
    hidden = torch.randn(2, 6, 8, requires_grad=True)
    weight = torch.randn(20, 8).bfloat16()
    labels = torch.randint(0, 20, (2, 6))
    expected = plain_loss(hidden.bfloat16(), weight, labels)
    loss = chunked_cross_entropy(hidden, weight, labels)
    loss.backward()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)
    assert hidden.grad is not None and hidden.grad.dtype == torch.float32
    logps = linear_token_logps(hidden[0], weight, labels[0])
    assert logps.dtype == torch.float32 and logps.shape == (6,)
