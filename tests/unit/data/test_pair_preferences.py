"""The pair-preferences dataset: both record forms, shared prompt tokens, truncation, bad records."""

import json
from pathlib import Path

import pytest

from turbo.data.pair_preferences import PairCollator, PairPreferenceRecord, build_pair_samples
from turbo.errors import DataError
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings

from ...helpers import FIXTURES

TEMPLATE = {
    "role_tag_mapping": {"bot": "bot", "user": "user", "system": "system"},
    "prefix_template": "<|{role}|>\n",
    "suffix_template": "\n",
}


@pytest.fixture(scope="module")
def tokenizer(fixture_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(FIXTURES / "models" / "llama_tiny")


def settings(path: Path, **extra: object) -> PairPreferencesDatasetSettings:
    return PairPreferencesDatasetSettings.model_validate(
        {
            "dataset_type": "pair_preferences",
            "sources": [{"name": "pairs", "records_path": str(path), "sample_rate": 1.0}],
            **extra,
        }
    )


def write(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_flat_forms_and_margin_aliases() -> None:
    plain = PairPreferenceRecord.model_validate(
        {"prompt": "Hi?", "chosen": "Yes.", "rejected": "No.", "score_margin": 2}
    )
    assert [m.role for m in plain.context] == ["user"] and plain.answer_w.content == "Yes."
    assert plain.precomputed_margin == 2.0 and plain.id is None
    implicit = PairPreferenceRecord.model_validate(
        {
            "chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yes."}],
            "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "No."}],
        }
    )
    assert [m.content for m in implicit.context] == ["Hi?"] and implicit.answer_l.content == "No."


def test_chosen_and_rejected_share_the_prompt_tokens(tokenizer, tmp_path: Path) -> None:
    path = FIXTURES / "datasets" / "pair_preferences" / "train_preferences.jsonl"
    samples, report = build_pair_samples(settings(path, prompt_template=TEMPLATE), tokenizer, seed=1)
    assert len(samples) == 8 and report.dropped == 0
    sample = samples[0]
    assert tokenizer.decode(sample.prompt_ids) == "<s><|user|>\nWhat is the capital of France?\n<|bot|>\n"
    assert tokenizer.decode(sample.chosen_ids) == "The capital of France is Paris.\n</s>"
    batch = PairCollator(tokenizer.pad_token_id)([s.features() for s in samples[:2]])
    assert batch["input_ids"].shape[0] == 4 and "margin" in batch
    for row, sample in enumerate(samples[:2]):
        prompt = len(sample.prompt_ids)
        assert batch["input_ids"][row, :prompt].tolist() == batch["input_ids"][row + 2, :prompt].tolist()
        assert (batch["labels"][row, :prompt] == -100).all()
        assert batch["labels"][row, prompt : prompt + len(sample.chosen_ids)].tolist() == sample.chosen_ids


def test_truncation_drops_the_earliest_context_messages(tokenizer, tmp_path: Path) -> None:
    context = [{"role": "user", "content": f"Question number {i} is about the river?"} for i in range(6)]
    path = write(
        tmp_path,
        [
            {
                "id": "long",
                "context": context,
                "answer_w": {"role": "bot", "content": "Yes."},
                "answer_l": {"role": "bot", "content": "No."},
            },
            {
                "id": "huge",
                "context": context[:1],
                "answer_w": {"role": "bot", "content": "word " * 80},
                "answer_l": {"role": "bot", "content": "No."},
            },
        ],
    )
    samples, report = build_pair_samples(settings(path, max_tokens_count=40), tokenizer, seed=1)
    assert [s.name for s in samples] == ["long"]
    text = tokenizer.decode(samples[0].prompt_ids)
    assert "Question number 5" in text and "Question number 0" not in text
    assert len(samples[0].prompt_ids) + max(len(samples[0].chosen_ids), len(samples[0].rejected_ids)) <= 40
    assert "1 dropped: an answer is longer than max_tokens_count (ids huge)" in report.summary()
    assert "1 truncated" in report.summary()


def test_bad_records_name_file_and_line(tokenizer, tmp_path: Path) -> None:
    good = {
        "id": "a",
        "context": [{"role": "user", "content": "Hi"}],
        "answer_w": {"role": "bot", "content": "x"},
        "answer_l": {"role": "bot", "content": "y"},
    }
    path = write(tmp_path, [good, {**good, "id": "b", "answer_l": {"role": "user", "content": "y"}}])
    with pytest.raises(DataError, match=rf"{path}:2: answer_l: .*must be a bot message"):
        build_pair_samples(settings(path), tokenizer, seed=1)
    path = write(tmp_path, [good, {"id": "c", "prompt": "Hi", "chosen": "x"}])
    with pytest.raises(DataError, match=rf"{path}:2: .*needs 'chosen' and 'rejected'"):
        build_pair_samples(settings(path), tokenizer, seed=1)
    path = write(tmp_path, [good, {**good, "id": "d", "image": "cat.png"}])
    samples, report = build_pair_samples(settings(path), tokenizer, seed=1)
    assert len(samples) == 1 and "has an image" in report.summary()
    with pytest.raises(DataError, match=rf"{path}:1: the loss reads a margin"):
        build_pair_samples(settings(path), tokenizer, seed=1, need_margin=True)


def test_keep_end_false_is_rejected_and_flat_chat_fields_nest() -> None:
    nested = settings(Path("x.jsonl"), prompt_template=TEMPLATE, max_tokens_count=9)
    assert nested.chat_settings.max_tokens_count == 9 and nested.chat_settings.keep_end
    with pytest.raises(ValueError, match="always drop the earliest context messages"):
        settings(Path("x.jsonl"), chat_settings={"keep_end": False})
