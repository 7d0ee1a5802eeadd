"""The RAG-Sequence loss against a hand computation, and against the SFT loss with one document."""

from __future__ import annotations

import math

import pytest
import torch

from turbo.trainers.losses.rag import rag_sequence_loss, rag_sequence_marginal_logps


def test_marginal_nll_equals_a_hand_computation() -> None:
    doc_scores = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    sequence_logps = torch.tensor([[-1.0, -3.0, -0.5], [-2.0, -4.0, -6.0]])
    expected = []
    for scores, logps in zip(doc_scores.tolist(), sequence_logps.tolist(), strict=True):
        prior = [math.exp(s) / sum(math.exp(t) for t in scores) for s in scores]
        expected.append(math.log(sum(p * math.exp(lp) for p, lp in zip(prior, logps, strict=True))))
    marginal = rag_sequence_marginal_logps(doc_scores, sequence_logps)
    assert marginal.tolist() == pytest.approx(expected, abs=1e-6)
    loss = rag_sequence_loss(doc_scores, sequence_logps, num_answer_tokens=7)
    assert loss.item() == pytest.approx(-sum(expected) / 7, abs=1e-6)


def test_gradients_reach_the_document_scores() -> None:
    doc_scores = torch.tensor([[1.0, 0.0]], requires_grad=True)
    sequence_logps = torch.tensor([[-1.0, -5.0]])
    rag_sequence_loss(doc_scores, sequence_logps, 1).backward()
    # the better document (higher answer likelihood) gets pushed up, the other down
    assert doc_scores.grad[0, 0] < 0 < doc_scores.grad[0, 1]


def test_one_document_with_fixed_retrieval_is_the_sft_loss(fixture_models) -> None:
    """n_docs 1: log_softmax of one score is 0, so the loss is the generator's token-mean NLL,
    exactly what transformers computes for SFT on the same batch."""
    from transformers import AutoModelForCausalLM

    from turbo.modeling.rag.model import sequence_logps

    model = AutoModelForCausalLM.from_pretrained(fixture_models / "llama_tiny", dtype=torch.float32)
    torch.manual_seed(0)
    input_ids = torch.randint(4, 500, (3, 12))
    labels = input_ids.clone()
    labels[:, :5] = -100  # prompt
    labels[1, 9:] = -100  # a shorter answer
    with torch.no_grad():
        output = model(input_ids=input_ids, labels=labels)
        logps, counts = sequence_logps(output.logits, labels)
    doc_scores = torch.tensor([[3.7], [-1.2], [0.0]])  # any fixed retrieval score
    loss = rag_sequence_loss(doc_scores, logps.view(3, 1), counts.sum())
    assert loss.item() == pytest.approx(output.loss.item(), rel=1e-5)
