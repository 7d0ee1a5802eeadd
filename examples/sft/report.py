"""Before/after table of the SFT demo: share of answers in the pirate style, share of facts kept.

Reads the held-out questions (each with `meta.expected`: accepted answers, lower case) and the
answers `inference_chat` wrote for model 0 (before) and model 1 (after the LoRA fine-tune). An answer
is in the style when it says "arr" or "matey"; it is correct when it contains an accepted answer as
a word.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

QUESTIONS = Path("examples/sft/data/questions.jsonl")
ANSWERS = "experiments/sft_pirate_answers/model_{}/generation_0/questions.jsonl"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def styled(text: str) -> bool:
    return re.search(r"\b(arr+|matey)\b", text, re.IGNORECASE) is not None


def correct(text: str, expected: list[str]) -> bool:
    return any(re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) for word in expected)


def main() -> None:
    expected = {q["id"]: q["meta"]["expected"] for q in lines(QUESTIONS)}
    models = [lines(Path(ANSWERS.format(i))) for i in (0, 1)]
    scores = []
    for answers in models:
        texts = [(a["id"], a["answers"][0]["content"].strip()) for a in answers]
        scores.append(
            (
                sum(styled(t) for _, t in texts) / len(texts),
                sum(correct(t, expected[i]) for i, t in texts) / len(texts),
            )
        )
    for before, after in zip(*models, strict=True):
        print(f"\nQ: {before['messages'][-1]['content']}   (expected: {' / '.join(expected[before['id']])})")
        print(f"  before: {before['answers'][0]['content'].strip()}")
        print(f"  after:  {after['answers'][0]['content'].strip()}")
    count = len(models[0])
    print(f"\n{count} held-out questions        before    after")
    print(f"answers in the pirate style  {scores[0][0]:>8.0%} {scores[1][0]:>8.0%}")
    print(f"factual answers correct      {scores[0][1]:>8.0%} {scores[1][1]:>8.0%}")


if __name__ == "__main__":
    main()
