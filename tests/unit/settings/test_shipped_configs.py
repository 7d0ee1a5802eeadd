"""Every shipped example and fixture config validates (docs and examples can't rot)."""

from pathlib import Path

import pytest

from turbo.pipelines.tools.validate import identify

from ...conftest import REPO

CONFIG_FILES = sorted(
    path
    for folder in ("examples", "tests/fixtures/configs")
    for path in (REPO / folder).rglob("*.json")
    if "data" not in path.relative_to(REPO).parts
)


def test_there_are_configs() -> None:
    assert len(CONFIG_FILES) >= 4


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_config_validates(path: Path) -> None:
    command, settings = identify(path, [], None)
    assert command.name
    assert settings is not None
