"""The run report groups the logged keys into figures and plots exactly the logged numbers."""

from __future__ import annotations

import json
from pathlib import Path

from turbo.pipelines.tools.report import write_report


def write_run(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "experiment_settings.json").write_text(json.dumps({"log_path": str(folder)}))
    return folder


def test_method_curves_train_and_eval_share_a_panel_and_eval_only_metrics_one_figure(tmp_path: Path) -> None:
    rows = [
        {"step": 1, "loss": 0.7, "rewards/margins": 0.1, "rewards/chosen": 0.2, "learning_rate": 1e-3},
        {"step": 2, "loss": 0.5, "rewards/margins": 0.3, "rewards/chosen": 0.4, "learning_rate": 1e-3},
        {"step": 2, "eval_loss": 0.6, "eval_rewards/margins": 0.25, "eval_accuracy": 0.5, "eval_f1": 0.4},
        {"step": 2, "cherry_pick/chat/rouge1": 0.3},
    ]
    run = write_run(tmp_path / "dpo", rows)
    page = write_report(run).read_text()
    files = run / "report_files"
    figures = {path.stem for path in files.glob("*.png")}
    assert figures == {"loss", "learning_rate", "rewards", "evaluation", "cherry_pick__chat"}
    assert page.index("report_files/loss.png") < page.index("report_files/rewards.png")
    rewards = json.loads((files / "rewards.json").read_text())["panels"]
    assert rewards["rewards/margins"] == {
        "rewards/margins": {"x": [1.0, 2.0], "y": [0.1, 0.3]},
        "eval_rewards/margins": {"x": [2.0], "y": [0.25]},
    }
    assert set(json.loads((files / "evaluation.json").read_text())["panels"]) == {"accuracy", "f1"}

    other = write_run(tmp_path / "other", [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.8}])
    write_report(run, other)
    overlay = json.loads((run / "report_vs_other_files" / "loss.json").read_text())["panels"]["loss"]
    assert overlay["dpo: loss"]["y"] == [0.7, 0.5] and overlay["other: loss"]["y"] == [0.9, 0.8]
