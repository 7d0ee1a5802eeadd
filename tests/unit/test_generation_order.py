"""transformers generation batches prompts longest first and returns the answers in prompt order."""

from __future__ import annotations

from turbo.generators import transformers as generation


def test_prompts_are_batched_longest_first_and_answered_in_order(monkeypatch) -> None:
    seen = []

    def fake(model, tokenizer, prompts, settings, custom, batch, progress, extra_inputs=None):
        seen.append([len(p) for p in prompts])
        return [[f"answer to {p[0]}"] for p in prompts], [[{}] for _ in prompts]

    monkeypatch.setattr(generation, "_generate_in_order", fake)
    prompts = [[1], [2, 2, 2], [3, 3], [4, 4, 4, 4]]
    answers = generation.generate_answers(None, None, prompts, None, None, batch=2)
    assert seen == [[4, 3, 2, 1]]
    assert answers == [["answer to 1"], ["answer to 2"], ["answer to 3"], ["answer to 4"]]

    seen.clear()  # with per-prompt extra inputs (media) the order is kept
    generation.generate_answers(None, None, prompts, None, None, batch=2, extra_inputs=lambda a, b: {})
    assert seen == [[1, 3, 2, 4]]
