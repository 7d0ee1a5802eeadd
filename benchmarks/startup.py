"""Start-up: `python -m turbo --help`, `validate`, and the time to the first SFT step, split into parts.

    python benchmarks/startup.py [--repeat 5] [--model models/smollm2-135m-instruct]
    python benchmarks/startup.py --model tests/fixtures/models/llama_tiny --repeat 1   # a smoke run

Prints the machine (CPU model, cores, load average before each part), then, as the median of --repeat
fresh processes (wall seconds, and CPU seconds, which the machine's other load changes less):

- `python -c pass` (the interpreter alone), `python -m turbo --help` (goal <= 0.25 s) and
  `python -m turbo validate FILE --command train_sft` (goal <= 0.3 s, torch not imported: checked);
- the time to the first step of `train_sft` (LoRA, 1 step) with a warm dataset cache, split into:
  imports (torch, transformers, peft, turbo's SFT pipeline and trainer), settings (read, validated,
  preflight), experiment folder, tokenizer, dataset (the splits from the warm cache), model load,
  trainer construction (collator, TrainingArguments, SftTrainer), train set-up (transformers'
  `train()` up to the first step: optimizer, data loader, callbacks) and the first step itself.
  A first, unmeasured run fills the dataset cache (a temporary folder, TURBO_DATASET_CACHE).

The parts are timed around the functions the real pipeline calls (turbo.pipelines.train.sft.run
through turbo.cli.app.run_command, the same path as `python -m turbo train_sft`), so the sum is the
command's own time to its first step, interpreter start excepted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import cpu_model, load_average

REPO = Path(__file__).resolve().parent.parent
VALIDATE_FILE = "tests/fixtures/configs/train/sft/lora.json"
PARTS = [
    "imports",
    "settings",
    "experiment folder",
    "tokenizer",
    "dataset",
    "model load",
    "trainer construction",
    "train set-up",
    "first step",
]
WORDS = ["the", "a", "of", "river", "mountain", "city", "light", "small", "quick", "answer", "question"]


def timed_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def command_times(repeat: int) -> None:
    python = sys.executable
    check = (
        "import sys, io, contextlib\nfrom turbo.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['validate', {VALIDATE_FILE!r}, '--command', 'train_sft'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'peft') if m in sys.modules]\n"
        "sys.exit(f'validate imported {heavy}' if heavy else 0)\n"
    )
    timed_process([python, "-c", check])  # fails loudly if validate imports torch
    commands = {
        "python -c pass": ([python, "-c", "pass"], None),
        "python -m turbo --help": ([python, "-m", "turbo", "--help"], 0.25),
        f"python -m turbo validate {VALIDATE_FILE} --command train_sft": (
            [python, "-m", "turbo", "validate", VALIDATE_FILE, "--command", "train_sft"],
            0.3,
        ),
    }
    print(f"commands (median of {repeat}; {load_average()}; torch not imported by validate: checked)")
    for name, (command, goal) in commands.items():
        timed_process(command)  # warm the file cache
        runs = [timed_process(command) for _ in range(repeat)]
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        verdict = "" if goal is None else f"  goal <= {goal} s: {'met' if wall <= goal else 'NOT met'}"
        print(f"  {name:80s} wall {wall:6.3f} s  cpu {cpu:6.3f} s{verdict}")


# ---- time to the first SFT step (a worker process per run)


def write_inputs(folder: Path, model: str, records: int) -> Path:
    rng = random.Random(0)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."

    data = folder / "chat.jsonl"
    rows = [
        {
            "id": str(i),
            "messages": [
                {"role": "user", "content": sentence(8, 40)},
                {"role": "bot", "content": sentence(10, 80)},
            ],
        }
        for i in range(records)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = {
        "train_dataset_settings": {
            "sources": [{"name": "bench", "records_path": str(data), "sample_rate": 1.0}],
            "dataset_type": "chat",
            "max_tokens_count": 256,
        },
        "model_settings": {
            "model_path": model,
            "peft_settings": {
                "name": "LORA",
                "r": 16,
                "lora_alpha": 32,
                "target_modules": ["q_proj", "v_proj"],
            },
        },
        "trainer_settings": {
            "per_device_train_batch_size": 8,
            "max_steps": 1,
            "logging_steps": 1,
            "save_strategy": "no",
            "use_cpu": True,
            "disable_tqdm": True,
        },
        "log_path": str(folder / "run"),
    }
    path = folder / "sft.json"
    path.write_text(json.dumps(settings))
    return path


def first_step_worker(settings_path: str, log_path: str) -> dict[str, float]:
    """One train_sft run to its first step, each part timed around the function the pipeline calls."""
    marks: dict[str, float] = {"start": time.perf_counter()}
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import turbo.pipelines.train.common as common
    import turbo.pipelines.train.sft as sft
    import turbo.trainers.sft  # noqa: F401
    from turbo.cli.app import run_command
    from turbo.settings.commands import COMMANDS

    marks["imports"] = time.perf_counter()

    def timed(module: Any, name: str, before: str, after: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            marks[before] = time.perf_counter()
            result = original(*args, **kwargs)
            marks[after] = time.perf_counter()
            return result

        setattr(module, name, wrapper)

    timed(sft, "start_experiment", "settings", "experiment folder")
    timed(sft, "policy_tokenizer", "tokenizer start", "tokenizer")
    timed(sft, "load_splits", "dataset start", "dataset")
    timed(sft, "load_model", "model start", "model load")
    timed(sft, "end_run", "trainer construction", "end")

    class StepTimes(transformers.TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            marks.setdefault("train set-up", time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            marks.setdefault("first step", time.perf_counter())

    run_training = common.run_training

    def with_step_times(trainer: Any, *args: Any) -> None:
        trainer.add_callback(StepTimes())
        marks["train start"] = time.perf_counter()
        run_training(trainer, *args)

    common.run_training = with_step_times
    run_command(COMMANDS["train_sft"], Path(settings_path), [f"log_path={json.dumps(log_path)}"])
    starts = {  # each part runs from the end of the one before it, but these start at their own call
        "tokenizer": "tokenizer start",
        "dataset": "dataset start",
        "model load": "model start",
        "train set-up": "train start",
    }
    seconds, previous = {}, "start"
    for part in PARTS:
        begin = starts.get(part, previous)
        seconds[part] = marks[part] - marks[begin]
        previous = part
    return seconds


def first_step_times(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = write_inputs(folder, args.model, args.records)
        env = {**os.environ, "TURBO_DATASET_CACHE": str(folder / "cache")}
        runs = []
        for index in range(args.repeat + 1):  # the first run fills the dataset cache, not kept
            command = [sys.executable, __file__, "--worker", str(settings), str(folder / f"run{index}")]
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
            lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
            if result.returncode != 0 or not lines:
                raise SystemExit(f"first-step worker failed:\n{result.stderr[-4000:]}")
            if index:
                runs.append(json.loads(lines[-1].removeprefix("RESULT ")))
    print(
        f"time to the first train_sft step, warm dataset cache ({args.model}, LoRA, batch 8; "
        f"median of {args.repeat}; {load_average()}):"
    )
    total = 0.0
    for part in PARTS:
        value = statistics.median(run[part] for run in runs)
        total += value
        print(f"  {part:22s} {value:6.2f} s{'  (over 1 s)' if value > 1 else ''}")
    print(f"  {'total':22s} {total:6.2f} s (+ the interpreter's start)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median is printed")
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--skip-first-step", action="store_true", help="only --help and validate")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, str(REPO))
        print("RESULT " + json.dumps(first_step_worker(*args.worker)), flush=True)
        return
    print(f"machine: {cpu_model()}, python {platform.python_version()}")
    command_times(args.repeat)
    if not args.skip_first_step:
        first_step_times(args)


if __name__ == "__main__":
    main()
