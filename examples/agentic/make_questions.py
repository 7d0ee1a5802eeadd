"""Questions whose answers are in the corpus of examples/rag: for a function or method passage, the
question is its docstring's first sentence ("Which Python standard-library function does this: ...?") and
the reference its qualified name (the passage's title). Train and held-out questions are disjoint.

    python examples/agentic/make_questions.py outputs/rag_example/passages.jsonl outputs/agentic_example
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SYSTEM = (
    "You answer questions about the Python standard library with the help of a search engine. "
    "First search: write <search>your query</search>. The passages found come back as "
    "<result>...</result>. Then answer with the qualified name of the function."
)
# One worked exchange before the question (a few-shot turn): without it SmolLM2-135M-Instruct never
# writes <search> (0 of 64 samples at temperature 1); with it, 57 of 64 samples and every greedy answer
# search. The result is what the example's index returns for the query; its function is left out of
# the questions.
EXAMPLE_TITLE = "operator.setitem"
EXAMPLE = [
    {"role": "user", "content": "Which function does this: Same as a[b] = c?"},
    {
        "role": "assistant",
        "content": "<search>Same as a[b] = c</search>\n<result>operator.setitem / Same as a[b] = c. // "
        "operator.eq / Same as a == b. // operator.and_ / Same as a & b.</result>\noperator.setitem",
    },
]
TRAIN, HELD_OUT = 256, 64


def first_sentence(text: str) -> str:
    sentence = text.split(". ")[0].split("\n")[0].strip().rstrip(".")
    return sentence


def questions(passages: list[dict]) -> list[dict]:
    out = []
    for passage in passages:
        title, sentence = passage["title"], first_sentence(passage["text"])
        if (
            title.count(".") < 1
            or not 5 <= len(sentence.split()) <= 30
            or title.split(".")[-1].startswith("_")
            or title == EXAMPLE_TITLE
        ):
            continue
        out.append(
            {
                "id": title,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    *EXAMPLE,
                    {"role": "user", "content": f"Which function does this: {sentence}?"},
                ],
                "reference": title,
            }
        )
    return out


def main() -> None:
    source, folder = Path(sys.argv[1]), Path(sys.argv[2])
    passages = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    rows = questions(passages)
    random.Random(0).shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:TRAIN]), ("held_out", rows[TRAIN : TRAIN + HELD_OUT])):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in part), encoding="utf-8")
        print(f"{path}: {len(part)} questions")


if __name__ == "__main__":
    main()
