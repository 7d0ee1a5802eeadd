"""Cherry-picks and metrics at each evaluation, the loggers that receive them, the run report, and
`evaluate` on an inference output: end to end through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ..helpers import CONFIGS, read_jsonl, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"
DPO = CONFIGS / "train" / "dpo" / "lora.json"
RM = CONFIGS / "train" / "rm" / "full.json"
INFERENCE = CONFIGS / "inference" / "chat" / "base.json"
TEMPLATE = {
    "role_tag_mapping": {"bot": "<bot>", "user": "<user>", "system": "<system>"},
    "prefix_template": "<RS>{role}",
    "suffix_template": "</RS>",
}
TEXT_METRICS = [
    {"type": "accuracy"},
    {"type": "dist_n", "parameters": {"ngram": 2}},
    {"type": "diversity"},
    {"type": "length"},
    {
        "type": "meteor",
        "parameters": {"compute_element_wise_meteor": True, "element_wise_meteor_label": "meteor"},
    },
    {"type": "rouge", "parameters": {"need_compute_rouge_n": [1, 2], "need_compute_rouge_l": True}},
    {"type": "self_bleu", "parameters": {"ngram": 3}},
    {"type": "tool_call_metrics", "parameters": {"tool_activation_str": "<tool>"}},
]
MODEL_METRICS = [
    {"type": "perplexity", "parameters": {"need_average": [True, False]}},
    {"type": "kl", "parameters": {"ref_logits_type": "sft"}},
    {"type": "retrieval_utility", "parameters": {"doc_sep_symbol": "<doc_sep>"}},
]
# labels always defined on the fixture's answers (diversity needs answers of two words or more)
CHAT_LABELS = {
    "accuracy",
    "dist_1",
    "dist_2",
    "length_words",
    "length_tokens",
    "meteor",
    "rouge1",
    "rouge2",
    "rougeL",
    "self_bleu",
    "tool_call_rate",
    "tool_call_accuracy",
    "perplexity",
    "kl",
}


def cherry_picks(sources: list[dict], metrics: list[dict], template: dict | None = TEMPLATE) -> str:
    dataset = {"dataset_type": "chat", "sources": sources, "max_tokens_count": 120}
    if template is not None:
        dataset["prompt_template"] = template
    return json.dumps(
        {
            "generator_transformers_settings": {"num_beams": 1, "do_sample": False, "max_new_tokens": 8},
            "custom_generation_settings": {"skip_special_tokens": True},
            "dataset_settings": dataset,
            "metric_settings": metrics,
        }
    )


@pytest.fixture(scope="module")
def sft_run(fixture_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eval") / "sft"
    sources = [
        {"name": "chat", "records_path": "tests/fixtures/datasets/chat/val_chat.jsonl", "num_samples": 3},
        {"name": "rag", "records_path": "tests/fixtures/datasets/metrics/rag_chat.jsonl", "sample_rate": 1.0},
    ]
    run_turbo(
        "train_sft",
        *("--experiment_settings_path", SFT, "--set", f"log_path={folder}"),
        *("--set", "trainer_settings.max_steps=4", "--set", "trainer_settings.eval_steps=2"),
        *("--set", "trainer_settings.save_steps=4"),
        *("--set", 'logging_settings={"logging_type": "tensorboard"}'),
        *("--set", f"cherry_pick_settings={cherry_picks(sources, TEXT_METRICS + MODEL_METRICS)}"),
    )
    return folder


def cherry_rows(folder: Path) -> list[dict]:
    return [
        row for row in read_jsonl(folder / "metrics.jsonl") if any(k.startswith("cherry_pick/") for k in row)
    ]


def test_every_metric_is_logged_at_each_evaluation(sft_run: Path) -> None:
    rows = cherry_rows(sft_run)
    assert [row["step"] for row in rows] == [2, 4]  # once per evaluation
    for row in rows:
        chat = {key.split("/")[2] for key in row if key.startswith("cherry_pick/chat/")}
        assert chat >= CHAT_LABELS, CHAT_LABELS - chat
        assert "cherry_pick/rag/retrieval_utility" in row  # two of its prompts hold documents
        assert "cherry_pick/chat/retrieval_utility" not in row  # none of these do
        # rag-2's reference calls a tool, the tiny model's answers never do
        assert row["cherry_pick/rag/tool_call_accuracy"] == pytest.approx(2 / 3)
        assert row["cherry_pick/rag/tool_call_rate"] == 0


def test_logged_values_are_those_of_the_written_answers(sft_run: Path) -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"])
    for row in cherry_rows(sft_run):
        answers = read_jsonl(sft_run / "cherry_picks" / f"step_{row['step']}.jsonl")
        chat = [a for a in answers if a["dataset_name"] == "chat"]
        assert [a["dataset_name"] for a in answers] == ["chat"] * 3 + ["rag"] * 3
        assert [a["id"] for a in answers][3:] == ["rag-0", "rag-1", "rag-2"]
        expected = [
            scorer.score(a["messages"][-1]["content"], a["answers"][0]["content"])["rouge1"].fmeasure
            for a in chat
        ]
        assert row["cherry_pick/chat/rouge1"] == pytest.approx(sum(expected) / len(expected))
        # need_average [true, false]: the per-answer values are written beside the answers, mean logged
        perplexities = [a["metrics"]["perplexity"] for a in chat]
        assert all(p > 1 for p in perplexities)
        assert row["cherry_pick/chat/perplexity"] == pytest.approx(sum(perplexities) / len(perplexities))


def test_tensorboard_receives_the_cherry_pick_metrics(sft_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(sft_run / "tensorboard"))
    events.Reload()
    for row in cherry_rows(sft_run):
        for key in (
            "cherry_pick/chat/rouge1",
            "cherry_pick/chat/perplexity",
            "cherry_pick/rag/retrieval_utility",
        ):
            scalars = {event.step: event.value for event in events.Scalars(f"train/{key}")}
            assert scalars[row["step"]] == pytest.approx(row[key], rel=1e-5)


def test_report_links_real_images_of_the_logged_curves(sft_run: Path, tmp_path: Path) -> None:
    import re

    from matplotlib.image import imread

    page = (sft_run / "report.html").read_text(encoding="utf-8")
    links = re.findall(r'href="(report_files/[^"]+\.png)"', page)
    assert {
        "report_files/loss.png",
        "report_files/cherry_pick__chat.png",
        "report_files/cherry_pick__rag.png",
    } <= set(links)
    for link in links:
        image = imread(sft_run / link)
        assert image.shape[0] >= 200 and image.shape[1] >= 300 and image.std() > 0.01  # drawn, not blank
    rows = read_jsonl(sft_run / "metrics.jsonl")
    loss = json.loads((sft_run / "report_files" / "loss.json").read_text())["panels"]["loss"]
    assert loss["loss"]["y"] == [row["loss"] for row in rows if "loss" in row]
    assert loss["eval_loss"]["x"] == [2.0, 4.0]
    chat = json.loads((sft_run / "report_files" / "cherry_pick__chat.json").read_text())["panels"]
    kl = chat["cherry_pick/chat/kl"]["cherry_pick/chat/kl"]
    assert kl["y"] == [row["cherry_pick/chat/kl"] for row in cherry_rows(sft_run)] and kl["x"] == [2.0, 4.0]
    assert "What color is the snow?" in page  # the cherry-pick table
    assert "val_chat" in page and str(sft_run) in page  # the dataset summary and the settings

    other = tmp_path / "second"
    shutil.copytree(sft_run, other)
    result = run_turbo("report", sft_run, other, "--out", tmp_path / "both.html")
    assert "both.html" in result.stdout
    overlay = json.loads((tmp_path / "both_files" / "loss.json").read_text())["panels"]["loss"]
    assert overlay["sft: loss"]["y"] == overlay["second: loss"]["y"] == loss["loss"]["y"]


def test_evaluate_scores_an_inference_chat_output(fixture_models, tmp_path: Path) -> None:
    from rouge_score import rouge_scorer

    run_turbo(
        "inference_chat", "--inference_settings_path", INFERENCE, "--set", f"save_path={tmp_path / 'out'}"
    )
    settings = {
        "outputs_path": str(tmp_path / "out" / "model_0" / "generation_1"),
        "save_path": str(tmp_path / "scores"),
        "metric_settings": [
            {"type": "rouge", "parameters": {"need_compute_rouge_n": [1]}},
            {"type": "dist_n", "parameters": {"ngram": 1}},
            {"type": "length"},
        ],
    }
    path = tmp_path / "evaluate.json"
    path.write_text(json.dumps(settings))
    run_turbo("evaluate", "--settings_path", path)
    means = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert set(means) == {"val_chat.jsonl", "train_chat.jsonl"}
    outputs = read_jsonl(tmp_path / "out" / "model_0" / "generation_1" / "val_chat.jsonl")
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    per_record = [
        sum(scorer.score(r["messages"][-1]["content"], a["content"])["rouge1"].fmeasure for a in r["answers"])
        / len(r["answers"])
        for r in outputs
    ]
    assert means["val_chat.jsonl"]["rouge1"] == pytest.approx(sum(per_record) / len(per_record))
    scored = read_jsonl(tmp_path / "scores" / "val_chat.jsonl")
    assert [row["metrics"]["rouge1"] for row in scored] == pytest.approx(per_record)
    words = [sum(len(a["content"].split()) for a in r["answers"]) / 2 for r in outputs]
    assert [row["metrics"]["length_words"] for row in scored] == pytest.approx(words)

    settings["metric_settings"] = [{"type": "perplexity"}]
    path.write_text(json.dumps(settings))
    refused = run_turbo("evaluate", "--settings_path", path, expect=2)
    assert "perplexity" in refused.stderr + refused.stdout and "Traceback" not in refused.stderr


def test_dpo_cherry_picks_are_scored_by_a_reward_model_trained_here(fixture_models, tmp_path: Path) -> None:
    rm = tmp_path / "rm"
    scored = [
        {"name": "scored", "records_path": "tests/fixtures/datasets/chat/val_chat.jsonl", "num_samples": 2}
    ]
    rm_cherry = {"dataset_settings": {"dataset_type": "chat", "sources": scored, "max_tokens_count": 64}}
    run_turbo(
        "train_rm",
        *("--experiment_settings_path", RM, "--set", f"log_path={rm}"),
        *("--set", "trainer_settings.max_steps=4", "--set", "trainer_settings.eval_steps=4"),
        *("--set", "trainer_settings.save_steps=4", "--set", f"cherry_pick_settings={json.dumps(rm_cherry)}"),
    )
    rm_scores = read_jsonl(rm / "cherry_picks" / "step_4.jsonl")  # train_rm's cherry-picks: its scores
    assert len(rm_scores) == 2 and all(
        isinstance(float(r["answers"][0]["content"]), float) for r in rm_scores
    )
    reward = {
        "type": "reward",
        "parameters": {
            "model_settings": {"model_path": str(rm / "final"), "model_type": "seq_cls"},
            "max_tokens_count": 64,
            "name": "rm_score",
            "micro_batch": 2,
            "need_average": [True, False],
        },
    }
    sources = [
        {"name": "chat", "records_path": "tests/fixtures/datasets/chat/val_chat.jsonl", "num_samples": 3}
    ]
    dpo = tmp_path / "dpo"
    run_turbo(
        "train_dpo",
        *("--experiment_settings_path", DPO, "--set", f"log_path={dpo}"),
        *("--set", "trainer_settings.max_steps=4", "--set", "trainer_settings.eval_steps=2"),
        *("--set", "trainer_settings.save_steps=4"),
        *(
            "--set",
            f"cherry_pick_settings={cherry_picks(sources, [reward, {'type': 'length'}], template=None)}",
        ),
    )
    rows = cherry_rows(dpo)
    assert [row["step"] for row in rows] == [2, 4]
    for row in rows:
        answers = read_jsonl(dpo / "cherry_picks" / f"step_{row['step']}.jsonl")
        scores = [a["metrics"]["rm_score"] for a in answers]
        assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
        assert row["cherry_pick/chat/rm_score"] == pytest.approx(sum(scores) / 3)
    # the same answers scored by evaluate (the reward model loaded afresh) give the same numbers
    settings = {
        "outputs_path": str(dpo / "cherry_picks" / "step_4.jsonl"),
        "save_path": str(tmp_path / "again"),
        "metric_settings": [reward],
    }
    (tmp_path / "evaluate.json").write_text(json.dumps(settings))
    run_turbo("evaluate", "--settings_path", tmp_path / "evaluate.json")
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())["step_4.jsonl"]["rm_score"]
    assert again == pytest.approx(rows[-1]["cherry_pick/chat/rm_score"], abs=1e-4)
    assert (dpo / "report.html").is_file()
    assert "rewards/margins" in json.loads((dpo / "report_files" / "rewards.json").read_text())["panels"]


def test_kto_generates_its_cherry_picks(fixture_models, tmp_path: Path) -> None:
    kto = CONFIGS / "train" / "kto" / "lora.json"
    val = json.dumps(json.loads(kto.read_text())["train_dataset_settings"])
    sources = [
        {"name": "chat", "records_path": "tests/fixtures/datasets/chat/val_chat.jsonl", "num_samples": 2}
    ]
    metrics = [{"type": "kl"}, {"type": "length"}]
    run_turbo(
        "train_kto",
        *("--experiment_settings_path", kto, "--set", f"log_path={tmp_path}"),
        *("--set", f"val_dataset_settings={val}", "--set", "trainer_settings.eval_strategy=steps"),
        *("--set", "trainer_settings.max_steps=2", "--set", "trainer_settings.eval_steps=2"),
        *("--set", f"cherry_pick_settings={cherry_picks(sources, metrics, template=None)}"),
    )
    (row,) = cherry_rows(tmp_path)
    assert row["step"] == 2 and {"cherry_pick/chat/kl", "cherry_pick/chat/length_words"} <= set(row)
    assert len(read_jsonl(tmp_path / "cherry_picks" / "step_2.jsonl")) == 2


def test_classification_cherry_picks_are_predicted_labels(fixture_models, tmp_path: Path) -> None:
    config = CONFIGS / "train" / "classification" / "base.json"
    dataset = json.loads(config.read_text())["val_dataset_settings"]
    dataset["sources"][0]["name"] = "labels"
    cherry = {"dataset_settings": dataset, "metric_settings": [{"type": "accuracy"}]}
    run_turbo(
        "train_classification",
        *("--experiment_settings_path", config, "--set", f"log_path={tmp_path}"),
        *("--set", "trainer_settings.max_steps=4", "--set", "trainer_settings.eval_steps=2"),
        *("--set", f"cherry_pick_settings={json.dumps(cherry)}"),
    )
    rows = cherry_rows(tmp_path)
    assert [row["step"] for row in rows] == [2, 4]
    for row in rows:
        answers = read_jsonl(tmp_path / "cherry_picks" / f"step_{row['step']}.jsonl")
        hits = [int(a["answers"][0]["content"]) == a["label"] for a in answers]
        assert row["cherry_pick/labels/accuracy"] == pytest.approx(sum(hits) / len(hits))


def test_a_metric_typo_is_refused_before_anything_loads(tmp_path: Path) -> None:
    bad = '[{"type": "rouge", "parameters": {"need_compute_rouge_m": [1]}}]'
    result = run_turbo(
        "train_sft",
        *("--experiment_settings_path", SFT, "--set", f"log_path={tmp_path / 'run'}"),
        *("--set", f"cherry_pick_settings.metric_settings={bad}"),
        expect=2,
    )
    assert "cherry_pick_settings.metric_settings.0.parameters.need_compute_rouge_m" in result.stderr
    assert "need_compute_rouge_n" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_reads_multimodal_outputs_and_names_a_bad_line(tmp_path: Path) -> None:
    rows = [
        {
            "id": "img-0",
            "messages": [
                {"role": "user", "type": "image", "content": "images/red_0.png"},
                {"role": "user", "type": "text", "content": "What color is the disc?"},
                {"role": "bot", "type": "text", "content": "The disc is red."},
            ],
            "dataset_name": "pictures",
            "answers": [{"id": "0", "content": "The disc is blue."}],
        }
    ]
    outputs = tmp_path / "pictures.jsonl"
    outputs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = tmp_path / "evaluate.json"
    metrics = [{"type": "rouge", "parameters": {"need_compute_rouge_n": [1]}}]
    settings.write_text(
        json.dumps(
            {"outputs_path": str(outputs), "save_path": str(tmp_path / "s"), "metric_settings": metrics}
        )
    )
    run_turbo("evaluate", "--settings_path", settings)
    means = json.loads((tmp_path / "s" / "metrics.json").read_text())["pictures.jsonl"]
    assert means["rouge1"] == pytest.approx(3 / 4)  # the, disc, is of 4 words each

    outputs.write_text(json.dumps(rows[0]) + "\n" + '{"id": "x", "messages": [{"role": 5}], "answers": []}\n')
    result = run_turbo("evaluate", "--settings_path", settings, expect=2)
    assert f"{outputs}:2:" in result.stderr and "Traceback" not in result.stderr
