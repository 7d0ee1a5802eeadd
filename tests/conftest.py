"""Session fixtures: the tiny offline models, built once and cached under tests/fixtures/models.
What test files share besides fixtures (paths, the CLI runner, readers of a run's files) is in
tests/helpers.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: `-n auto` starts one worker per core
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from filelock import FileLock

from .helpers import CONFIGS, FIXTURES, REPO, run_turbo

sys.path.insert(0, str(FIXTURES))
MODELS = FIXTURES / "models"


def built_once(build: Callable[[], Path]) -> Path:
    """Runs a fixture builder under a file lock: with several test workers the first builds and the others
    wait, then find the build done (each builder skips what its version stamp says is current)."""
    MODELS.mkdir(parents=True, exist_ok=True)
    with FileLock(str(MODELS / ".build.lock")):
        return build()


@pytest.fixture(scope="session")
def fixture_models() -> Path:
    """tests/fixtures/models/{llama_tiny, llama_seq_cls, llama_rm} and LoRA adapters on each
    (llama_tiny_adapter, llama_rm_adapter, llama_seq_cls_adapter), built once and cached."""
    from build_models import build_all

    return built_once(build_all)


@pytest.fixture(scope="session")
def multimodal_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{clip_tiny, siglip_tiny, whisper_tiny} beside llama_tiny, and the drawn media."""
    from build_multimodal import build_all

    return built_once(lambda: build_all(fixture_models))


@pytest.fixture(scope="session")
def rag_models(fixture_models: Path) -> Path:
    """tests/fixtures/models/{bert_tiny, rag_index} beside llama_tiny: the question encoder and the index."""
    from build_rag import build_all

    return built_once(lambda: build_all(fixture_models))


@pytest.fixture(scope="session")
def pre_encoded_images(multimodal_models: Path) -> Path:
    """The original's preprocessing file run as written: image.clip.safetensors beside the fixture images
    (the original's pickle-reader multimodal files read these features)."""
    features = REPO / "tests/fixtures/datasets/multimodal/media/images/image.clip.safetensors"
    settings = CONFIGS / "original" / "utils" / "preprocess" / "images.json"
    with FileLock(str(MODELS / ".build.lock")):
        stamp = MODELS / "pre_encoded_images.run"  # written once per test run, whichever worker comes first
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
        if not features.exists() or not stamp.exists() or stamp.read_text() != run_id:
            features.unlink(missing_ok=True)
            run_turbo("preprocess_multimodal_dataset", "--settings_path", settings)
            stamp.write_text(run_id)
    return features
