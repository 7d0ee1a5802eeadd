import json
from pathlib import Path

import pytest

from turbo.data.kto import build_kto_samples, kl_partners, kto_features
from turbo.data.sampling import read_sampling_records
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets.kto import KtoDatasetSettings
from turbo.settings.datasets.sampling import SamplingDatasetSettings

TEMPLATE = {"role_tag_mapping": {"bot": "<bot>", "user": "<user>"}, "prefix_template": "[{role}]"}


@pytest.fixture(scope="module")
def tokenizer(fixture_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")


def write(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def kto_settings(path: Path, max_tokens: int | None = None) -> KtoDatasetSettings:
    return KtoDatasetSettings(
        dataset_type="kto",
        sources=[{"name": "s", "records_path": path, "sample_rate": 1.0}],
        chat_settings={"prompt_template": TEMPLATE, "max_tokens_count": max_tokens},
    )


def kto_row(i: int, context: list, answer: str, desirable: bool = True) -> dict:
    return {
        "id": str(i),
        "context": context,
        "answer": {"role": "bot", "content": answer},
        "is_desirable": desirable,
    }


def test_only_the_answer_is_trained_and_long_context_is_cut(tmp_path, tokenizer) -> None:
    user = {"role": "user", "content": "one two three four five six seven"}
    path = write(tmp_path, [kto_row(0, [user], "yes"), kto_row(1, [user, user], "no", False)])
    samples, _ = build_kto_samples(kto_settings(path), tokenizer, seed=0)
    assert tokenizer.decode(samples[0].prompt_ids) == "<s>[<user>]one two three four five six seven[<bot>]"
    assert tokenizer.decode(samples[0].answer_ids) == "yes</s>"
    features = kto_features(samples, seed=0, max_tokens=None)
    first = features[0]
    trained = [t for t, lab in zip(first["input_ids"], first["labels"], strict=True) if lab != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "yes</s>"
    assert tokenizer.decode([t for t in features[0]["kl_labels"] if t != IGNORE_INDEX]) == "no</s>"

    budget = len(samples[0].prompt_ids) + len(samples[0].answer_ids)
    cut, report = build_kto_samples(kto_settings(path, budget), tokenizer, seed=0)
    assert cut[1].prompt_ids == samples[0].prompt_ids  # the earliest user message went
    assert report.sources[0].truncated == 1


def test_kl_partners_are_a_derangement() -> None:
    for count in (2, 3, 10):
        partners = kl_partners(count, seed=1)
        assert sorted(partners) == list(range(count))
        assert all(partner != index for index, partner in enumerate(partners))


def test_bad_sampling_record_names_file_and_line(tmp_path) -> None:
    good = {
        "id": "a",
        "messages": [{"role": "user", "content": "q"}],
        "answers": [{"id": "0", "content": "x"}],
    }
    path = write(tmp_path, [good, {**good, "id": "b", "rewards": {"7": 1.0}}])
    settings = SamplingDatasetSettings(
        dataset_type="sampling", sources=[{"name": "s", "records_path": path, "sample_rate": 1.0}]
    )
    with pytest.raises(DataError, match=rf"{path}:2: .*ids \['7'\] are not answer ids"):
        read_sampling_records(settings, seed=0)
