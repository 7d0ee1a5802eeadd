"""`make demo` (examples/sft/demo.sh) as a newcomer runs it: from a fresh clone, and then once more. Each
run starts its experiment afresh and prints the before/after table. The tests swap in the tiny model and
two training steps (TURBO_DEMO_MODEL, TURBO_DEMO_STEPS) so both runs take seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..helpers import REPO, read_jsonl

TABLE = (
    "16 held-out questions        before    after",
    "answers in the pirate style",
    "factual answers correct",
)


def run_demo(clone: Path, model: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),  # this checkout's turbo, as an editable install gives it
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TURBO_DEMO_MODEL": str(model),
        "TURBO_DEMO_STEPS": "2",
    }
    result = subprocess.run(
        ["bash", str(clone / "examples" / "sft" / "demo.sh")],
        cwd=clone.parent,  # the script finds its clone from its own path
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-8000:]}"
    assert result.returncode == 0, output
    return result


def test_the_demo_runs_twice_in_a_row_and_prints_its_table_each_time(fixture_models: Path, tmp_path: Path):
    clone = tmp_path / "turbo"
    shutil.copytree(REPO / "examples" / "sft", clone / "examples" / "sft")
    for _ in range(2):
        result = run_demo(clone, fixture_models / "llama_tiny")
        for line in TABLE:
            assert result.stdout.count(line) == 1, result.stdout[-2000:]
        assert result.stdout.count("\nQ: ") == 16
        run = clone / "experiments" / "sft_pirate"
        # a fresh run each time: the metrics of these two steps only, not appended to the earlier run's
        assert [row["step"] for row in read_jsonl(run / "metrics.jsonl") if "loss" in row] == [2]
        assert (run / "final" / "adapter_config.json").is_file()
    answers = clone / "experiments" / "sft_pirate_answers"
    assert len(read_jsonl(answers / "model_1" / "generation_0" / "questions.jsonl")) == 16
