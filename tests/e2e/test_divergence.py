"""A run whose loss or gradient norm stops being finite ends with exit code 3, keeps the checkpoints
saved before it and writes no final model; numbers that cannot train are refused before it starts."""

import json
from pathlib import Path

from ..helpers import CONFIGS, read_jsonl, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"


def settings(tmp_path: Path, **trainer: object) -> Path:
    data = json.loads(SFT.read_text())
    data["log_path"] = str(tmp_path / "run")
    data.pop("cherry_pick_settings")
    data["trainer_settings"].pop("evaluation_strategy")
    data["trainer_settings"].update(trainer)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    return path


def test_a_diverging_run_stops_with_exit_code_3_and_keeps_its_last_checkpoint(
    fixture_models, tmp_path: Path
) -> None:
    # an absurd but finite learning rate: the first step is fine, the second one's gradient is NaN
    path = settings(tmp_path, learning_rate=1e6, max_steps=8, save_steps=1, logging_steps=4)
    result = run_turbo("train_sft", "--experiment_settings_path", path, expect=3)
    run = tmp_path / "run"
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert "error: training diverged at step 2: grad_norm is nan" in result.stderr
    checkpoint = run / "checkpoints" / "checkpoint-1"
    assert f"the last checkpoint before it, {checkpoint}, is kept" in result.stderr
    assert "no final model was written" in result.stderr and "learning_rate" in result.stderr
    assert not (run / "final").exists()
    # the good checkpoint is whole; nothing was saved after the divergence (logging_steps 4 did not
    # hide the NaN of step 2: a save step is always checked first)
    assert (checkpoint / "adapter_model.safetensors").is_file() and (
        checkpoint / "trainer_state.json"
    ).is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-1"]
    assert [row["step"] for row in read_jsonl(run / "metrics.jsonl")] == [1, 2]


def test_non_finite_and_out_of_range_numbers_are_refused_with_the_allowed_range(tmp_path: Path) -> None:
    path = settings(tmp_path)
    text = path.read_text()
    cases = {
        '"learning_rate": Infinity': "trainer_settings.learning_rate: Input should be a finite number; "
        "allowed: 0 < value",
        '"learning_rate": 1e999': "trainer_settings.learning_rate: Input should be a finite number",
        '"learning_rate": NaN': "trainer_settings.learning_rate: Input should be a finite number",
        '"learning_rate": 0': "trainer_settings.learning_rate: Input should be greater than 0; "
        "allowed: 0 < value",
        '"learning_rate": 1, "seed": 1180591620717411303424': "seed: Input should be less than or equal to "
        "4294967295; allowed: 0 <= value <= 4294967295",
    }
    for replacement, message in cases.items():
        path.write_text(text.replace('"learning_rate": 0.003', replacement))
        result = run_turbo("validate", path, "--command", "train_sft", expect=2)
        assert message in result.stderr, (replacement, result.stderr)
        assert "Traceback" not in result.stderr
    data = json.loads(text)
    data["train_dataset_settings"]["sources"][0]["sample_rate"] = 1e9
    path.write_text(json.dumps(data))
    result = run_turbo("validate", path, "--command", "train_sft", expect=2)
    assert "train_dataset_settings.sources.0.sample_rate: Input should be less than or equal to 1000; " in (
        result.stderr
    )
