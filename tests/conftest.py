"""Session fixtures: the tiny offline models, built once and cached under tests/fixtures/models.
What test files share besides fixtures (paths, the CLI runner, readers of a run's files) is in
tests/helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .helpers import CONFIGS, FIXTURES, REPO, run_turbo

sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="session")
def fixture_models() -> Path:
    """tests/fixtures/models/{llama_tiny, llama_seq_cls, llama_rm} and LoRA adapters on each
    (llama_tiny_adapter, llama_rm_adapter, llama_seq_cls_adapter), built once and cached."""
    from build_models import build_all

    return build_all()


@pytest.fixture(scope="session")
def multimodal_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{clip_tiny, siglip_tiny, whisper_tiny} beside llama_tiny, and the drawn media."""
    from build_multimodal import build_all

    return build_all(fixture_models)


@pytest.fixture(scope="session")
def rag_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{bert_tiny, rag_index} beside llama_tiny: the question encoder and the index."""
    from build_rag import build_all

    return build_all(fixture_models)


@pytest.fixture(scope="session")
def pre_encoded_images(multimodal_models: Path) -> Path:
    """The original's preprocessing file run as written: image.clip.safetensors beside the fixture images
    (the original's pickle-reader multimodal files read these features)."""
    features = REPO / "tests/fixtures/datasets/multimodal/media/images/image.clip.safetensors"
    features.unlink(missing_ok=True)
    settings = CONFIGS / "original" / "utils" / "preprocess" / "images.json"
    run_turbo("preprocess_multimodal_dataset", "--settings_path", settings)
    return features
