"""Output names and folders (turbo.settings.outputs), the folder swap of turbo.io, and when a resumed run
is already complete."""

import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from turbo.errors import RunComplete, TurboError
from turbo.io import replace_dir
from turbo.pipelines.train.common import stop_if_complete
from turbo.settings.outputs import FileName, OutputFolder, output_folder_problems
from turbo.settings.pipelines.train.sft import SftExperimentSettings

from ..helpers import CONFIGS


@pytest.mark.parametrize("name", ["", " ", ".", "..", "../x", "/abs", "a/b", "a\\b", "nul\x00"])
def test_file_names_are_one_plain_component(name: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(FileName).validate_python(name)


@pytest.mark.parametrize("name", ["train_chat", "val.chat-2", "données", "a:b", ".hidden"])
def test_plain_file_names_pass(name: str) -> None:
    assert TypeAdapter(FileName).validate_python(name) == name


@pytest.mark.parametrize("path", ["", ".", "./"])
def test_an_output_folder_is_never_the_current_folder(path: str) -> None:
    with pytest.raises(ValidationError, match="must name a folder of its own"):
        TypeAdapter(OutputFolder).validate_python(path)


def test_replace_dir_never_deletes_a_neighbour_and_restores_the_old_folder_on_failure(tmp_path: Path) -> None:
    target, source = tmp_path / "final", tmp_path / "new"
    target.mkdir()
    (target / "old.bin").write_text("old")
    neighbour = tmp_path / ".final.old"  # the name the swap used to clear first
    neighbour.mkdir()
    (neighbour / "mine.txt").write_text("mine")
    source.mkdir()
    (source / "new.bin").write_text("new")
    replace_dir(source, target)
    assert (target / "new.bin").read_text() == "new" and not (target / "old.bin").exists()
    assert (neighbour / "mine.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == [".final.old", "final"]

    with pytest.raises(OSError):
        replace_dir(tmp_path / "missing", target)
    assert (target / "new.bin").read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == [".final.old", "final"]


def test_an_output_inside_a_symlinked_input_is_seen(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "link").symlink_to(model)
    inputs = {"model": model}
    problems = output_folder_problems("save_path", tmp_path / "link" / "out", "merge", False, inputs, "x")
    assert problems and "is inside the input model" in problems[0]


def settings(folder: Path, **trainer: object) -> SftExperimentSettings:
    data = json.loads((CONFIGS / "train" / "sft" / "lora.json").read_text())
    data["log_path"] = str(folder)
    data["trainer_settings"].update(trainer, resume_from_checkpoint=True)
    return SftExperimentSettings.model_validate(data)


def checkpoint(folder: Path, step: int, max_steps: int, epochs: int) -> Path:
    path = folder / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    state = {"global_step": step, "max_steps": max_steps, "num_train_epochs": epochs}
    (path / "trainer_state.json").write_text(json.dumps(state))
    return path


def test_a_resumed_run_at_its_last_step_is_complete(tmp_path: Path) -> None:
    last = checkpoint(tmp_path, 20, 20, 2)
    (tmp_path / "final").mkdir()
    with pytest.raises(RunComplete, match="checkpoint-20 is its last step"):
        stop_if_complete(settings(tmp_path, max_steps=20), tmp_path, last)
    with pytest.raises(RunComplete):  # by epochs: the steps transformers planned
        stop_if_complete(settings(tmp_path, max_steps=-1, num_train_epochs=2), tmp_path, last)
    stop_if_complete(settings(tmp_path, max_steps=30), tmp_path, last)  # more steps asked: trains on
    stop_if_complete(settings(tmp_path, max_steps=-1, num_train_epochs=3), tmp_path, last)
    stop_if_complete(settings(tmp_path, max_steps=40), tmp_path, checkpoint(tmp_path, 10, 40, 4))


def test_a_complete_run_without_final_says_where_the_weights_are(tmp_path: Path) -> None:
    last = checkpoint(tmp_path, 20, 20, 2)
    with pytest.raises(TurboError, match="final is missing"):
        stop_if_complete(settings(tmp_path, max_steps=20), tmp_path, last)
