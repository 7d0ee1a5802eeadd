"""What the libraries refuse while loading a tokenizer or a model is one message naming the field, exit 2,
nothing written: a tokenizer.json that current `tokenizers` cannot read (the original project's tiny
inference fixtures ship one), model_kwargs and tokenizer_kwargs that transformers refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ..helpers import CONFIGS, run_turbo

ORIGINAL = CONFIGS / "original"
ENTRY = "inference_settings.0"
INFERENCE = {  # the original's inference files that load a tokenizer from tokenizer_path
    "inference_chat": ORIGINAL / "inference" / "sft" / "base.json",
    "inference_classification": ORIGINAL / "inference" / "classification" / "base.json",
}
NAMES_BOTH = "model_kwargs.num_labels, model_settings.model_kwargs.num_labesl"


def out_of_vocabulary_copy(fixture_models: Path, target: Path) -> Path:
    """llama_tiny's tokenizer with one more BPE merge whose tokens are not in the vocabulary, as in the
    original's fixtures: `tokenizers` refuses it with a plain Exception."""
    shutil.copytree(fixture_models / "llama_tiny", target)
    data = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"].append(["zzq", "qqz"])
    (target / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    return target


def assert_refused(result, save_path: Path, *parts: str) -> None:
    assert result.stderr.count("error: ") == 1, result.stderr
    message = result.stderr[result.stderr.index("error: ") :]
    assert all(part in message for part in parts), message
    assert "Traceback" not in result.stderr
    assert not save_path.exists()


@pytest.mark.parametrize("command", sorted(INFERENCE))
def test_a_tokenizer_that_cannot_load_is_named_by_its_field(
    command: str, fixture_models: Path, tmp_path: Path
) -> None:
    broken = out_of_vocabulary_copy(fixture_models, tmp_path / "tokenizer")
    save_path = tmp_path / "out"
    result = run_turbo(
        command, "--inference_settings_path", INFERENCE[command], "--set", f"save_path={save_path}",
        "--set", f"{ENTRY}.tokenizer_settings.tokenizer_path={broken}", expect=2,
    )  # fmt: skip
    assert_refused(
        result, save_path,
        f"tokenizer_settings.tokenizer_path: cannot load a tokenizer from {broken}",
        "Token `zzq` out of vocabulary",
        "no tokenizer.model or spiece.model to fall back to",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"num_labels": {"positive": 0, "negative": 1}}, "model_kwargs.num_labels"),
        (
            {"num_labels": 2, "num_labesl": 2},
            "model_kwargs.num_labels, model_settings.model_kwargs.num_labesl",
        ),
    ],
)
def test_model_kwargs_that_transformers_refuses_are_named(
    kwargs: dict, names: str, fixture_models: Path, tmp_path: Path
) -> None:
    save_path = tmp_path / "out"
    result = run_turbo(
        "inference_classification", "--inference_settings_path", INFERENCE["inference_classification"],
        "--set", f"save_path={save_path}",
        "--set", f"{ENTRY}.model_settings.model_kwargs={json.dumps(kwargs)}", expect=2,
    )  # fmt: skip
    expected = "num_labesl" if "num_labesl" in kwargs else "cannot be interpreted as an integer"
    assert_refused(
        result, save_path, f"model_settings.{names}: transformers refused to load the model at", expected
    )


def test_a_train_run_with_a_misspelt_model_kwarg_stops_before_training(
    fixture_models: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    result = run_turbo(
        "train_classification",
        "--experiment_settings_path", ORIGINAL / "train" / "classification" / "base.json",
        "--set", f"log_path={folder}", "--set", 'model_settings.model_kwargs={"num_labesl": 2}',
        "--set", 'logging_settings={"logging_type": "none"}', expect=2,
    )  # fmt: skip
    assert_refused(
        result, folder / "final",
        "model_settings.model_kwargs.num_labesl: transformers refused to load the model at",
        "unexpected keyword argument 'num_labesl'",
    )  # fmt: skip
    assert not folder.exists()  # nothing half-written: not even experiment_settings.json or the data report


def test_tokenizer_kwargs_that_transformers_refuses_are_named(fixture_models: Path, tmp_path: Path) -> None:
    save_path = tmp_path / "out"
    result = run_turbo(
        "inference_chat", "--inference_settings_path", INFERENCE["inference_chat"],
        "--set", f"save_path={save_path}",
        "--set", f'{ENTRY}.tokenizer_settings.tokenizer_kwargs={{"padding_side": "middle"}}', expect=2,
    )  # fmt: skip
    assert_refused(
        result, save_path,
        "tokenizer_settings.tokenizer_kwargs: the tokenizer at tests/fixtures/models/llama_tiny loads, "
        "but not with padding_side: Padding side should be selected between 'right' and 'left'",
    )  # fmt: skip
