"""A run that stops on bad input removes the experiment folder it created, and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from turbo.errors import DataError, TrainingDivergedError
from turbo.io import removed_if_refused


def test_a_folder_made_by_a_refused_run_is_removed(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(DataError), removed_if_refused(folder):
        folder.mkdir()
        (folder / "experiment_settings.json").write_text("{}")
        raise DataError("records.jsonl:3: bad record")
    assert not folder.exists()


def test_an_earlier_folder_a_started_training_and_a_diverged_run_are_kept(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    with pytest.raises(DataError), removed_if_refused(earlier):
        raise DataError("bad")
    assert earlier.exists()

    started = tmp_path / "started"
    with pytest.raises(DataError), removed_if_refused(started):
        (started / "checkpoints" / "checkpoint-2").mkdir(parents=True)
        raise DataError("bad")
    assert (started / "checkpoints" / "checkpoint-2").exists()

    diverged = tmp_path / "diverged"
    with pytest.raises(TrainingDivergedError), removed_if_refused(diverged):
        diverged.mkdir()
        raise TrainingDivergedError("loss is nan")
    assert diverged.exists()
