"""Crash-safe resume: a run killed with SIGKILL after a checkpoint, then resumed, ends with the very
weights of a run that was never interrupted."""

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from turbo.pipelines.train.common import complete_checkpoints

from ..distributed import killed_at_checkpoint
from ..helpers import CONFIGS, read_jsonl, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"
STEPS, SAVE_STEPS = 12, 4
FIRST = f"checkpoint-{SAVE_STEPS}"
SETTINGS = [
    *("--set", f"trainer_settings.max_steps={STEPS}"),
    *("--set", f"trainer_settings.save_steps={SAVE_STEPS}"),
    *("--set", "trainer_settings.save_total_limit=2"),
    *("--set", "trainer_settings.evaluation_strategy=no"),
    *("--set", "cherry_pick_settings=null"),
]


def test_sigkill_then_resume_gives_the_uninterrupted_weights(fixture_models, tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_turbo("train_sft", "--experiment_settings_path", SFT, "--set", f"log_path={straight}", *SETTINGS)

    command = [sys.executable, "-m", "turbo", "train_sft", "--experiment_settings_path", str(SFT)]
    killed_at_checkpoint([*command, "--set", f"log_path={killed}", *SETTINGS], killed / "checkpoints" / FIRST)
    assert not (killed / "final").exists()
    assert [path.name for path in complete_checkpoints(killed)] == [FIRST]
    # what a kill in the middle of writing a checkpoint leaves: a folder without a whole trainer state
    half_written = killed / "checkpoints" / "checkpoint-999"
    half_written.mkdir()
    (half_written / "adapter_model.safetensors").write_bytes(b"\x00" * 10)
    (half_written / "trainer_state.json").write_text('{"global_step": 9')

    run_turbo(
        "train_sft",
        "--experiment_settings_path",
        SFT,
        *("--set", f"log_path={killed}"),
        *("--set", "trainer_settings.resume_from_checkpoint=true"),
        *SETTINGS,
    )
    assert not half_written.exists()
    expected = load_file(straight / "final" / "adapter_model.safetensors")
    actual = load_file(killed / "final" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, atol=1e-6, rtol=0, msg=name)
    # each step logged once, the steps after the checkpoint by the resumed run
    steps = [row["step"] for row in read_jsonl(killed / "metrics.jsonl") if "loss" in row]
    assert steps == list(range(1, STEPS + 1))
    # save_total_limit=2 keeps the two newest checkpoints
    kept = [path.name for path in complete_checkpoints(killed)]
    assert kept == [f"checkpoint-{STEPS - SAVE_STEPS}", f"checkpoint-{STEPS}"]
    assert sorted(path.name for path in (killed / "checkpoints").iterdir()) == sorted(kept)
