"""The RAG-Sequence loss (Lewis et al. 2020): the negative marginal log-likelihood of the answer.

    log p(y|x) = logsumexp_z [ log_softmax(doc_scores)_z + log p(y|x, z) ]

`doc_scores` are question · passage inner products (so the question encoder gets gradients);
`sequence_logps` are the generator's summed answer-token log-probabilities per document.
"""

from __future__ import annotations

import torch


def rag_sequence_marginal_logps(doc_scores: torch.Tensor, sequence_logps: torch.Tensor) -> torch.Tensor:
    """(batch, n_docs) scores and log-likelihoods -> (batch,) marginal answer log-likelihoods."""
    if doc_scores.shape != sequence_logps.shape:
        raise ValueError(
            f"doc_scores {tuple(doc_scores.shape)} and sequence_logps "
            f"{tuple(sequence_logps.shape)} must have the same shape"
        )
    doc_logprior = torch.log_softmax(doc_scores.float(), dim=-1)
    return torch.logsumexp(doc_logprior + sequence_logps.float(), dim=-1)


def rag_sequence_loss(
    doc_scores: torch.Tensor, sequence_logps: torch.Tensor, num_answer_tokens: torch.Tensor | int
) -> torch.Tensor:
    """The batch's negative marginal log-likelihood divided by its answer tokens (each answer counted
    once, not once per document). With one document this is the SFT loss: the token-mean NLL."""
    marginal = rag_sequence_marginal_logps(doc_scores, sequence_logps)
    return -marginal.sum() / num_answer_tokens
