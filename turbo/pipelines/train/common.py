"""Steps every training pipeline shares, as plain functions."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from turbo.errors import RunComplete, SettingsError, TurboError
from turbo.io import replace_dir, write_json, write_jsonl
from turbo.pipelines.preflight import logging_backend
from turbo.reading import output_folder_problem
from turbo.settings.base import settings_as_run
from turbo.settings.outputs import experiment_folder_problems, is_turbo_entry, refuse
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings

logger = logging.getLogger("turbo")

CHECKPOINTS = "checkpoints"
FINAL = "final"
METRICS = "metrics.jsonl"


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def prepare_experiment_folder(settings: BaseTrainExperimentSettings) -> Path:
    """Create log_path and record the settings as run."""
    folder = Path(settings.log_path)
    problem = output_folder_problem(folder)
    if problem:
        raise SettingsError(f"log_path: {problem}")
    if is_main_process():
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "experiment_settings.json", settings_as_run(settings))
    return folder


def check_logging_backend(settings: BaseTrainExperimentSettings) -> None:
    """Fail before any model loads if the chosen logger is not installed (the preflight's check)."""
    for problem in logging_backend(settings):
        raise SettingsError(problem)


def report_to(settings: BaseTrainExperimentSettings, folder: Path) -> list[str]:
    """The trainer's report_to, with the environment the chosen logger reads."""
    from turbo.trainers.loggers import LOGGERS

    logging_settings = settings.logging_settings
    if logging_settings is None:
        return []
    return LOGGERS[logging_settings.logging_type].report_to(logging_settings, folder)


def training_arguments(settings: BaseTrainExperimentSettings, folder: Path, **extra: Any) -> Any:
    import torch
    from transformers import TrainingArguments

    run_name = getattr(settings.logging_settings, "run_name", None)
    kwargs = settings.trainer_settings.training_arguments()
    if not torch.accelerator.is_available():
        # On a machine without GPUs, accelerate sets up a process that torchrun (or any launcher)
        # started as one of several only with use_cpu (a gloo group); without it every rank runs
        # alone: each one is the main process and writes the logs and final/, and DeepSpeed counts a
        # world size of 1 ("auto" batch sizes fail). The run is on the CPU either way.
        kwargs["use_cpu"] = True
    return TrainingArguments(
        output_dir=str(folder / CHECKPOINTS),
        seed=settings.training_seed,
        report_to=report_to(settings, folder),
        run_name=run_name,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        **kwargs,
        **extra,
    )


def is_complete_checkpoint(path: Path) -> bool:
    """transformers writes trainer_state.json last (after the weights, optimizer, scheduler and RNG
    states): a checkpoint folder is complete once that file is whole."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def complete_checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoint-N folders under folder/checkpoints, oldest step first."""
    checkpoints = folder / CHECKPOINTS
    if not checkpoints.is_dir():
        return []
    found = [path for path in checkpoints.glob("checkpoint-*") if path.name.split("-", 1)[1].isdigit()]
    return sorted((path for path in found if is_complete_checkpoint(path)), key=checkpoint_step)


def remove_incomplete_checkpoints(folder: Path) -> list[Path]:
    """Delete what a killed run left half-written (checkpoint folders without a whole trainer state),
    so that nothing later mistakes them for checkpoints. Main process only."""
    checkpoints = folder / CHECKPOINTS
    if not is_main_process() or not checkpoints.is_dir():
        return []
    complete = set(complete_checkpoints(folder))
    removed = [path for path in checkpoints.glob("checkpoint-*") if path.is_dir() and path not in complete]
    for path in removed:
        logger.warning("removing the incomplete checkpoint %s (a run was stopped while writing it)", path)
        shutil.rmtree(path, ignore_errors=True)
    return removed


def find_checkpoint(settings: BaseTrainExperimentSettings, folder: Path) -> Path | None:
    """The checkpoint to resume from: the newest complete one (true) or the given path. Reads only."""
    resume = settings.trainer_settings.resume_from_checkpoint
    if resume in (None, False):
        return None
    if resume is True:
        complete = complete_checkpoints(folder)
        if not complete:
            raise TurboError(
                f"trainer_settings.resume_from_checkpoint: no complete checkpoint in {folder / CHECKPOINTS}"
            )
        return complete[-1]
    checkpoint = Path(resume)
    if not checkpoint.is_dir():
        raise TurboError(f"trainer_settings.resume_from_checkpoint: {resume} is not a checkpoint folder")
    if not is_complete_checkpoint(checkpoint):
        raise TurboError(
            f"trainer_settings.resume_from_checkpoint: {resume} is incomplete (no whole "
            "trainer_state.json); resume from an earlier checkpoint"
        )
    return checkpoint


def stop_if_complete(settings: BaseTrainExperimentSettings, folder: Path, checkpoint: Path | None) -> None:
    """A resumed run whose checkpoint is already at its last step has nothing to train: say so (the CLI
    exits 0) and leave final/ as it is. (transformers would train one step more from a checkpoint that
    ends mid-epoch.)"""
    if checkpoint is None:
        return
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    step, trainer = state["global_step"], settings.trainer_settings
    if trainer.max_steps > 0:
        last = trainer.max_steps
    elif state.get("num_train_epochs") == math.ceil(trainer.num_train_epochs):
        last = state.get("max_steps", math.inf)
    else:
        return  # another number of epochs: transformers plans the steps again
    if step < last:
        return
    if not (folder / FINAL).is_dir():
        raise TurboError(
            f"trainer_settings.resume_from_checkpoint: {checkpoint} is the last step ({step}) of the "
            f"run, but {folder / FINAL} is missing (the run was stopped while saving it); the trained "
            f"weights are in {checkpoint}, or raise trainer_settings.max_steps to train on"
        )
    raise RunComplete(
        f"the run in {folder} is complete: {checkpoint.name} is its last step ({step}); {folder / FINAL} "
        "is left as it is (raise trainer_settings.max_steps to train on)"
    )


def resume_checkpoint(settings: BaseTrainExperimentSettings, folder: Path) -> str | None:
    """The checkpoint to resume from (see find_checkpoint), as the trainer takes it.

    Checkpoint folders a killed run left incomplete are removed first. When resuming, the metrics
    log keeps only the steps up to the checkpoint, so the resumed steps are not logged twice.
    """
    remove_incomplete_checkpoints(folder)
    checkpoint = find_checkpoint(settings, folder)
    if checkpoint is None:
        return None
    step = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    trim_metrics_log(folder / METRICS, step)
    logger.info("resuming from %s (step %d)", checkpoint, step)
    return str(checkpoint)


def clear_experiment(folder: Path) -> None:
    """overwrite_log_path: delete what an earlier run wrote here (only turbo's own entries; the check
    before refuses a folder with anything else). Main process only."""
    if not is_main_process() or not folder.is_dir():
        return
    for path in folder.iterdir():
        if is_turbo_entry(path.name):
            logger.warning("overwrite_log_path: deleting %s of the earlier run", path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def trim_metrics_log(path: Path, step: int) -> None:
    """Keep the rows logged up to `step` (and drop a line cut short by a kill). Main process only."""
    if not is_main_process() or not path.is_file():
        return
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("step", 0) <= step:
            rows.append(row)
    write_jsonl(path, rows)


def start_experiment(settings: BaseTrainExperimentSettings) -> tuple[Path, str | None]:
    """The first steps of every training pipeline, before any data or model loads: check the logger and
    log_path (a new folder, or the earlier run that this one resumes or restarts), stop if a resumed
    run is already complete, create the experiment folder with the settings as run, find the checkpoint
    to resume, seed."""
    from transformers import set_seed

    check_logging_backend(settings)
    if is_main_process():  # other ranks would race with the main one creating the folder
        refuse(experiment_folder_problems(settings))
    folder = Path(settings.log_path)
    stop_if_complete(settings, folder, find_checkpoint(settings, folder))
    if settings.overwrite_log_path:
        clear_experiment(folder)
    prepare_experiment_folder(settings)
    resume = resume_checkpoint(settings, folder)
    set_seed(settings.training_seed)
    return folder, resume


def policy_tokenizer(settings: Any) -> Any:
    """The tokenizer of model_settings (tokenizer_settings), the special tokens added."""
    from turbo.modeling.tokenizer import load_tokenizer

    return load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )


def metrics_log(folder: Path) -> Any:
    """The callback that writes every logged row to folder/metrics.jsonl."""
    from turbo.trainers.callbacks import MetricsLogCallback

    return MetricsLogCallback(folder / METRICS)


def attach_loggers(trainer: Any, settings: BaseTrainExperimentSettings) -> None:
    """The loggers that report_to does not start (ClearML)."""
    from turbo.trainers.loggers import LOGGERS

    logging_settings = settings.logging_settings
    callback = LOGGERS[logging_settings.logging_type].callback if logging_settings is not None else None
    if callback is not None:
        configuration = settings.model_dump(mode="json")
        trainer.add_callback(callback(logging_settings, Path(settings.log_path).name, configuration))


def run_training(trainer: Any, settings: BaseTrainExperimentSettings, resume: str | None) -> None:
    """The loggers attached, then `trainer.train`, stopped (TrainingDivergedError, exit code 3) when the
    loss or gradient norm stops being finite, before another checkpoint or the final model is written."""
    from turbo.trainers.divergence import DivergenceCallback

    attach_loggers(trainer, settings)
    trainer.add_callback(DivergenceCallback())
    trainer.train(resume_from_checkpoint=resume)


def end_run(
    trainer: Any,
    settings: BaseTrainExperimentSettings,
    tokenizer: Any,
    folder: Path,
    resume: str | None,
    what: str | None = None,
) -> Path:
    """The end of a train run once its trainer is built (and its cherry-picks attached): loggers,
    training, then the final model saved (see save_final)."""
    run_training(trainer, settings, resume)
    return save_final(trainer, tokenizer, folder, what)


def saved_kind(model: Any) -> str:
    """ "adapter" where the model (or a multimodal model's LM) trains one, else "model"."""
    return "adapter" if hasattr(getattr(model, "language_model", model), "peft_config") else "model"


def save_final(trainer: Any, tokenizer: Any, folder: Path, what: str | None = None) -> Path:
    """The final model or adapter plus tokenizer, written to a temporary folder and renamed; logged as
    `what` was saved (by default the adapter or the model).

    The last step of every training pipeline: under DeepSpeed ZeRO-3 every rank takes part in
    gathering the weights, and the process group of a distributed run is ended afterwards (leaving
    it to the interpreter's exit can crash).
    """
    from turbo.trainers.divergence import check_finite_weights

    check_finite_weights(trainer.model, trainer.state.global_step, trainer.args)  # never a NaN final/
    target = folder / FINAL
    tmp = folder / f".{FINAL}.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the settings are in JSON
        tokenizer.save_pretrained(tmp)
        replace_dir(tmp, target)
        write_run_report(folder)
    trainer.accelerator.wait_for_everyone()
    end_distributed()
    logger.info("saved the final %s to %s", what or saved_kind(trainer.model), target)
    return target


def write_run_report(folder: Path) -> None:
    """report.html of the finished run; a failure to draw it is logged, never fails the run."""
    from turbo.pipelines.tools.report import write_report

    try:
        logger.info("wrote the run report %s", write_report(folder))
    except Exception as exc:  # the model is saved; the report can be made again with `turbo report`
        logger.warning("could not write the run report: %s", exc)


def end_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share_prompts(trainer_settings: Any, flat: bool, *models: Any) -> bool:
    """Whether answers that share a prompt are scored over one copy of it (trainer_settings.share_prompts,
    train_dpo and train_grpo): padding-free rows, not under DeepSpeed ZeRO-3, and every scoring model able
    to (turbo.trainers.logps.scores_shared_prompts). Decided once."""
    from turbo.settings.deepspeed import zero3
    from turbo.trainers.logps import scores_shared_prompts

    enabled = flat and trainer_settings.share_prompts and not zero3(trainer_settings.deepspeed)
    return enabled and scores_shared_prompts(*models)
