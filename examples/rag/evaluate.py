"""Score the example: retrieval recall@1/@5 against each question's gold passages, and how often the
answer names the right function, with and without retrieval.

    python examples/rag/evaluate.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path("outputs/rag_example")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    with_rows = read(OUT / "with_retrieval" / "model_0" / "generation_0" / "questions.jsonl")
    without_rows = read(OUT / "without_retrieval" / "model_0" / "generation_0" / "questions.jsonl")
    recall1 = sum(row["retrieved_ids"][0] in row["gold"] for row in with_rows) / len(with_rows)
    recall5 = sum(bool(set(row["retrieved_ids"][:5]) & set(row["gold"])) for row in with_rows) / len(
        with_rows
    )

    def named(rows: list[dict]) -> float:
        return sum(row["keyword"].lower() in row["answers"][0]["content"].lower() for row in rows) / len(rows)

    print(f"questions: {len(with_rows)}")
    print(f"retrieval recall@1: {recall1:.2f}   recall@5: {recall5:.2f}")
    print(
        f"answer names the right function: with retrieval {named(with_rows):.2f}, "
        f"without {named(without_rows):.2f}"
    )
    print()
    for with_row, without_row in zip(with_rows, without_rows, strict=True):
        question = with_row["messages"][-1]["content"]
        print(f"Q: {question}  (gold: {', '.join(with_row['gold'])})")
        print(f"   retrieved: {', '.join(with_row['retrieved_ids'])}")
        print(f"   with retrieval:    {with_row['answers'][0]['content'].strip()[:160]!r}")
        print(f"   without retrieval: {without_row['answers'][0]['content'].strip()[:160]!r}")


if __name__ == "__main__":
    main()
