"""Growing the vocabulary and initialising the new rows from text the model already knows."""

from __future__ import annotations

from typing import Any

import torch

from turbo.errors import ModelError


def fit_embeddings_to_tokenizer(model: Any, tokenizer: Any, resize: bool) -> None:
    """Grow the embeddings when the tokenizer has more tokens than the model has rows."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= rows:
        return
    if not resize:
        raise ModelError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embeddings have {rows} rows; "
            "set model_settings.resize_token_embeddings: true"
        )
    model.resize_token_embeddings(len(tokenizer))


@torch.no_grad()
def initialize_new_embeddings(model: Any, tokenizer: Any, strategy: dict[str, str]) -> None:
    """Each new token's input (and untied output) row becomes the mean of its source text's rows."""
    tables = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight.data_ptr() != tables[0].data_ptr():
        tables.append(output.weight)
    for token, source_text in strategy.items():
        token_id = tokenizer.convert_tokens_to_ids(token)
        source_ids = tokenizer(source_text, add_special_tokens=False)["input_ids"]
        if not source_ids:
            raise ModelError(f"embeddings_initialization_strategy: '{source_text}' has no tokens")
        for table in tables:
            if token_id >= table.shape[0] or max(source_ids) >= table.shape[0]:
                raise ModelError(
                    f"embeddings_initialization_strategy: '{token}' is outside the embeddings; "
                    "set model_settings.resize_token_embeddings: true"
                )
            table[token_id] = table[source_ids].float().mean(dim=0).to(table.dtype)
