"""Held-out accuracy before and after training for the GRPO variants of examples/grpo/variants/, over
several seeds, as a Markdown table (the README's "Variants, measured").

    python examples/grpo/compare.py --seeds 1 2 3 [--gpu] [--steps 60] [--variants grpo gspo ...]
    python examples/grpo/compare.py --seeds 1 2 3 --table-only     # re-render from finished runs

Each run is `python -m turbo train_grpo --experiment_settings_path examples/grpo/variants/<v>.json
--set seed=<s> --set log_path=experiments/grpo_compare/<v>/seed_<s>` (plus the --gpu overrides: bf16
weights and training, colocated vLLM rollouts, so the rollout correction acts). Accuracy is
`eval_reward/accuracy/mean` of the 64 held-out problems answered greedily at step 0 (eval_on_start)
and at the last step. A variant's gain differs from grpo's beyond the noise when the gap is larger than
twice its standard error over the seeds (sqrt(s_a^2 / n + s_b^2 / n)).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

VARIANTS = ["grpo", "dr_grpo", "gspo", "grpo_dynamic_corrected"]
FOLDER = Path("experiments/grpo_compare")
GPU = [
    "trainer_settings.use_cpu=false",
    "trainer_settings.bf16=true",
    "model_settings.transformers_settings.dtype=bfloat16",
    "rollout_settings.use_vllm=true",
    "trainer_settings.forward_batch_size=null",
]
ACCURACY = "eval_reward/accuracy/mean"


def run(variant: str, seed: int, steps: int | None, gpu: bool) -> None:
    sets = [f"seed={seed}", f"log_path={FOLDER / variant / f'seed_{seed}'}"]
    if steps is not None:
        sets += [f"trainer_settings.max_steps={steps}", f"trainer_settings.eval_steps={steps}"]
    sets += GPU if gpu else []
    command = [sys.executable, "-m", "turbo", "train_grpo", "--experiment_settings_path",
               f"examples/grpo/variants/{variant}.json"]  # fmt: skip
    for item in sets:
        command += ["--set", item]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def before_after(variant: str, seed: int) -> tuple[float, float]:
    rows = [json.loads(line) for line in (FOLDER / variant / f"seed_{seed}" / "metrics.jsonl").open()]
    evals = [row for row in rows if ACCURACY in row]
    return evals[0][ACCURACY], evals[-1][ACCURACY]


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def table(variants: list[str], seeds: list[int]) -> str:
    gains = {}
    lines = [
        f"| variant | accuracy before | accuracy after | gain (mean ± std, {len(seeds)} seeds) | vs grpo |",
        "| --- | --- | --- | --- | --- |",
    ]
    for variant in variants:
        pairs = [before_after(variant, seed) for seed in seeds]
        gains[variant] = [after - before for before, after in pairs]
        before, after = mean_std([b for b, _ in pairs]), mean_std([a for _, a in pairs])
        gain = mean_std(gains[variant])
        verdict = "—"
        if variant != "grpo" and "grpo" in gains:
            base = mean_std(gains["grpo"])
            gap = gain[0] - base[0]
            noise = 2 * math.sqrt((gain[1] ** 2 + base[1] ** 2) / len(seeds))
            verdict = (
                f"{gap:+.3f} ({'beyond' if abs(gap) > noise else 'within'} the noise, 2 s.e. {noise:.3f})"
            )
        lines.append(
            f"| {variant} | {before[0]:.3f} ± {before[1]:.3f} | {after[0]:.3f} ± {after[1]:.3f} | "
            f"{gain[0]:+.3f} ± {gain[1]:.3f} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=None, help="max_steps (default: the files' 60)")
    parser.add_argument("--gpu", action="store_true", help="bf16 and colocated vLLM rollouts")
    parser.add_argument("--table-only", action="store_true", help="only render the finished runs")
    args = parser.parse_args()
    if not args.table_only:
        for variant in args.variants:
            for seed in args.seeds:
                run(variant, seed, args.steps, args.gpu)
    print(table(args.variants, args.seeds))


if __name__ == "__main__":
    main()
