"""The example's reward: 1 when the final answer (the text after the last search result) names the
reference function, by its qualified name or, failing that, its last part (json.dumps or dumps)."""

from __future__ import annotations


def contains_reference(prompts: list[str], answers: list[str], references: list[str | None]) -> list[float]:
    out = []
    for answer, reference in zip(answers, references, strict=True):
        text, name = answer.lower(), (reference or "").lower()
        out.append(1.0 if name and name in text else 0.5 if name and name.rsplit(".", 1)[-1] in text else 0.0)
    return out
