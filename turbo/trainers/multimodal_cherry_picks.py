"""Cherry-picks of multimodal training: the model answers prompts with their media at each evaluation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from turbo.generators.transformers import answer_rows, generate_answers
from turbo.io import write_jsonl
from turbo.trainers.callbacks import ChatCherryPickCallback


class MultimodalCherryPickCallback(ChatCherryPickCallback):
    """`media_inputs(device)` gives generate_answers' extra_inputs (the media of a slice of prompts)."""

    def __init__(
        self,
        settings: Any,
        samples: list,
        tokenizer: Any,
        folder: Path,
        media_inputs: Callable[[Any], Callable[[int, int], dict[str, Any]]],
    ) -> None:
        super().__init__(settings, samples, tokenizer, folder)
        self.media_inputs = media_inputs

    def on_evaluate(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None or not state.is_world_process_zero:
            return
        device = next(model.parameters()).device
        answers = generate_answers(
            model,
            self.tokenizer,
            [sample.input_ids for sample in self.samples],
            self.settings.generator_transformers_settings,
            self.settings.custom_generation_settings,
            batch=args.per_device_eval_batch_size,
            extra_inputs=self.media_inputs(device),
        )
        write_jsonl(self.folder / f"step_{state.global_step}.jsonl", answer_rows(self.samples, answers))
