"""What turbo may write, and where: names that stay inside their folder, and output folders that never
hold anything turbo did not write.

The `*_problems` functions only read the file system and return one line per problem ('field: what is
wrong; what to do'); a pipeline calls them before any model loads, and `validate` can report them too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, StrictInt

from turbo.errors import SettingsError
from turbo.reading import output_folder_problem

MANIFEST = "turbo_output.json"  # marks a folder written by a turbo tool command (merge, convert_gguf)
EXPERIMENT_MARKER = "experiment_settings.json"  # marks an experiment folder (log_path)
# what a training run writes into its log_path; a clean restart removes exactly these
RUN_OUTPUTS = ("metrics.jsonl", "checkpoints", "final", "cherry_picks", "eval_answers", "rollouts")
EXPERIMENT_ENTRIES = (
    *RUN_OUTPUTS,
    EXPERIMENT_MARKER,
    "data_report.json",
    "samples_preview.txt",
    "tensorboard",
    "wandb",
    "report.html",
    "report_files",
)


def is_turbo_entry(name: str) -> bool:
    """An entry a training run writes into log_path (or its temporary '.NAME.*' while writing it)."""
    return name in EXPERIMENT_ENTRIES or any(name.startswith(f".{entry}.") for entry in EXPERIMENT_ENTRIES)


def _plain_file_name(value: str) -> str:
    """A name used for a file inside an output folder: one plain path component."""
    if not value.strip():
        raise ValueError("must not be empty (it names an output file)")
    bad = [part for part in ("/", "\\", "\x00") if part in value]
    if bad or value.strip() in (".", ".."):
        raise ValueError(
            f"{value!r} names an output file, so it must be a plain name: no '/', '\\', NUL, "
            "'.' or '..', not an absolute path"
        )
    return value


def _not_current_folder(value: Path) -> Path:
    if value == Path("."):
        raise ValueError(
            "must name a folder of its own (it is empty or '.', so turbo would write into the current "
            "folder); e.g. experiments/my_run"
        )
    return value


SIZE = re.compile(r"[1-9][0-9]*(GiB|MiB|KiB|GB|MB|KB)")  # what transformers' save_pretrained reads


def _file_size(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value} bytes: a size is at least 1 byte")
        return value
    if not SIZE.fullmatch(value):
        raise ValueError(
            f'{value!r} is not a size; write a whole number and a unit, e.g. "5GB", "500MB", '
            '"10KiB" (KB, MB, GB, KiB, MiB, GiB), or a number of bytes'
        )
    return value


FileName = Annotated[str, AfterValidator(_plain_file_name)]
"""A user string that names a file inside an output folder (dataset source `name`)."""

OutputFolder = Annotated[Path, AfterValidator(_not_current_folder)]
"""A folder turbo writes into as a whole (log_path, merge save_path): never '' or '.'."""

FileSize = Annotated[StrictInt | str, AfterValidator(_file_size)]
"""A size as transformers' save_pretrained takes it: "5GB", "500MB", "10KiB", or a number of bytes."""


def refuse(problems: list[str]) -> None:
    """Raise one SettingsError listing every problem (the CLI prints it and exits 2)."""
    if problems:
        raise SettingsError("\n".join(problems))


def manifest_command(folder: Path) -> str | None:
    """The command named in a folder's turbo_output.json, if it has a readable one."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    return command if isinstance(command, str) else None


def manifest(command: str, **inputs: Any) -> dict[str, Any]:
    """The content of turbo_output.json for a folder written by `command`."""
    return {"command": command, "inputs": {key: str(value) for key, value in inputs.items()}}


def _overlap(output: Path, source: Path) -> str | None:
    """How `output` and an input path overlap ('is', 'is inside', 'contains'), or None."""
    out, src = output.resolve(), source.resolve()
    if out == src:
        return "is"
    if out.is_relative_to(src):
        return "is inside"
    if src.is_relative_to(out):
        return "contains"
    return None


def output_folder_problems(
    field: str, save_path: Path, command: str, overwrite: bool, inputs: dict[str, Path | None], flag: str
) -> list[str]:
    """Problems with writing a whole folder to `save_path` for `command`.

    Refused: save_path equal to, inside or containing an input; a file; a non-empty folder unless it
    holds a previous output of the same command (turbo_output.json) and `overwrite` is set (`flag` names
    the setting that sets it).
    """
    if save_path == Path("."):
        return [f"{field}: must name a folder of its own, not the current folder ('' or '.')"]
    problems = []
    for name, source in inputs.items():
        if source is None:
            continue
        overlap = _overlap(save_path, Path(source))
        if overlap is not None:
            problems.append(
                f"{field}: {save_path} {overlap} the input {name} ({source}); "
                "choose a separate folder for the output"
            )
    if problems:
        return problems
    if save_path.is_file() or (save_path.exists() and not save_path.is_dir()):
        return [f"{field}: {save_path} is a file, not a folder; choose a new folder for the output"]
    if problem := output_folder_problem(save_path):  # under a file, in /proc, on a read-only mount
        return [f"{field}: {problem}"]
    if not save_path.is_dir() or not any(save_path.iterdir()):
        return []
    previous = manifest_command(save_path)
    if previous != command:
        return [
            f"{field}: {save_path} is not empty and was not written by turbo {command} (no {MANIFEST}); "
            "turbo does not replace folders it did not write: choose a new or empty folder"
        ]
    if not overwrite:
        return [
            f"{field}: {save_path} holds the output of an earlier {command}; set {flag} to replace it, "
            "or choose a new folder"
        ]
    return []


def merge_output_problems(settings: Any) -> list[str]:
    """merge_adapters_to_base (MergeAdaptersSettings): save_path is a new folder, or an earlier merge
    output with overwrite."""
    inputs = {
        "model_settings.model_path": settings.model_settings.model_path,
        "adapter_path": settings.adapter,
        "tokenizer_settings.tokenizer_path": settings.tokenizer_settings.tokenizer_path,
    }
    command, flag = "merge_adapters_to_base", "overwrite: true"
    return output_folder_problems("save_path", settings.save_path, command, settings.overwrite, inputs, flag)


def gguf_output_problems(gguf_path: Path, save_path: Path, overwrite: bool) -> list[str]:
    """convert_gguf: save_path is a new folder, or an earlier convert_gguf output with --overwrite."""
    return output_folder_problems(
        "--save_path", save_path, "convert_gguf", overwrite, {"--gguf_path": gguf_path}, "--overwrite"
    )


def is_experiment_folder(folder: Path) -> bool:
    return (folder / EXPERIMENT_MARKER).is_file()


def has_run_outputs(folder: Path) -> bool:
    """A run has written metrics, checkpoints or a final model here (not just its settings)."""
    return any((folder / name).exists() for name in RUN_OUTPUTS)


def experiment_folder_problems(settings: Any) -> list[str]:
    """log_path of a train command (BaseTrainExperimentSettings): a new or empty folder, or an
    experiment folder that this run resumes or restarts.

    Never two runs in one folder: a folder with an earlier run's outputs needs
    trainer_settings.resume_from_checkpoint or overwrite_log_path: true.
    """
    folder = Path(settings.log_path)
    if folder.exists() and not folder.is_dir():
        return [f"log_path: {folder} is a file, not a folder; choose a new folder for the experiment"]
    if not folder.is_dir() or not any(folder.iterdir()):
        return []
    if not is_experiment_folder(folder):
        return [
            f"log_path: {folder} is a folder that is not empty and is not a turbo experiment (no "
            f"{EXPERIMENT_MARKER}); choose a new or empty folder"
        ]
    if settings.overwrite_log_path:
        unknown = sorted(path.name for path in folder.iterdir() if not is_turbo_entry(path.name))
        if unknown:
            return [
                f"log_path: overwrite_log_path would restart {folder}, but it holds files turbo did not "
                f"write ({', '.join(unknown)}); move them away or choose a new log_path"
            ]
        return []
    resume = settings.trainer_settings.resume_from_checkpoint
    if resume in (None, False) and has_run_outputs(folder):
        return [
            f"log_path: {folder} holds an earlier run; resume it with "
            "trainer_settings.resume_from_checkpoint: true, or choose a new log_path "
            "(overwrite_log_path: true deletes the earlier run and starts again)"
        ]
    return []
