import json
from pathlib import Path

import pytest

from turbo.data.chat import build_chat_samples
from turbo.errors import DataError
from turbo.labels import IGNORE_INDEX
from turbo.settings.datasets import ChatDatasetSettings

TEMPLATE = {
    "role_tag_mapping": {"bot": "<bot>", "user": "<user>", "system": "<system>"},
    "prefix_template": "[{role}]",
    "suffix_template": "|",
}


@pytest.fixture(scope="module")
def tokenizer(fixture_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")


def write(tmp_path: Path, records: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def settings(path: Path, **extra) -> ChatDatasetSettings:
    return ChatDatasetSettings(
        dataset_type="chat",
        sources=[{"name": "s", "records_path": path, "sample_rate": 1.0}],
        prompt_template=extra.pop("prompt_template", TEMPLATE),
        **extra,
    )


def msg(role: str, content: str, **extra) -> dict:
    return {"role": role, "content": content, **extra}


CONVERSATION = {
    "id": "a",
    "messages": [msg("user", "one two"), msg("bot", "three"), msg("user", "four"), msg("bot", "five six")],
}


def trained_text(sample, tokenizer) -> str:
    pairs = zip(sample.input_ids, sample.labels, strict=True)
    return tokenizer.decode([token for token, label in pairs if label != IGNORE_INDEX])


def test_labels_only_on_bot_turns_with_eos(tmp_path, tokenizer) -> None:
    samples, _ = build_chat_samples(settings(write(tmp_path, [CONVERSATION])), tokenizer, seed=0)
    sample = samples[0]
    assert sample.input_ids[0] == tokenizer.bos_token_id
    assert sample.input_ids[-1] == tokenizer.eos_token_id
    assert (
        tokenizer.decode(sample.input_ids)
        == "<s>[<user>]one two|[<bot>]three|[<user>]four|[<bot>]five six|</s>"
    )
    assert trained_text(sample, tokenizer) == "three|five six|</s>"


def test_only_last_replica_and_disable_loss(tmp_path, tokenizer) -> None:
    path = write(tmp_path, [CONVERSATION])
    samples, _ = build_chat_samples(settings(path, only_last_replica_loss=True), tokenizer, seed=0)
    assert trained_text(samples[0], tokenizer) == "five six|</s>"
    record = {
        **CONVERSATION,
        "messages": [*CONVERSATION["messages"][:3], msg("bot", "five six", disable_loss=True)],
    }
    samples, _ = build_chat_samples(settings(write(tmp_path, [record], "d.jsonl")), tokenizer, seed=0)
    # the untrainable last answer is dropped, so the sample ends with the last trained answer
    assert tokenizer.decode(samples[0].input_ids).endswith("[<bot>]three|</s>")
    assert trained_text(samples[0], tokenizer) == "three|</s>"


def test_full_loss_when_only_answer_loss_is_off(tmp_path, tokenizer) -> None:
    samples, _ = build_chat_samples(
        settings(write(tmp_path, [CONVERSATION]), only_answer_loss=False), tokenizer, seed=0
    )
    assert samples[0].labels[1:] == samples[0].input_ids[1:]


def test_truncation_drops_whole_messages(tmp_path, tokenizer) -> None:
    path = write(tmp_path, [CONVERSATION])
    full, _ = build_chat_samples(settings(path), tokenizer, seed=0)
    limit = len(full[0].input_ids) - 1
    head, report = build_chat_samples(settings(path, max_tokens_count=limit), tokenizer, seed=0)
    assert tokenizer.decode(head[0].input_ids) == "<s>[<user>]one two|[<bot>]three|</s>"
    assert head[0].truncated and report.sources[0].truncated == 1
    tail, _ = build_chat_samples(settings(path, max_tokens_count=limit, keep_end=True), tokenizer, seed=0)
    assert tokenizer.decode(tail[0].input_ids) == "<s>[<bot>]three|[<user>]four|[<bot>]five six|</s>"
    assert len(tail[0].input_ids) <= limit


def test_records_that_cannot_train_are_counted_and_named(tmp_path, tokenizer) -> None:
    records = [
        CONVERSATION,
        {"id": "no-bot", "messages": [msg("user", "only a question")]},
        {"id": "long", "messages": [msg("user", "word " * 200), msg("bot", "ok")]},
    ]
    samples, report = build_chat_samples(
        settings(write(tmp_path, records), max_tokens_count=60), tokenizer, seed=0
    )
    assert [s.record.record.id for s in samples] == ["a"]
    summary = report.summary()
    assert "1 of 3 sampled records used" in summary
    assert "no trainable token (ids no-bot)" in summary
    assert "longer than max_tokens_count (ids long)" in summary


def test_max_tokens_too_small_for_any_record(tmp_path, tokenizer) -> None:
    with pytest.raises(DataError, match="no usable record"):
        build_chat_samples(settings(write(tmp_path, [CONVERSATION]), max_tokens_count=4), tokenizer, seed=0)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "messages": [}'], r"data.jsonl:1: not valid JSON"),
        (
            [CONVERSATION, {"id": "b", "messages": [{"role": "robot", "content": "x"}]}],
            r"data.jsonl:2: messages.0.role",
        ),
        ([CONVERSATION, CONVERSATION], r"data.jsonl:2: duplicate id 'a' \(first at line 1\)"),
        ([{"id": "a", "messages": []}], r"data.jsonl:1: messages"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, tokenizer, lines, message) -> None:
    with pytest.raises(DataError, match=message):
        build_chat_samples(settings(write(tmp_path, lines)), tokenizer, seed=0)


def test_role_missing_from_the_template(tmp_path, tokenizer) -> None:
    template = {**TEMPLATE, "role_tag_mapping": {"bot": "<bot>", "user": "<user>"}}
    record = {"id": "a", "messages": [msg("system", "be brief"), msg("user", "hi"), msg("bot", "yo")]}
    with pytest.raises(
        DataError, match=r"data.jsonl:1: role 'system' is not in prompt_template.role_tag_mapping"
    ):
        build_chat_samples(settings(write(tmp_path, [record]), prompt_template=template), tokenizer, seed=0)


def test_inference_prompt_ends_with_the_bot_prefix(tmp_path, tokenizer) -> None:
    samples, _ = build_chat_samples(
        settings(write(tmp_path, [CONVERSATION])), tokenizer, seed=0, inference=True
    )
    assert tokenizer.decode(samples[0].input_ids) == "<s>[<user>]one two|[<bot>]three|[<user>]four|[<bot>]"
    assert set(samples[0].labels) == {IGNORE_INDEX}


def test_tokenizer_chat_template(tmp_path, tokenizer) -> None:
    path = write(tmp_path, [CONVERSATION])
    samples, _ = build_chat_samples(settings(path, prompt_template=None), tokenizer, seed=0)
    text = tokenizer.decode(samples[0].input_ids)
    assert text == tokenizer.apply_chat_template(
        [
            {"role": "user" if m["role"] == "user" else "assistant", "content": m["content"]}
            for m in CONVERSATION["messages"]
        ],
        tokenize=False,
    )
    assert trained_text(samples[0], tokenizer) == "three</s>\nfive six</s>\n"
    prompts, _ = build_chat_samples(settings(path, prompt_template=None), tokenizer, seed=0, inference=True)
    assert tokenizer.decode(prompts[0].input_ids).endswith("four</s>\n<|assistant|>\n")


def test_sampling_and_system_prompt(tmp_path, tokenizer) -> None:
    records = [{**CONVERSATION, "id": str(i)} for i in range(10)]
    path = write(tmp_path, records)
    data = ChatDatasetSettings(
        dataset_type="chat",
        sources=[{"name": "s", "records_path": path, "num_samples": 4, "system_prompt": "be kind"}],
        prompt_template=TEMPLATE,
    )
    first, _ = build_chat_samples(data, tokenizer, seed=1)
    again, _ = build_chat_samples(data, tokenizer, seed=1)
    other, _ = build_chat_samples(data, tokenizer, seed=2)
    ids = [s.record.record.id for s in first]
    assert len(ids) == 4 and ids == [s.record.record.id for s in again]
    assert ids != [s.record.record.id for s in other]
    assert tokenizer.decode(first[0].input_ids).startswith("<s>[<system>]be kind|[<user>]")
