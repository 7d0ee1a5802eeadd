"""Held-out answers before and after training (inference_chat with the search tool): the share whose final
answer names the reference function (exact: the qualified name; loose: its last part), tool calls per
answer, and a few trajectories with what the policy searched for.

    python examples/agentic/evaluate.py [outputs/agentic_example]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(folder: Path) -> list[dict]:
    path = folder / "model_0" / "generation_0" / "held_out.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def summary(answered: list[dict]) -> dict[str, float]:
    exact = loose = calls = 0
    for row in answered:
        answer, reference = row["answers"][0], row["reference"].lower()
        text = answer["content"].lower()
        exact += reference in text
        loose += reference.rsplit(".", 1)[-1] in text
        calls += sum(segment["role"] == "tool" for segment in answer["segments"])
    count = len(answered)
    return {"exact": exact / count, "loose": loose / count, "calls per answer": calls / count}


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/agentic_example")
    before, after = rows(folder / "before"), rows(folder / "after")
    print(f"{'':20}{'before':>10}{'after':>10}")
    first, second = summary(before), summary(after)
    for name in first:
        print(f"{name:20}{first[name]:10.2f}{second[name]:10.2f}")
    print()
    for row in after[:5]:
        print(f"## {row['messages'][-1]['content']}  (reference {row['reference']})")
        for segment in row["answers"][0]["segments"]:
            print(f"  [{segment['role']}] {segment['text'][:160]}")


if __name__ == "__main__":
    main()
