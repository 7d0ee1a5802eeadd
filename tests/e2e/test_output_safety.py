"""Nothing the user owns is lost: output folders turbo did not write are never replaced, names stay
inside their folder, one experiment folder holds one run, and a finished run resumes to nothing."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"
MERGE = CONFIGS / "merge" / "lora.json"
INFERENCE = CONFIGS / "inference" / "chat" / "base.json"
MODEL = Path("tests/fixtures/models/llama_tiny")
STEPS = 6  # 16 records, 4 a step: ends in the middle of the second epoch
SHORT = [
    *("--set", f"trainer_settings.max_steps={STEPS}"),
    *("--set", "trainer_settings.save_steps=3"),
    *("--set", "trainer_settings.evaluation_strategy=no"),
    *("--set", "cherry_pick_settings=null"),
]


def train(folder: Path, *settings: str, expect: int = 0):
    return run_turbo(
        "train_sft", "--experiment_settings_path", SFT, "--set", f"log_path={folder}", *SHORT, *settings,
        expect=expect,
    )  # fmt: skip


def tree(folder: Path) -> dict[str, str]:
    """Every file under folder with the hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def steps(folder: Path) -> list[int]:
    return [row["step"] for row in read_jsonl(folder / "metrics.jsonl") if "loss" in row]


@pytest.fixture(scope="module")
def finished(fixture_models, tmp_path_factory) -> Path:
    """A run that reached max_steps, with a checkpoint at its last step."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    train(folder)
    assert steps(folder) == list(range(1, STEPS + 1))
    return folder


@pytest.fixture
def earlier_run(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run that a test may change."""
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    return folder


def user_folder(path: Path) -> dict[str, str]:
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.txt").write_text("years of work")
    (path / "data").mkdir(exist_ok=True)
    (path / "data" / "results.csv").write_text("a,b\n1,2\n")
    return tree(path)


# merge_adapters_to_base and convert_gguf


def merge(save_path: Path, adapter: Path, *settings: str, expect: int = 0):
    return run_turbo(
        "merge_adapters_to_base", "--settings_path", MERGE,
        "--set", f"adapter_path={adapter}", "--set", f"tokenizer_settings.tokenizer_path={adapter}",
        "--set", f"save_path={save_path}", *settings,
        expect=expect,
    )  # fmt: skip


def test_merge_refuses_a_folder_it_did_not_write(finished: Path, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    before = user_folder(target)
    result = merge(target, finished / "final", expect=2)
    assert "is not empty and was not written by turbo merge_adapters_to_base" in result.stderr
    assert "choose a new or empty folder" in result.stderr
    assert tree(target) == before
    result = merge(target, finished / "final", "--set", "overwrite=true", expect=2)  # not ours either
    assert tree(target) == before and "was not written by turbo" in result.stderr


@pytest.mark.parametrize(
    ("save_path", "input_name", "overlap"),
    [
        (lambda run: MODEL, "model_settings.model_path", "is"),
        (lambda run: run / "final", "adapter_path", "is"),
        (lambda run: run / "final" / "merged", "adapter_path", "is inside"),
        (lambda run: MODEL.parent, "model_settings.model_path", "contains"),
    ],
    ids=["model_path", "adapter_path", "inside_adapter", "around_model"],
)
def test_merge_refuses_an_output_that_overlaps_an_input(
    earlier_run: Path, save_path, input_name: str, overlap: str
) -> None:
    target = save_path(earlier_run)
    model, adapter = tree(MODEL), tree(earlier_run / "final")
    result = merge(target, earlier_run / "final", "--set", "overwrite=true", expect=2)
    assert f"save_path: {target} {overlap} the input {input_name}" in result.stderr
    assert tree(MODEL) == model and tree(earlier_run / "final") == adapter
    assert not (earlier_run / "final" / "merged").exists()


def test_merge_replaces_its_own_output_only_when_asked(finished: Path, tmp_path: Path) -> None:
    target = tmp_path / "merged"
    merge(target, finished / "final")
    manifest = json.loads((target / "turbo_output.json").read_text())
    assert manifest["command"] == "merge_adapters_to_base"
    first = tree(target)
    assert "model.safetensors" in first

    result = merge(target, finished / "final", expect=2)
    assert "holds the output of an earlier merge_adapters_to_base; set overwrite: true" in result.stderr
    assert tree(target) == first

    merge(target, finished / "final", "--set", "overwrite=true")
    assert tree(target) == first  # the same merge again: the same bytes
    assert sorted(path.name for path in tmp_path.iterdir()) == ["merged"]  # no temporary siblings left


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    """A file named like a GGUF checkpoint (the checks run before it is read)."""
    path = tmp_path / "models" / "model.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF")
    return path


def test_convert_gguf_refuses_folders_it_did_not_write_and_its_input(gguf: Path, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    before = user_folder(target)
    result = run_turbo("convert_gguf", "--gguf_path", gguf, "--save_path", target, "--overwrite", expect=2)
    assert "is not empty and was not written by turbo convert_gguf" in result.stderr
    assert tree(target) == before

    result = run_turbo("convert_gguf", "--gguf_path", gguf, "--save_path", gguf.parent, expect=2)
    assert f"--save_path: {gguf.parent} contains the input --gguf_path" in result.stderr
    assert gguf.read_bytes() == b"GGUF"

    earlier = tmp_path / "converted"
    earlier.mkdir()
    (earlier / "turbo_output.json").write_text(json.dumps({"command": "convert_gguf"}))
    (earlier / "model.safetensors").write_bytes(b"weights")
    result = run_turbo("convert_gguf", "--gguf_path", gguf, "--save_path", earlier, expect=2)
    assert "holds the output of an earlier convert_gguf; set --overwrite to replace it" in result.stderr
    assert (earlier / "model.safetensors").read_bytes() == b"weights"


# names from user strings


@pytest.mark.parametrize("name", ["../../escaped", "<tmp>/escaped", "a/b", "..", "", "a\\b"])
def test_a_source_name_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, name: str) -> None:
    name = name.replace("<tmp>", str(tmp_path))  # an absolute path
    save_path = tmp_path / "out" / "inner"
    result = run_turbo(
        "inference_chat", "--inference_settings_path", INFERENCE, "--set", f"save_path={save_path}",
        "--set", f"dataset_settings.sources.0.name={json.dumps(name)}",
        expect=2,
    )  # fmt: skip
    assert "dataset_settings.sources.0.name" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # nothing written, inside or out
    name_setting = f"train_dataset_settings.sources.0.name={json.dumps(name)}"
    result = run_turbo("validate", SFT, "--set", name_setting, expect=2)
    assert "train_dataset_settings.sources.0.name" in result.stderr


# log_path


@pytest.mark.parametrize("log_path", ['""', '"."'])
def test_log_path_must_name_a_folder_of_its_own(tmp_path: Path, log_path: str) -> None:
    result = train(Path(), "--set", f"log_path={log_path}", expect=2)
    assert "log_path" in result.stderr and "must name a folder of its own" in result.stderr


def test_log_path_that_is_a_file_or_someone_elses_folder_is_refused_before_loading(tmp_path: Path) -> None:
    empty_model = tmp_path / "no_weights"
    empty_model.mkdir()  # loading from here would fail with another message
    no_model = ["--set", f"model_settings.model_path={empty_model}"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    result = train(a_file, *no_model, expect=2)
    assert f"log_path: {a_file} is a file" in result.stderr and a_file.read_text() == "mine"

    folder = tmp_path / "project"
    before = user_folder(folder)
    result = train(folder, *no_model, expect=2)
    assert "is not empty and is not a turbo experiment" in result.stderr
    assert tree(folder) == before


def test_a_second_run_into_an_experiment_folder_is_refused(earlier_run: Path) -> None:
    before = tree(earlier_run)
    result = train(earlier_run, expect=2)
    assert "holds an earlier run; resume it with" in result.stderr
    assert "trainer_settings.resume_from_checkpoint: true, or choose a new log_path" in result.stderr
    assert tree(earlier_run) == before


def test_overwrite_log_path_starts_a_clean_run(earlier_run: Path) -> None:
    (earlier_run / "checkpoints" / "checkpoint-99").mkdir()  # would be taken for this run's
    train(earlier_run, "--set", "overwrite_log_path=true", "--set", "trainer_settings.max_steps=2")
    assert steps(earlier_run) == [1, 2]  # one run's rows only
    assert [p.name for p in (earlier_run / "checkpoints").iterdir()] == ["checkpoint-2"]  # at the last step
    assert (earlier_run / "final" / "adapter_model.safetensors").is_file()


def test_overwrite_log_path_keeps_files_turbo_did_not_write(earlier_run: Path) -> None:
    (earlier_run / "notes.txt").write_text("mine")
    before = tree(earlier_run)
    result = train(earlier_run, "--set", "overwrite_log_path=true", expect=2)
    assert "holds files turbo did not write (notes.txt)" in result.stderr
    assert tree(earlier_run) == before


# resuming a finished run


def test_resuming_a_finished_run_trains_nothing(earlier_run: Path) -> None:
    before = tree(earlier_run)
    result = train(earlier_run, "--set", "trainer_settings.resume_from_checkpoint=true")
    assert f"the run in {earlier_run} is complete: checkpoint-{STEPS} is its last step" in result.stderr
    assert tree(earlier_run) == before  # final/, metrics, checkpoints: byte for byte
