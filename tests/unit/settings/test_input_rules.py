"""Settings a run could not use are refused at validation, at their field path, with what to write."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from turbo.errors import SettingsError
from turbo.settings.base import StrictModel
from turbo.settings.commands import COMMANDS, load_object
from turbo.settings.loading import validate_settings
from turbo.settings.pipelines.train.sft import SftExperimentSettings

from ...helpers import CONFIGS

SFT = CONFIGS / "train" / "sft" / "lora.json"


def problems(change) -> str:
    data = json.loads(SFT.read_text())
    change(data)
    with pytest.raises(SettingsError) as info:
        validate_settings(data, SftExperimentSettings, "x.json")
    assert "Traceback" not in str(info.value)
    return str(info.value)


def template(data: dict) -> dict:
    return data["train_dataset_settings"]["prompt_template"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prefix_template", "<RS>{role!x}", "write {role} plainly, with no !conversion or :format after it"),
        ("prefix_template", "<RS>{role:d}", "write {role} plainly, with no !conversion or :format after it"),
        ("prefix_template", "<RS>{other}", "must contain {role} exactly once and no other {field}"),
        ("prefix_template", "<RS>{role}{role}", "must contain {role} exactly once"),
        ("prefix_template", "<RS>{role", "expected '}' before end of string; write literal braces as"),
        ("suffix_template", "{other}", "takes no {field}"),
        ("suffix_template", "{role!r}", "takes no {field}"),
        ("suffix_template", "}", "Single '}' encountered in format string"),
    ],
)
def test_templates_with_bad_format_fields(field: str, value: str, message: str) -> None:
    text = problems(lambda data: template(data).__setitem__(field, value))
    assert f"train_dataset_settings.prompt_template.{field}: {message}" in text


def test_model_and_tokenizer_kwargs_that_turbo_sets_name_the_setting_to_use() -> None:
    def change(data: dict) -> None:
        data["model_settings"]["model_kwargs"] = {"dtype": "bfloat16", "local_files_only": False, "x": 1}
        data["tokenizer_settings"]["tokenizer_kwargs"] = {"use_fast": False, "trust_remote_code": True}

    text = problems(change)
    assert (
        "model_settings.model_kwargs: dtype is set by turbo: use model_settings.transformers_settings.dtype; "
        "local_files_only is set by turbo: use nothing (turbo always loads local files only)"
    ) in text
    assert (
        "tokenizer_settings.tokenizer_kwargs: trust_remote_code is set by turbo: use "
        "model_settings.transformers_settings.trust_remote_code; use_fast is set by turbo: use "
        "tokenizer_settings.use_fast"
    ) in text


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fp16": "yes"}, "fp16: Input should be a JSON object (got 'yes')"),
        ({"fp16": {"enabled": "yes"}}, "fp16.enabled: Input should be a valid boolean"),
        ({"zero_optimization": {"stage": 4}}, "zero_optimization.stage: Input should be 0, 1, 2 or 3"),
        ({"zero_optimization": 5}, "zero_optimization: Input should be a JSON object (got 5)"),
        ({"train_batch_size": "many"}, "train_batch_size: "),
        ({"optimizer": {"params": {}}}, "optimizer.type: Field required"),
    ],
)
def test_malformed_deepspeed_configs_name_the_key(tmp_path: Path, config: dict, message: str) -> None:
    text = problems(lambda data: data["trainer_settings"].__setitem__("deepspeed", config))
    assert "trainer_settings.deepspeed: the DeepSpeed config is malformed: " + message in text
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    assert message in problems(lambda data: data["trainer_settings"].__setitem__("deepspeed", str(path)))
    path.write_bytes(b"\xff\xfe{}")
    assert f"trainer_settings.deepspeed: {path}:1: not UTF-8" in problems(
        lambda data: data["trainer_settings"].__setitem__("deepspeed", str(path))
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "the path contains a NUL byte"),
        ("a" * 5000, "the path is 5000 bytes long"),
        ("d/" + "a" * 300 + "/x.jsonl", "the path has a name of 300 bytes"),
    ],
)
def test_paths_that_can_never_name_a_file(value: str, message: str) -> None:
    def change(data: dict) -> None:
        data["train_dataset_settings"]["sources"][0]["records_path"] = value
        data["log_path"] = value

    text = problems(change)
    assert f"train_dataset_settings.sources.0.records_path: {message}" in text
    assert f"log_path: {message}" in text


def _settings_classes() -> set[type[StrictModel]]:
    found: set[type[StrictModel]] = set()

    def walk(model: type) -> None:
        if not isinstance(model, type) or not issubclass(model, StrictModel) or model in found:
            return
        found.add(model)
        for field in model.model_fields.values():
            for arg in _flatten(field.annotation):
                walk(arg)

    for command in COMMANDS.values():
        walk(load_object(command.settings))
    return found


def _flatten(annotation: object) -> list[object]:
    args = typing.get_args(annotation)
    return [annotation] + [inner for arg in args for inner in _flatten(arg)] if args else [annotation]


def test_every_number_in_every_command_is_finite_and_bounded_where_it_counts() -> None:
    classes = _settings_classes()
    assert len(classes) > 30
    unbounded = []
    for model in classes:
        assert model.model_config.get("allow_inf_nan") is False, model
        for name, field in model.model_fields.items():
            kinds = set(_flatten(field.annotation))
            if (
                int in kinds
                and bool not in kinds
                and not field.metadata
                and not any(getattr(arg, "__metadata__", None) for arg in typing.get_args(field.annotation))
            ):
                unbounded.append(f"{model.__name__}.{name}")
    assert unbounded == []


def test_numbers_inside_free_form_dicts_are_finite_and_ranges_are_named() -> None:
    def change(data: dict) -> None:
        data["trainer_settings"]["lr_scheduler_kwargs"] = {"power": {"a": [1, float("inf")]}}
        data["trainer_settings"]["save_total_limit"] = 0
        data["model_settings"]["peft_settings"]["lora_dropout"] = 1.5

    text = problems(change)
    assert "trainer_settings.lr_scheduler_kwargs: power.a.1 is not a finite number" in text
    assert (
        "trainer_settings.save_total_limit: Input should be greater than or equal to 1; allowed: 1 <= value"
        in text
    )
    assert "lora_dropout: Input should be less than 1; allowed: 0 <= value < 1" in text


def test_a_deepspeed_path_too_long_for_the_os() -> None:
    text = problems(lambda data: data["trainer_settings"].__setitem__("deepspeed", "a" * 300))
    assert "trainer_settings.deepspeed: the DeepSpeed config path has a name of 300 bytes" in text


def test_paths_and_numbers_inside_dicts_and_lists() -> None:
    from turbo.settings.base import _problem_in

    assert (
        _problem_in({"image": Path("a" * 300)})
        == "image: the path has a name of 300 bytes; the OS allows at most 255"
    )
    assert _problem_in([1.0, {"x": [Path("ok"), float("nan")]}]) == "1.x.1 is not a finite number"
    assert _problem_in({"a": [1, "b", Path("c")]}) is None
