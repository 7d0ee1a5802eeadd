"""The divergence check: NaN or infinite loss / grad norm stops the run; a save step is checked first."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerControl, TrainerState

from turbo.errors import EXIT_DIVERGED, TrainingDivergedError
from turbo.trainers.divergence import DivergenceCallback, check_finite_weights


def args(tmp_path: Path, fp16: bool = False) -> SimpleNamespace:
    return SimpleNamespace(output_dir=str(tmp_path), learning_rate=0.5, fp16=fp16)


def test_non_finite_logged_values_stop_the_run(tmp_path: Path) -> None:
    callback, state, control = DivergenceCallback(), TrainerState(global_step=7), TrainerControl()
    callback.on_log(args(tmp_path), state, control, logs={"loss": 1.0, "grad_norm": 3.0})
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-6").mkdir()  # incomplete: no trainer state
    for logs in ({"loss": math.nan}, {"loss": 1.0, "grad_norm": math.inf}, {"train_loss": -math.inf}):
        with pytest.raises(TrainingDivergedError) as info:
            callback.on_log(args(tmp_path), state, control, logs=logs)
        message = str(info.value)
        assert message.startswith("training diverged at step 7: ")
        assert f"the last checkpoint before it, {tmp_path / 'checkpoint-5'}, is kept" in message
        assert info.value.exit_code == EXIT_DIVERGED == 3
    # fp16 loss scaling skips steps whose gradients overflow: an infinite grad norm is expected there
    callback.on_log(args(tmp_path, fp16=True), state, control, logs={"loss": 1.0, "grad_norm": math.inf})


def test_a_save_step_is_always_logged_first(tmp_path: Path) -> None:
    control = TrainerControl(should_save=True)
    DivergenceCallback().on_step_end(args(tmp_path), TrainerState(), control)
    assert control.should_log
    control = TrainerControl()
    DivergenceCallback().on_step_end(args(tmp_path), TrainerState(), control)
    assert not control.should_log


def test_a_model_with_a_nan_weight_is_never_saved_as_final(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    check_finite_weights(model, 3, args(tmp_path))
    with torch.no_grad():
        model.bias[1] = math.nan
    with pytest.raises(
        TrainingDivergedError, match="step 3: the weight bias is nan; no checkpoint had been saved"
    ):
        check_finite_weights(model, 3, args(tmp_path))
