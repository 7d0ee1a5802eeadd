"""Rollout throughput with tools against the same rollouts without tools, and the share of time in tool calls.

    python benchmarks/rollout_tools.py [--settings EXPERIMENT.json] [--set KEY=VALUE ...]
        [--prompts 8] [--generations 4] [--repeats 3]

`--settings` is a train_grpo experiment with tool_settings (default: the test fixture
tests/fixtures/configs/train/grpo/tools.json; its adapter_path must exist: run the SFT of
tests/fixtures/configs/train/sft/tool_calls.json first, or `--set model_settings.adapter_path=...`). The
policy, tokenizer and rollout engine are built as train_grpo builds them (rollout_settings picks
transformers, colocated vLLM or a vLLM server); the same `--prompts` prompts x `--generations` answers
are sampled `--repeats` times with the tools (multi-turn trajectories) and without them (one turn of
max_new_tokens). Prints trajectories/s, policy tokens/s, tool-result tokens per trajectory, and with
tools the share of the rollout time spent inside tool calls. The first repeat warms up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "configs" / "train" / "grpo" / "tools.json"
sys.path[:0] = [str(REPO), str(REPO / "tests" / "fixtures" / "tools")]  # this turbo; the fixture tool
sys.path.insert(0, str(Path(__file__).resolve().parent))  # conditions.py beside this file

from conditions import describe_conditions  # noqa: E402


def settings_of(path: Path, overrides: list[str]):  # noqa: ANN201 - GrpoExperimentSettings
    from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings

    data = json.loads(path.read_text())
    for override in overrides:
        key, _, value = override.partition("=")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(last) if isinstance(node, list) else last] = parsed
    return GrpoExperimentSettings.model_validate(data)


def measure(settings, tokenizer, model, prompts: list[list[int]], n: int, repeats: int) -> dict[str, float]:  # noqa: ANN001
    from turbo.generators.engines import open_engine
    from turbo.generators.rollout import sync_engine

    with open_engine(settings, tokenizer) as engine:
        sync_engine(engine, model, 0)
        engine.sample(model, prompts, n, False, 0)  # warm-up
        tools_before = getattr(engine, "tool_seconds", 0.0)
        start = time.perf_counter()
        sampled = [s for r in range(repeats) for s in engine.sample(model, prompts, n, False, 1 + r)]
        seconds = time.perf_counter() - start
        tool_seconds = getattr(engine, "tool_seconds", 0.0) - tools_before
    policy = sum(sum(s.policy_mask) for s in sampled)
    tool = sum(len(s.answer_ids) for s in sampled) - policy
    calls = sum(segment.role == "tool" for s in sampled for segment in s.segments)
    return {
        "trajectories/s": len(sampled) / seconds,
        "policy tokens/s": policy / seconds,
        "tool tokens per trajectory": tool / len(sampled),
        "calls per trajectory": calls / len(sampled),
        "share in tool calls": tool_seconds / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, default=FIXTURE)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformers import set_seed

    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.pipelines.train.rollout import load_policy, prompt_split

    print(describe_conditions(), flush=True)
    settings = settings_of(args.settings, args.overrides)
    if not settings.tool_settings:
        raise SystemExit(f"{args.settings}: no tool_settings to compare against")
    set_seed(settings.seed)
    tokenizer = load_tokenizer(settings.tokenizer_settings, settings.model_settings)
    features, _ = prompt_split(settings.train_dataset_settings, tokenizer, settings.seed)
    prompts = [feature["prompt_ids"] for feature in features][: args.prompts]
    prompts += prompts * ((args.prompts - len(prompts)) // max(len(prompts), 1) + 1)
    prompts = prompts[: args.prompts]
    model = load_policy(settings, tokenizer)
    results = {
        "with tools": measure(settings, tokenizer, model, prompts, args.generations, args.repeats),
        "without tools": measure(
            settings.model_copy(update={"tool_settings": []}),
            tokenizer,
            model,
            prompts,
            args.generations,
            args.repeats,
        ),
    }
    names = list(results["with tools"])
    print(f"{'':28}" + "".join(f"{label:>16}" for label in results))
    for name in names:
        print(f"{name:28}" + "".join(f"{results[label][name]:16.3f}" for label in results))
    ratio = results["with tools"]["trajectories/s"] / results["without tools"]["trajectories/s"]
    print(f"trajectories/s with tools / without: {ratio:.2f}")
    print(describe_conditions())


if __name__ == "__main__":
    main()
