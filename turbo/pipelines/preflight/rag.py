"""Checks of RAG (train_rag, inference_rag, build_index): the width of the question vectors, read from
the question encoder's config.json, equals retrieval_vector_size where it is set and the faiss index's
dimension (its file header; for a sharded index, every shard's header that its manifest names);
build_index can write its index file and passages folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from turbo.errors import TurboError
from turbo.pipelines.preflight.common import is_folder, nodes
from turbo.reading import output_folder_problem
from turbo.settings.paths import path_problem


def _width(encoder: Any, where: str) -> tuple[int | None, list[str]]:
    """The encoder's width, or None and the problem (nothing when input_files reports the folder)."""
    from turbo.modeling.rag.encoder import encoder_width  # here: validate of other commands skips it

    if not is_folder(encoder.model_path):
        return None, []
    try:
        return encoder_width(encoder, where), []
    except TurboError as exc:
        return None, [str(exc)]


def rag_vector_sizes(settings: Any) -> list[str]:
    """For every RAG model: retrieval_vector_size (where set) and the index's dimension equal the
    question encoder's width."""
    from turbo.modeling.rag.retriever import index_dimension  # here: validate of other commands skips it
    from turbo.settings.rag import RagModelSettings

    problems: list[str] = []
    for where, rag in nodes(settings):
        if not isinstance(rag, RagModelSettings):
            continue
        encoder = rag.question_encoder_settings
        width, found = _width(encoder, f"{where}question_encoder_settings")
        problems += found
        if width is None:
            continue
        size = rag.retrieval_settings.retrieval_vector_size
        if size is not None and size != width:
            problems.append(
                f"{where}retrieval_settings.retrieval_vector_size: {size}, but the question encoder at "
                f"{encoder.model_path} gives vectors of width {width}; remove it (the encoder's width is "
                "the default) or set it to the encoder's width"
            )
        index_path = rag.index_settings.index_path
        if path_problem(Path(index_path), "file") is not None:
            continue  # input_files reports it
        try:
            dimension = index_dimension(index_path)
        except TurboError as exc:
            problems.append(f"{where}index_settings.index_path: {exc}")
            continue
        if dimension != width:
            problems.append(
                f"{where}index_settings.index_path: {index_path} holds vectors of width {dimension}, but "
                f"the question encoder at {encoder.model_path} gives {width} "
                f"({where}question_encoder_settings.model_path); rebuild the index with this encoder "
                "(build_index) or use the encoder it was built with"
            )
    return problems


def index_outputs(settings: Any) -> list[str]:
    """build_index: the encoder gives a width, the index is a file and the passages a folder that can be
    written."""
    _, problems = _width(settings.encoder_settings, "encoder_settings")
    index, passages = Path(settings.index_settings.index_path), Path(settings.index_settings.passages_path)
    if index.is_dir():
        problems.append(f"index_settings.index_path: {index} is a folder; name the index file to write")
    elif problem := output_folder_problem(index.parent):
        problems.append(f"index_settings.index_path: {problem}")
    if problem := output_folder_problem(passages):
        problems.append(f"index_settings.passages_path: {problem}")
    return problems
