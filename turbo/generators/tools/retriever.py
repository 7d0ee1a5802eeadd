"""A search over an index written by build_index as a tool: the queries of one turn are encoded in
batches (as the index was encoded: its turbo_encoding.json), searched with one faiss call, and each
result is its passages formatted as the RAG pipeline formats them (turbo.data.rag.document_context)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from turbo.generators.tools.base import ToolResult, error_result


@dataclass
class RetrieverTool:
    name: str
    encoder: Any  # turbo.generators.rag.QuestionEncoder
    retriever: Any  # turbo.modeling.rag.retriever.Retriever
    retrieval: Any  # RetrievalSettings
    tokenizer: Any  # the policy's: passages are cut to max_doc_length of its tokens

    def run(self, arguments: list[str]) -> list[ToolResult]:
        from turbo.data.rag import document_context
        from turbo.generators.rag import retrieve

        queries = [argument.strip() for argument in arguments]
        asked = [index for index, query in enumerate(queries) if query]
        results = [error_result(self.name, "empty query") for _ in queries]
        if not asked:
            return results
        try:
            found = retrieve(self.encoder, self.retriever, [queries[i] for i in asked], self.retrieval)
        except Exception as exc:  # noqa: BLE001 - a failed search is every call's result, not a crash
            return [error_result(self.name, f"{type(exc).__name__}: {exc}") for _ in queries]
        for index, documents in zip(asked, found.documents, strict=True):
            results[index] = ToolResult(document_context(documents, self.tokenizer, self.retrieval))
        return results


@contextmanager
def open_retriever_tool(settings: Any, tokenizer: Any) -> Iterator[RetrieverTool]:
    """The encoder and the index of a retriever tool, checked against each other (width, n_docs)."""
    import torch

    from turbo.generators.rag import QuestionEncoder
    from turbo.modeling.rag.encoder import encoder_width, load_encoder
    from turbo.modeling.rag.retriever import load_retriever, query_encoding, read_encoding

    where = f"tool_settings ({settings.name})"
    width = encoder_width(settings.encoder_settings, f"{where}.encoder_settings")
    index = settings.index_settings
    retriever = load_retriever(
        index.index_path, index.passages_path, f"{where}.index_settings", width, settings.n_docs
    )
    model, encoder_tokenizer = load_encoder(settings.encoder_settings, f"{where}.encoder_settings")
    model.requires_grad_(False)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    pooling, normalize = query_encoding(
        settings.pooling, settings.normalize, read_encoding(index.passages_path)
    )
    encoder = QuestionEncoder(model, encoder_tokenizer, pooling, normalize)
    yield RetrieverTool(settings.name, encoder, retriever, settings.retrieval(width), tokenizer)
