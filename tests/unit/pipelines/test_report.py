"""The run report groups the logged keys into figures and plots exactly the logged numbers."""

from __future__ import annotations

import json
import re
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


def figures(page: str) -> list[tuple[str, str, str]]:
    """(class, caption, image file) of each figure of the page, in order."""
    found = re.findall(
        r"<figure class='(\w+)'><a href=\"[^\"]*/([^\"/]+\.png)\">.*?<figcaption>([^<]*)", page, re.DOTALL
    )
    return [(kind, caption, png) for kind, png, caption in found]


RL_ROWS = [
    {
        "step": step,
        "loss": 0.1 * step,
        "reward/mean": -2.0 + step,
        "reward/std": 1.0,
        "reward/length/mean": -3.0 + step,
        "reward/length/std": 0.5,
        "tokens_per_second": 100.0 * step,
        "train_tokens_per_second": 90.0 * step,
    }
    for step in (1, 2, 3)
]


def test_each_figure_has_one_title_and_grouped_metrics_span_the_page(tmp_path: Path) -> None:
    from matplotlib.image import imread

    run = write_run(tmp_path / "grpo", RL_ROWS)
    other = write_run(tmp_path / "grpo2", [{**row, "reward/mean": row["reward/mean"] + 1} for row in RL_ROWS])
    for page_path, files in (
        (write_report(run), run / "report_files"),
        (write_report(run, other), run / "report_vs_grpo2_files"),
    ):
        page = page_path.read_text()
        shown = figures(page)
        assert [caption for _, caption, _ in shown] == ["loss", "reward", "reward/length", "throughput"]
        assert page.count("<figcaption>") == len(shown) == len(list(files.glob("*.png")))
        kinds = {caption: kind for kind, caption, _ in shown}
        assert kinds == {"loss": "card", "reward": "wide", "reward/length": "wide", "throughput": "card"}
        card_width = imread(files / "loss.png").shape[1]
        for kind, caption, png in shown:
            drawn = json.loads((files / png.replace(".png", ".json")).read_text())
            titles = [title for title in drawn["panel_titles"].values() if title is not None]
            assert caption not in titles  # the caption is the figure's only title
            if kind == "wide":  # each panel of a wide figure as large as a card
                assert titles == ["mean", "std"]
                assert imread(files / png).shape[1] >= 2 * card_width
            else:
                assert titles == []


def test_throughput_is_one_curve_named_for_what_it_is(tmp_path: Path) -> None:
    run = write_run(tmp_path / "sft", RL_ROWS)
    page = write_report(run).read_text()
    files = run / "report_files"
    assert "tokens_per_second" not in page and not list(files.glob("*tokens_per_second*"))
    throughput = json.loads((files / "throughput.json").read_text())["panels"]
    assert throughput == {"throughput": {"throughput": {"x": [1.0, 2.0, 3.0], "y": [100.0, 200.0, 300.0]}}}
    assert "input tokens trained on per second" in page  # what the curve measures, under its caption


def test_token_length_percentiles_are_a_table(tmp_path: Path) -> None:
    run = write_run(tmp_path / "sft", RL_ROWS[:1])
    source = {"name": "chat", "read": 9, "sampled": 9, "used": 8, "truncated": 1, "dropped": {"too long": 1}}
    train = {"50": 56, "90": 80, "99": 97, "100": 120}
    val = {"50": 40, "90": 41, "99": 42, "100": 43}
    report = {
        "train": [{**source, "token_length_percentiles": train}],
        "val": [{**source, "name": "held_out", "token_length_percentiles": val}],
    }
    (run / "data_report.json").write_text(json.dumps(report))
    page = write_report(run).read_text()
    assert "{'50'" not in page and "{&#x27;50&#x27;" not in page
    table = page[page.index("<table class='data'>") :]
    table = table[: table.index("</table>")]
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert headers[-5:] == ["tokens per sample, percentile", "50", "90", "99", "max"]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)[2:]]
    assert [row[:2] + row[-4:] for row in rows] == [
        ["train", "chat", "56", "80", "97", "120"],
        ["val", "held_out", "40", "41", "42", "43"],
    ]
