"""Arithmetic word problems with exact answers, generated offline (seeded): train and held-out sets.

    python examples/grpo/make_problems.py [--train 512] [--val 64] [--out examples/grpo/data]

Each record is a chat prompt with the answer in `reference` (read by the number_match reward):
{"id": "train-0", "messages": [{"role": "user", "content": "Mia has 7 apples ..."}], "reference": "12"}
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Mia", "Tom", "Ana", "Leo", "Sara", "Ben", "Ivy", "Max", "Zoe", "Sam"]
THINGS = ["apples", "pencils", "books", "coins", "cards", "stickers", "marbles", "shells"]
SYSTEM = "Solve the problem. Reply with the final number only."


def problem(rng: random.Random) -> tuple[str, int]:
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    a, b = rng.randint(2, 20), rng.randint(1, 9)
    kind = rng.choice(["more", "gives", "twice"])
    if kind == "more":
        return (
            f"{name} has {a} {thing} and gets {b} more from {other}. How many {thing} does {name} have now?",
            a + b,
        )
    if kind == "gives":
        a = a + b
        return (
            f"{name} has {a} {thing} and gives {b} to {other}. How many {thing} does {name} have left?",
            a - b,
        )
    return f"{name} has {b} {thing}. {other} has twice as many. How many {thing} does {other} have?", 2 * b


def records(count: int, split: str, seed: int) -> list[dict]:
    rng = random.Random(f"{split}:{seed}")
    out = []
    for i in range(count):
        text, answer = problem(rng)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        out.append({"id": f"{split}-{i}", "messages": messages, "reference": str(answer)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--val", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("examples/grpo/data"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    val = records(args.val, "val", args.seed)
    seen = {record["messages"][1]["content"] for record in val}
    train = [
        r for r in records(args.train * 2, "train", args.seed) if r["messages"][1]["content"] not in seen
    ]
    for name, rows in (("train", train[: args.train]), ("val", val)):
        path = args.out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        print(f"wrote {len(rows)} problems to {path}")


if __name__ == "__main__":
    main()
