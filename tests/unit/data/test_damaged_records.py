"""Damaged records get one file:line message (never a traceback), and long records take linear time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from turbo.data.chat import build_chat_samples
from turbo.data.multimodal import MultimodalRecord, resolve_media
from turbo.data.readers import read_jsonl
from turbo.data.records import ChatMessage, ChatRecord
from turbo.data.templating import _render_by_prefixes, render_with_chat_template
from turbo.errors import DataError
from turbo.settings.datasets import ChatDatasetSettings

TEMPLATE = {
    "role_tag_mapping": {"bot": "<bot>", "user": "<user>", "system": "<system>"},
    "prefix_template": "<RS>{role}",
    "suffix_template": "</RS>",
}


@pytest.fixture(scope="module")
def tokenizer(fixture_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")


def write(tmp_path: Path, lines: list[str | bytes]) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


GOOD = json.dumps(
    {"id": "1", "messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "ok"}]}
)


def read_error(path: Path, record_type=ChatRecord) -> str:
    with pytest.raises(DataError) as info:
        read_jsonl(path, record_type)
    return str(info.value)


def test_records_that_are_not_utf8(tmp_path: Path) -> None:
    latin = '{"id": "2", "messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1")
    path = write(tmp_path, [GOOD, latin])
    offset = len(GOOD) + 1 + latin.index(b"\xe9")
    assert read_error(path) == f"{path}:2: not UTF-8: byte 0xe9 at byte offset {offset}; save it as UTF-8"
    path.write_bytes(GOOD.encode("utf-16"))
    assert "it looks like UTF-16" in read_error(path)


def test_lone_surrogates_nul_and_non_finite_numbers_in_records(tmp_path: Path, tokenizer) -> None:
    surrogate = '{"id": "2", "messages": [{"role": "user", "content": "a \\udc00 b"}]}'
    assert read_error(write(tmp_path, [GOOD, surrogate])).endswith(
        ":2: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff without its pair), which is not text"
    )
    margin = json.dumps(
        {
            "id": "m",
            "context": [{"role": "user", "content": "q"}],
            "answer_w": {"role": "bot", "content": "a"},
            "answer_l": {"role": "bot", "content": "b"},
        }
    )
    from turbo.data.pair_preferences import PairPreferenceRecord

    path = write(tmp_path, [margin[:-1] + ', "precomputed_margin": Infinity}'])
    assert "records.jsonl:1: precomputed_margin: Input should be a finite number" in read_error(
        path, PairPreferenceRecord
    )
    # a NUL character is text: it is tokenised like any other
    nul = json.dumps(
        {"id": "n", "messages": [{"role": "user", "content": "a\u0000b"}, {"role": "bot", "content": "c"}]}
    )
    settings = ChatDatasetSettings(
        dataset_type="chat",
        sources=[{"name": "s", "records_path": write(tmp_path, [nul]), "sample_rate": 1.0}],
        prompt_template=TEMPLATE,
    )
    samples, _ = build_chat_samples(settings, tokenizer, seed=0)
    assert len(samples) == 1 and samples[0].input_ids


def test_llava_records_and_media_paths(tmp_path: Path) -> None:
    for image in (5, [5], {"a": 1}, True):
        row = json.dumps(
            {"id": "x", "image": image, "conversations": [{"from": "human", "value": "<image>"}]}
        )
        message = read_error(write(tmp_path, [row]), MultimodalRecord)
        assert message.startswith(f"{tmp_path / 'records.jsonl'}:1: ") and "image must be a path" in message
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    for content, problem in (("a\x00.png", "contains a NUL byte"), ("loop.png", "")):
        try:
            key, path = resolve_media(content, tmp_path, "f:3")
        except DataError as exc:
            assert str(exc).startswith("f:3: media path") and problem in str(exc)
        else:  # a loop that resolves lexically is reported by the reader (the file cannot be opened)
            assert key == "loop.png" and not path.is_file()


class CountingTokenizer:
    """The fixture tokenizer, counting the work a record costs: the characters it tokenises and the
    messages its chat template renders (rendering every prefix of a conversation is quadratic)."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self.characters = 0
        self.messages_rendered = 0

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)

    def __call__(self, texts, **kwargs):
        self.characters += sum(map(len, [texts] if isinstance(texts, str) else texts))
        return self._tokenizer(texts, **kwargs)

    def apply_chat_template(self, conversation, **kwargs):
        self.messages_rendered += len(conversation)
        return self._tokenizer.apply_chat_template(conversation, **kwargs)


@pytest.mark.parametrize(
    ("use_template", "keep_end"), [(True, False), (False, True)], ids=["prompt_template", "chat_template"]
)
def test_a_40000_message_record_costs_linear_work(
    tmp_path: Path, tokenizer, use_template: bool, keep_end: bool
) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "bot", "content": f"message {i}"} for i in range(40_000)]
    path = write(tmp_path, [json.dumps({"id": "long", "messages": messages})])
    settings = ChatDatasetSettings(
        dataset_type="chat",
        sources=[{"name": "s", "records_path": path, "sample_rate": 1.0}],
        prompt_template=TEMPLATE if use_template else None,
        max_tokens_count=64,
        keep_end=keep_end,
    )
    counting = CountingTokenizer(tokenizer)
    samples, _ = build_chat_samples(settings, counting, seed=0)
    content = sum(len(message["content"]) for message in messages)
    assert counting.characters < 4 * content + 64 * len(messages), (
        "the record's text is tokenised more than once"
    )
    assert counting.messages_rendered <= 4 * len(messages), "the chat template rendered every prefix"
    assert len(samples) == 1 and samples[0].truncated and 0 < len(samples[0].input_ids) <= 64
    kept = samples[0].messages
    assert (kept[-1].content == "message 39999") if keep_end else (kept[0].content == "message 0")


def test_long_conversations_split_as_the_exact_prefix_rendering_does(tokenizer) -> None:
    roles = ["system"] + ["user", "bot"] * 15 + ["user"]
    messages = [ChatMessage(role=role, content=f" {role} {i} {{x}} ") for i, role in enumerate(roles)]
    assert render_with_chat_template(messages, tokenizer, "f:1") == _render_by_prefixes(
        messages, tokenizer, "f:1"
    )
    without_system = messages[1:]
    assert render_with_chat_template(without_system, tokenizer, "f:1") == _render_by_prefixes(
        without_system, tokenizer, "f:1"
    )


def test_a_chat_template_that_refuses_a_conversation_names_the_record(tmp_path: Path, tokenizer) -> None:
    import copy

    strict = copy.deepcopy(tokenizer)
    strict.chat_template = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    bad = json.dumps(
        {"id": "2", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    )
    path = write(tmp_path, [GOOD, bad])
    settings = ChatDatasetSettings(
        dataset_type="chat", sources=[{"name": "s", "records_path": path, "sample_rate": 1.0}]
    )
    with pytest.raises(DataError) as info:
        build_chat_samples(settings, strict, seed=0)
    assert str(info.value) == (
        f"{path}:2: the tokenizer's chat template refuses this conversation: "
        "Conversation roles must alternate user/assistant"
    )


def test_a_jsonl_file_whose_first_line_is_an_array_is_read_line_by_line(tmp_path: Path) -> None:
    # the fuzz found it: `[...]` on line 1 of a .jsonl file was read as a whole-file JSON array,
    # so the message named line 2 ("Extra data") instead of the bad line 1
    path = write(tmp_path, ['["not", "a", "record"]', GOOD])
    assert read_error(path) == f"{path}:1: expected a JSON object, got list"
    path = write(tmp_path, ["[1,", GOOD])  # a cut array on line 1 of a .jsonl file
    assert read_error(path).startswith(f"{path}:1: not valid JSON: ")
    path = write(tmp_path, [GOOD, '["not", "a", "record"]'])
    assert read_error(path) == f"{path}:2: expected a JSON object, got list"


def test_a_json_array_file_is_read_whole_and_named_by_index(tmp_path: Path) -> None:
    record = json.loads(GOOD)
    path = tmp_path / "records.json"
    path.write_text(json.dumps([record, {**record, "id": "2"}], indent=2))
    assert [item.where for item in read_jsonl(path, ChatRecord)] == [f"{path}[0]", f"{path}[1]"]
    path.write_text(json.dumps([record, {"id": "2", "messages": 3}], indent=2))
    assert read_error(path) == f"{path}[1]: messages: Input should be a valid list"
    text = json.dumps([record], indent=2)
    cut = text[: text.rindex("}")]  # a cut array file: named by its last line, where it ends
    path.write_text(cut)
    assert read_error(path).startswith(f"{path}:{cut.count(chr(10)) + 1}: not valid JSON: ")
    # without the .jsonl suffix, lines that are each whole JSON are JSON Lines, named by line
    path = tmp_path / "records.txt"
    path.write_text('["not", "a", "record"]\n' + GOOD + "\n")
    assert read_error(path) == f"{path}:1: expected a JSON object, got list"
    path.write_text(json.dumps([record]) + "\n")  # a one-line array file without a suffix
    assert [item.where for item in read_jsonl(path, ChatRecord)] == [f"{path}[0]"]
