"""Stop a run whose loss or gradient norm is no longer a finite number, before it saves anything more.

A learning rate far too high (or a bad batch) turns the loss into NaN or infinity; from then on
every step writes NaN weights. The callback checks each logged loss and gradient norm (a save step
is always logged first, so a checkpoint never holds a diverged model), and `check_finite_weights`
is the last guard before a final model is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from turbo.errors import TrainingDivergedError

WATCHED = ("loss", "train_loss", "grad_norm")


def _last_checkpoint(output_dir: str) -> str:
    folder = Path(output_dir)
    steps = [
        path
        for path in folder.glob("checkpoint-*")
        if path.name.split("-", 1)[1].isdigit() and (path / "trainer_state.json").is_file()
    ]
    if not steps:
        return "no checkpoint had been saved yet"
    newest = max(steps, key=lambda path: int(path.name.split("-", 1)[1]))
    return f"the last checkpoint before it, {newest}, is kept"


def diverged_message(what: str, value: float, step: int, args: Any) -> str:
    return (
        f"training diverged at step {step}: {what} is {value}; {_last_checkpoint(args.output_dir)}, and "
        f"no final model was written. Lower trainer_settings.learning_rate (now {args.learning_rate}) "
        "or set trainer_settings.max_grad_norm, then resume or start again"
    )


class DivergenceCallback(TrainerCallback):
    """Raises TrainingDivergedError when a logged loss or gradient norm is NaN or infinite."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if control.should_save:
            control.should_log = True  # the loss is checked before a checkpoint is written
        return control

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return self.on_step_end(args, state, control)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for key in WATCHED:
            value = (logs or {}).get(key)
            if key == "grad_norm" and args.fp16:
                continue  # fp16 loss scaling skips steps with overflowing gradients by design
            if isinstance(value, int | float) and not math.isfinite(value):
                raise TrainingDivergedError(diverged_message(key, value, state.global_step, args))


def check_finite_weights(model: Any, step: int, args: Any) -> None:
    """TrainingDivergedError if any weight of `model` is NaN or infinite (the guard before final/)."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.numel() and not bool(torch.isfinite(parameter).all()):
                raise TrainingDivergedError(diverged_message(f"the weight {name}", math.nan, step, args))
