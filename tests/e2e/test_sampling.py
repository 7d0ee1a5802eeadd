"""random_sample, rm_sample and rso_sample end to end through the CLI."""

import json

import pytest
import torch

from ..helpers import CONFIGS, DATASETS, read_jsonl, run_turbo

RECORDS = read_jsonl(DATASETS / "sampling" / "inference_answers.jsonl")
WITH_ANSWERS = [record for record in RECORDS if record["answers"]]


def sample(command: str, config: str, save_path, *overrides: str) -> list[dict]:
    sets = [arg for value in (f"save_path={save_path}", *overrides) for arg in ("--set", value)]
    run_turbo(command, "--experiment_settings_path", CONFIGS / "sampling" / config, *sets)
    return read_jsonl(save_path / "answers.jsonl")


def kept_subset(row: dict, record: dict) -> list[str]:
    originals = {answer["id"]: answer for answer in record["answers"]}
    assert all(originals[answer["id"]] == answer for answer in row["answers"])
    return [answer["id"] for answer in row["answers"]]


def test_random_sample_is_seeded(tmp_path) -> None:
    first = sample("random_sample", "random.json", tmp_path / "a")
    again = sample("random_sample", "random.json", tmp_path / "b")
    other = sample("random_sample", "random.json", tmp_path / "c", "seed=1")
    assert first == again
    assert first != other
    assert [row["id"] for row in first] == [record["id"] for record in WITH_ANSWERS]  # empty one dropped
    for row, record in zip(first, WITH_ANSWERS, strict=True):
        kept = kept_subset(row, record)
        assert len(kept) == min(2, len(record["answers"]))
        if "rewards" in record:
            assert row["rewards"] == {i: record["rewards"][i] for i in kept}


@pytest.fixture(scope="module")
def direct_scores(fixture_models) -> dict[str, dict[str, float]]:
    """The reward model's score of each answer, one unpadded sequence at a time, rendered by hand."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = fixture_models / "llama_rm"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tags = {"user": "<user>", "bot": "<bot>", "system": "<system>"}
    scores: dict[str, dict[str, float]] = {}
    for record in WITH_ANSWERS:
        scores[record["id"]] = {}
        for answer in record["answers"]:
            texts = []
            for message in [*record["messages"], {"role": "bot", "content": answer["content"]}]:
                texts += [f"<RS>{tags[message['role']]}", message["content"] + "</RS>"]
            pieces = tokenizer(texts, add_special_tokens=False)["input_ids"]
            ids = [tokenizer.bos_token_id, *[t for piece in pieces for t in piece], tokenizer.eos_token_id]
            with torch.no_grad():
                scores[record["id"]][answer["id"]] = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    return scores


def test_rm_sample_keeps_the_best(tmp_path, direct_scores) -> None:
    rows = sample("rm_sample", "rm.json", tmp_path / "rm")
    assert [row["id"] for row in rows] == [record["id"] for record in WITH_ANSWERS]
    for row, record in zip(rows, WITH_ANSWERS, strict=True):
        scores = direct_scores[record["id"]]
        kept = kept_subset(row, record)
        best = sorted(scores, key=lambda i: -scores[i])[:2]
        assert sorted(kept) == sorted(best)
        assert row["rewards"].keys() == set(kept)
        for answer_id, reward in row["rewards"].items():
            assert reward == pytest.approx(scores[answer_id], abs=1e-4)


def test_rso_sample_keeps_at_most_n(tmp_path, direct_scores) -> None:
    # rso.json uses the older layout (rm, tokenizer_settings, rm_batch_size, N, chat_dataset)
    config = json.loads((CONFIGS / "sampling" / "rso.json").read_text())
    assert config["N"] == 3
    rows = sample("rso_sample", "rso.json", tmp_path / "rso")
    assert len(rows) == len(WITH_ANSWERS)
    for row, record in zip(rows, WITH_ANSWERS, strict=True):
        kept = kept_subset(row, record)
        assert len(kept) == min(3, len(record["answers"]))  # each round accepts the best remaining
        for answer_id, reward in row["rewards"].items():
            assert reward == pytest.approx(direct_scores[record["id"]][answer_id], abs=1e-4)
