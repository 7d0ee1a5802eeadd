"""Which checkpoint folders count as complete, what a resume cleans up, and the trimmed metrics log."""

import json
from pathlib import Path

import pytest

from turbo.errors import TurboError
from turbo.pipelines.train.common import (
    complete_checkpoints,
    remove_incomplete_checkpoints,
    resume_checkpoint,
    trim_metrics_log,
)
from turbo.settings.pipelines.train.sft import SftExperimentSettings

from ...helpers import CONFIGS


def checkpoint(folder: Path, step: int, state: str | None = None) -> Path:
    path = folder / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state is None:
        state = json.dumps({"global_step": step})
    if state:
        (path / "trainer_state.json").write_text(state)
    return path


def settings(folder: Path, resume: bool | str) -> SftExperimentSettings:
    data = json.loads((CONFIGS / "train" / "sft" / "lora.json").read_text())
    data["log_path"] = str(folder)
    data["trainer_settings"]["resume_from_checkpoint"] = resume
    return SftExperimentSettings.model_validate(data)


def test_only_checkpoints_with_a_whole_trainer_state_are_complete(tmp_path: Path) -> None:
    checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 2)
    checkpoint(tmp_path, 20, state='{"global_st')  # killed while writing the state
    checkpoint(tmp_path, 30, state="")  # killed before it
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10"]
    removed = remove_incomplete_checkpoints(tmp_path)
    assert sorted(p.name for p in removed) == ["checkpoint-20", "checkpoint-30"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-10", "checkpoint-2"]


def test_resume_true_takes_the_newest_complete_checkpoint_and_trims_the_log(tmp_path: Path) -> None:
    checkpoint(tmp_path, 4)
    checkpoint(tmp_path, 8)
    checkpoint(tmp_path, 12, state="{")
    rows = [json.dumps({"step": step, "loss": 1.0}) for step in range(1, 11)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(rows) + '\n{"step": 11, "lo')
    assert resume_checkpoint(settings(tmp_path, True), tmp_path) == str(
        tmp_path / "checkpoints" / "checkpoint-8"
    )
    assert not (tmp_path / "checkpoints" / "checkpoint-12").exists()
    logged = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 9))


def test_resume_refuses_an_incomplete_or_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TurboError, match="no complete checkpoint"):
        resume_checkpoint(settings(tmp_path, True), tmp_path)
    broken = checkpoint(tmp_path / "elsewhere", 5, state="")
    with pytest.raises(TurboError, match="incomplete"):
        resume_checkpoint(settings(tmp_path, str(broken)), tmp_path)


def test_trim_keeps_rows_up_to_the_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    trim_metrics_log(path, 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
