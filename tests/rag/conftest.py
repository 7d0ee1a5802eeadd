from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def rag_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{bert_tiny, rag_index} beside llama_tiny."""
    from build_rag import build_all

    return build_all(fixture_models)
