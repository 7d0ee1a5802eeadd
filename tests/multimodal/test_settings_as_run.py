"""A train_multimodal run's experiment_settings.json (the original's `trainer_settings.seed` layout)
validates again and export_llava reads it: turbo accepts every settings file it writes."""

from __future__ import annotations

import json
from pathlib import Path

from ..helpers import CONFIGS, run_turbo

LLAVA = CONFIGS / "train" / "multimodal" / "llava_lora.json"
EXPORT = CONFIGS / "export" / "llava.json"


def test_a_run_with_trainer_settings_seed_validates_and_exports(multimodal_models, tmp_path: Path) -> None:
    data = json.loads(LLAVA.read_text())
    del data["seed"]
    data["trainer_settings"].update(seed=7, max_steps=2, save_steps=100)
    data["log_path"] = str(tmp_path / "run")
    config = tmp_path / "llava_seed.json"
    config.write_text(json.dumps(data))
    run_turbo("train_multimodal", "--experiment_settings_path", config)

    written = tmp_path / "run" / "experiment_settings.json"
    as_run = json.loads(written.read_text())
    assert as_run["trainer_settings"]["seed"] == 7 and "seed" not in as_run
    # as it is: valid settings; the one problem is the finished run in log_path (a rerun is refused)
    result = run_turbo("validate", written, expect=2)
    assert "valid settings for train_multimodal, but 1 problem" in result.stderr
    assert "log_path:" in result.stderr and "disagree" not in result.stderr
    result = run_turbo("validate", written, "--set", f"log_path={tmp_path / 'again'}")
    assert "train_multimodal" in result.stdout

    out = tmp_path / "llava"
    run_turbo(
        "export_llava", "--settings_path", EXPORT,
        "--set", f"experiment_path={tmp_path / 'run'}", "--set", f"save_path={out}",
    )  # fmt: skip
    assert (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlavaForConditionalGeneration"]
