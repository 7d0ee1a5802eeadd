"""The error promise, checked on hundreds of damaged files: exit 0, or exit 2 with one message that
names the file (file:line) or a field path; never a traceback; a bounded time per file.

Settings files are drawn from each command's own JSON Schema, or taken from the shipped fixtures,
then damaged (keys dropped, repeated or retyped; bad numbers and strings; cut, re-encoded or deeply
nested text). Records are damaged line by line and read and tokenised by their dataset type.

CI runs a small, fixed set of examples; TURBO_HYPOTHESIS_EXAMPLES=1000 runs more (and random ones).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from turbo.cli import main
from turbo.errors import TurboError
from turbo.settings.commands import COMMANDS, load_object

from ..helpers import CONFIGS, DATASETS
from .damage import damaged_text, damaged_tree, from_schema

EXAMPLES = int(os.environ.get("TURBO_HYPOTHESIS_EXAMPLES", "100"))
PROMISE = settings(
    max_examples=EXAMPLES,
    # CI reports a failing example as drawn (shrinking a damaged settings file can take minutes)
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if "TURBO_HYPOTHESIS_EXAMPLES" in os.environ else []),
    deadline=timedelta(seconds=20),
    derandomize="TURBO_HYPOTHESIS_EXAMPLES" not in os.environ,  # CI: the same examples every run
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
SECONDS_PER_FILE = 10
FOLDER = Path(tempfile.mkdtemp(prefix="turbo-property-"))
atexit.register(shutil.rmtree, FOLDER, True)
# a line that locates the problem: the file (with or without :line), or an indented field path
LOCATED = re.compile(r"^\s+[\w\-.<>\[\]' ]+: |^(\S+?)(:\d+)?: ")


def _command_of(path: Path) -> str | None:
    data = json.loads(path.read_text())
    for name, command in COMMANDS.items():
        try:
            load_object(command.settings).model_validate(data)
            return name
        except Exception:  # noqa: BLE001 (the first command whose settings fit)
            continue
    return None


SHIPPED = [
    (path, command)
    for path in sorted(CONFIGS.rglob("*.json"))
    if "original" not in path.parts and (command := _command_of(path))
]


def validate(data: bytes, command: str) -> None:
    """`turbo validate FILE --command COMMAND` in-process; asserts the promise on its outcome."""
    path = FOLDER / "settings.json"
    path.write_bytes(data)
    stderr, stdout = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    code: Any = 0
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            main(["validate", str(path), "--command", command])
        except SystemExit as exc:
            code = exc.code or 0
    elapsed = time.perf_counter() - start
    message = stderr.getvalue()
    assert elapsed < SECONDS_PER_FILE, f"validation took {elapsed:.1f} s"
    assert code in (0, 2), f"exit code {code}: {message}"
    assert "Traceback" not in message
    if code == 2:
        assert message.startswith("error: ") and message.count("error: ") == 1, message
        first, *rest = message.removeprefix("error: ").splitlines()
        assert str(path) in first or any(LOCATED.match(line) for line in rest), message


SCHEMAS = {name: load_object(command.settings).model_json_schema() for name, command in COMMANDS.items()}


@PROMISE
@given(data=st.data())
def test_settings_drawn_from_the_schema_then_damaged(data: st.DataObject) -> None:
    command = data.draw(st.sampled_from(sorted(SCHEMAS)), label="command")
    schema = SCHEMAS[command]
    document = data.draw(from_schema(schema, schema.get("$defs", {})), label="document")
    if data.draw(st.booleans(), label="damage the tree"):
        document = data.draw(damaged_tree(document), label="damaged")
    validate(data.draw(damaged_text(document), label="text"), command)


@PROMISE
@given(data=st.data())
def test_shipped_settings_damaged(data: st.DataObject) -> None:
    path, command = data.draw(st.sampled_from(SHIPPED), label="shipped settings")
    document = data.draw(damaged_tree(json.loads(path.read_text())), label="damaged")
    validate(data.draw(damaged_text(document), label="text"), command)


def _chat(path: Path, tokenizer: Any) -> None:
    from turbo.data.chat import build_chat_samples
    from turbo.settings.datasets import ChatDatasetSettings

    template = {
        "role_tag_mapping": {"bot": "<b>", "user": "<u>", "system": "<s>"},
        "prefix_template": "{role}",
    }
    for prompt_template in (template, None):
        settings_ = ChatDatasetSettings(
            dataset_type="chat",
            sources=[{"name": "s", "records_path": path, "sample_rate": 1.0}],
            prompt_template=prompt_template,
            max_tokens_count=64,
        )
        build_chat_samples(settings_, tokenizer, seed=0)


def _typed(dataset_type: str, builder: str, **options: Any):
    def build(path: Path, tokenizer: Any) -> None:
        import importlib

        from pydantic import TypeAdapter

        from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings  # noqa: F401

        module, name = builder.rsplit(".", 1)
        function = getattr(importlib.import_module(module), name)
        settings_type = {
            "pair_preferences": "turbo.settings.datasets.pair_preferences.PairPreferencesDatasetSettings",
            "kto": "turbo.settings.datasets.kto.KtoDatasetSettings",
            "classification": "turbo.settings.datasets.classification.ClassificationDatasetSettings",
            "sampling": "turbo.settings.datasets.sampling.SamplingDatasetSettings",
        }[dataset_type]
        settings_module, settings_name = settings_type.rsplit(".", 1)
        model = getattr(importlib.import_module(settings_module), settings_name)
        settings_ = TypeAdapter(model).validate_python(
            {
                "dataset_type": dataset_type,
                "sources": [{"name": "s", "records_path": str(path), "sample_rate": 1.0}],
                "chat_settings": {"max_tokens_count": 64},
            }
        )
        if dataset_type == "sampling":
            function(settings_, 0)
        else:
            function(settings_, tokenizer, seed=0, **options)

    return build


def _records(record_type: str):
    def read(path: Path, tokenizer: Any) -> None:
        import importlib

        from turbo.data.readers import read_jsonl

        module, name = record_type.rsplit(".", 1)
        read_jsonl(path, getattr(importlib.import_module(module), name))

    return read


DATASETS_AND_BUILDERS = {
    "chat/train_chat.jsonl": _chat,
    "pair_preferences/train_preferences.jsonl": _typed(
        "pair_preferences", "turbo.data.pair_preferences.build_pair_samples"
    ),
    "kto/train_kto.jsonl": _typed("kto", "turbo.data.kto.build_kto_samples"),
    "classification/train_classification.jsonl": _typed(
        "classification", "turbo.data.classification.build_classification_samples", require_labels=True
    ),
    "sampling/inference_answers.jsonl": _typed("sampling", "turbo.data.sampling.read_sampling_records"),
    "multimodal/train_images.jsonl": _records("turbo.data.multimodal.MultimodalRecord"),
}


@pytest.fixture(scope="module")
def tokenizer(fixture_models: Path) -> Any:
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.model import ModelSettings
    from turbo.settings.tokenizer import TokenizerSettings

    return load_tokenizer(TokenizerSettings(), ModelSettings(model_path=fixture_models / "llama_tiny"))


@PROMISE
@given(data=st.data())
def test_records_damaged_line_by_line(tokenizer: Any, data: st.DataObject) -> None:
    dataset = data.draw(st.sampled_from(sorted(DATASETS_AND_BUILDERS)), label="dataset")
    lines = [line.encode() for line in (DATASETS / dataset).read_text(encoding="utf-8").splitlines()]
    number = data.draw(st.integers(0, len(lines) - 1), label="damaged line index")
    record = json.loads(lines[number])
    if data.draw(st.booleans(), label="damage the tree"):
        record = data.draw(damaged_tree(record), label="record")
    text = data.draw(damaged_text(record), label="line")
    lines[number] = text.replace(b"\n", b" ") if not text.startswith((b"\xff", b"\xfe", b"\x00")) else text
    path = FOLDER / "records.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    start = time.perf_counter()
    try:
        DATASETS_AND_BUILDERS[dataset](path, tokenizer)
    except TurboError as exc:
        message = str(exc)
        assert "Traceback" not in message
        if not message.startswith("no usable record"):
            located = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
            assert located, message
            # the damaged line is the one named
            assert int(located.group(1)) == number + 1 or "duplicate id" in message, message
    assert time.perf_counter() - start < SECONDS_PER_FILE
