"""The tokenised-dataset cache: the same samples cold and warm, no tokenising when warm, keys by content."""

from __future__ import annotations

import json
import pickle

import pytest

from turbo.data.cache import cache_key, cached
from turbo.data.chat import build_chat_samples
from turbo.settings.datasets import ChatDatasetSettings


@pytest.fixture
def setup(tmp_path, monkeypatch, fixture_models):
    from transformers import AutoTokenizer

    monkeypatch.setenv("TURBO_DATASET_CACHE", str(tmp_path / "cache"))
    records = tmp_path / "train.jsonl"
    records.write_text(
        "".join(
            json.dumps(
                {
                    "id": str(i),
                    "messages": [{"role": "user", "content": f"q {i}"}, {"role": "bot", "content": f"a {i}"}],
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    settings = ChatDatasetSettings.model_validate(
        {
            "sources": [{"name": "s", "records_path": str(records), "sample_rate": 1.0}],
            "dataset_type": "chat",
            "max_tokens_count": 64,
        }
    )
    return settings, AutoTokenizer.from_pretrained(fixture_models / "llama_tiny"), records, tmp_path / "cache"


def test_warm_run_reads_the_same_samples_without_tokenising(setup) -> None:
    settings, tokenizer, _, folder = setup
    calls = []

    def build(*args, **kwargs):
        calls.append(1)
        return build_chat_samples(*args, **kwargs)

    cold_samples, cold_report = cached(build, settings, tokenizer, seed=1)
    warm_samples, warm_report = cached(build, settings, tokenizer, seed=1)
    assert len(calls) == 1  # the second run never tokenised
    assert len(list(folder.glob("*.pkl"))) == 1
    assert [s.features() for s in warm_samples] == [s.features() for s in cold_samples]
    assert [s.messages for s in warm_samples] == [s.messages for s in cold_samples]
    assert warm_report.summary() == cold_report.summary()


def test_the_key_follows_the_content(setup) -> None:
    settings, tokenizer, records, _ = setup
    key = cache_key(settings, tokenizer, seed=1)
    assert cache_key(settings, tokenizer, seed=1) == key
    assert cache_key(settings, tokenizer, seed=2) != key
    other = settings.model_copy(update={"max_tokens_count": 32})
    assert cache_key(other, tokenizer, seed=1) != key
    tokenizer.add_tokens(["<new>"])
    assert cache_key(settings, tokenizer, seed=1) != key
    tokenizer2_key = cache_key(settings, tokenizer, seed=1)
    records.write_text(records.read_text().replace("q 1", "q one"))
    assert cache_key(settings, tokenizer, seed=1) != tokenizer2_key


def test_a_damaged_or_foreign_entry_is_rebuilt(setup) -> None:
    settings, tokenizer, _, folder = setup
    samples, _ = cached(build_chat_samples, settings, tokenizer, seed=1)
    [entry] = folder.glob("*.pkl")
    entry.write_bytes(pickle.dumps(print))  # not a class the cache accepts
    again, _ = cached(build_chat_samples, settings, tokenizer, seed=1)
    assert [s.features() for s in again] == [s.features() for s in samples]
    entry.write_bytes(b"garbage")
    assert len(cached(build_chat_samples, settings, tokenizer, seed=1)[0]) == len(samples)


def test_off_turns_it_off(setup, monkeypatch) -> None:
    settings, tokenizer, _, folder = setup
    monkeypatch.setenv("TURBO_DATASET_CACHE", "off")
    cached(build_chat_samples, settings, tokenizer, seed=1)
    assert not folder.exists()
