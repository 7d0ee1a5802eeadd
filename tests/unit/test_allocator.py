"""turbo.cli.allocator: a pipeline command's process (and its children) reuses freed memory for the next
step's large allocations instead of faulting in new pages; the user's own allocator choice is kept.
Page faults are counted in fresh processes (glibc's settings cannot be undone in this one)."""

import ctypes
import os
import resource
import subprocess
import sys
from pathlib import Path

from turbo.cli.allocator import SETTINGS, user_allocator

from ..helpers import CONFIGS, REPO

BLOCK = 10 * 2**20
PAGES = 10 * 8 * BLOCK // resource.getpagesize()  # what 10 steps touch


def churn() -> int:
    """Page faults of 10 steps that each allocate, write and free 8 blocks of 10 MiB (a training step's
    activations), after one step that brings the memory in."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def step() -> None:
        blocks = [libc.malloc(BLOCK) for _ in range(8)]
        for block in blocks:
            ctypes.memset(block, 1, BLOCK)
        for block in blocks:
            libc.free(block)

    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def print_churn(settings: object) -> None:
    """A pipeline stand-in: prints the page faults of churn() in the command's process."""
    print("FAULTS", churn())


def faults_in_process(code: str, env: dict[str, str] | None = None) -> int:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    environ.pop("LD_PRELOAD", None)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{code}\nfrom tests.unit.test_allocator import churn\nprint('FAULTS', churn())",
        ],
        cwd=REPO,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split("FAULTS")[1].split()[0])  # the first count printed


def test_a_tuned_process_reuses_freed_memory_where_glibc_faults_every_step_in_again() -> None:
    assert faults_in_process("") > PAGES // 2  # glibc trims the freed heap top: new pages every step
    tuned = "from turbo.cli.allocator import tune_allocator\nassert tune_allocator()"
    assert faults_in_process(tuned) < PAGES // 20


def test_child_processes_get_the_same_settings_through_the_environment() -> None:
    environ = {name: str(value) for name, value in SETTINGS.values()}
    assert faults_in_process("", env=environ) < PAGES // 20


def test_the_users_own_allocator_settings_are_kept() -> None:
    code = "from turbo.cli.allocator import tune_allocator\nassert not tune_allocator()"
    assert faults_in_process(code, env={"MALLOC_ARENA_MAX": "2"}) > PAGES // 2
    assert faults_in_process(code, env={"TURBO_MALLOC": "default"}) > PAGES // 2
    assert user_allocator({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) == "LD_PRELOAD"
    assert user_allocator({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == "GLIBC_TUNABLES"
    assert user_allocator({"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "PATH": "/bin"}) is None


def test_a_pipeline_command_runs_with_the_tuned_allocator(fixture_models: Path, tmp_path: Path) -> None:
    pipeline = "tests.unit.test_allocator:print_churn"
    settings = CONFIGS / "train" / "sft" / "lora.json"
    code = (
        "import dataclasses\n"
        "from pathlib import Path\n"
        "from turbo.cli.app import run_command\n"
        "from turbo.settings.commands import COMMANDS\n"
        f"command = dataclasses.replace(COMMANDS['train_sft'], pipeline={pipeline!r})\n"
        f"run_command(command, Path({str(settings)!r}), ['log_path={tmp_path}'])\n"
    )
    assert faults_in_process(code) < PAGES // 20
