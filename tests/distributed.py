"""Launching turbo on several processes in tests, as users do: a free port, the torchrun command line of
one node (N processes) or of one of several nodes simulated on this machine (127.0.0.1), a launch that
checks the exit code, and the launch of all the nodes of a run at once.

    command = ["train_sft", "--experiment_settings_path", str(config), "--set", f"log_path={folder}"]
    launch(torchrun(nproc=2) + command)                # one node, 2 processes
    launch_nodes(command, nnodes=2)                    # 2 nodes of 1 process, both launchers at once

Every launcher runs `python -m torch.distributed.run ... -m turbo COMMAND...` from the repository root
with one thread per process (the machine's cores are shared by both ranks and other tests).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from turbo.pipelines.train.common import checkpoint_step, is_complete_checkpoint

from .helpers import REPO

ENV = {
    **os.environ,
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it), for one launch's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(nproc: int = 2, port: int | None = None, nnodes: int = 1, node_rank: int = 0) -> list[str]:
    """`python -m torch.distributed.run` with `nproc` processes on this node, then `-m turbo`: append the
    command and its options. With nnodes > 1 it is the launcher of node `node_rank` of a run whose nodes
    all meet at 127.0.0.1:port (static rendezvous, as `torchrun --nnodes N --node_rank R --master_addr`
    on a cluster); give every node's launcher the same port."""
    port = port or free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes > 1:
        command += ["--nnodes", str(nnodes), "--node_rank", str(node_rank), "--master_addr", "127.0.0.1"]
    return [*command, "--master_port", str(port), "-m", "turbo"]


def accelerate(nproc: int = 2) -> list[str]:
    """`accelerate launch --multi_gpu` with `nproc` processes (gloo on a machine without GPUs), then
    `-m turbo`."""
    port = str(free_port())
    launcher = ["accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc)]
    return [sys.executable, "-m", *launcher, "--main_process_port", port, "-m", "turbo"]


def failure(command: list[str], returncode: int, stdout: str, stderr: str) -> str:
    return f"{' '.join(command)}\nexited {returncode}\n{stdout[-3000:]}\n{stderr[-8000:]}"


def launch(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a launcher's command line from the repository root; fails the test unless it exits 0."""
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, failure(command, result.returncode, result.stdout, result.stderr)
    return result


def kill_tree(pid: int) -> None:
    """kill -9 a launcher and every process under it, as a node failure would. torchrun starts each rank
    in a session of its own, so killing the launcher's process group would leave the ranks running."""
    with contextlib.suppress(psutil.NoSuchProcess):
        launcher = psutil.Process(pid)
        processes = [launcher, *launcher.children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(processes, timeout=30)


def killed_at_checkpoint(command: list[str], checkpoint: Path, timeout: float = 300) -> None:
    """Start a command line (`... -m turbo COMMAND ...`: a launcher's, or one turbo process's) and kill -9
    it and every process under it once `checkpoint` is complete (its trainer_state.json written); fails
    the test if the run ends or fails before, or went past `checkpoint`. The turbo processes run
    tests/held_turbo.py, which stops after writing `checkpoint`: no step runs past it."""
    start = command.index("turbo")
    assert command[start - 1] == "-m", command
    held = [*command[:start], "tests.held_turbo", *command[start + 1 :]]
    process = subprocess.Popen(
        held,
        cwd=REPO,
        env={**ENV, "TURBO_HOLD_AFTER": checkpoint.name},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    try:
        while not is_complete_checkpoint(checkpoint):
            if process.poll() is not None:
                raise AssertionError(f"training ended before {checkpoint.name}:\n{process.stderr.read()}")
            assert time.monotonic() < deadline, f"no {checkpoint.name} in {timeout} s"
            time.sleep(0.005)
        assert process.poll() is None, "training finished before it could be killed"
    finally:
        kill_tree(process.pid)
        process.wait()
        process.stderr.close()
    saved = [path for path in checkpoint.parent.iterdir() if path.name.startswith("checkpoint-")]
    later = [path.name for path in saved if checkpoint_step(path) > checkpoint_step(checkpoint)]
    assert not later, f"the run went past {checkpoint.name}: {later}"


def launch_nodes(
    turbo_args: list[str], nnodes: int = 2, nproc_per_node: int = 1, timeout: int = 600
) -> list[str]:
    """`nnodes` launchers of the same run started at once, as on `nnodes` machines (one port for all,
    node ranks 0..nnodes-1), each with `nproc_per_node` processes running `turbo turbo_args...`. Waits
    for all of them and fails the test unless every one exits 0; when one fails or time runs out, the
    others are stopped (they would wait for their peer forever). Returns each node's output."""
    port, deadline = free_port(), time.monotonic() + timeout
    commands = [torchrun(nproc_per_node, port, nnodes, rank) + list(turbo_args) for rank in range(nnodes)]
    with contextlib.ExitStack() as stack:  # files, not pipes: a pipe nobody reads could fill and block
        outputs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in commands]
        processes = [
            subprocess.Popen(
                command,
                cwd=REPO,
                env=ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            for command, out in zip(commands, outputs, strict=True)
        ]
        try:
            while any(p.poll() is None for p in processes) and all(p.poll() in (None, 0) for p in processes):
                assert time.monotonic() < deadline, f"the {nnodes} nodes did not finish in {timeout} s"
                time.sleep(0.2)
        finally:
            for process in processes:
                if process.poll() is None:
                    kill_tree(process.pid)
                process.wait()
        texts = []
        for out in outputs:
            out.seek(0)
            texts.append(out.read())
    for command, process, text in zip(commands, processes, texts, strict=True):
        assert process.returncode == 0, failure(command, process.returncode, "", text)
    return texts
