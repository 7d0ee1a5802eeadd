"""Records (native and LLaVA form), media paths, token spans and the settings checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from turbo.data.multimodal import (
    MediaItem,
    MultimodalRecord,
    add_modality_tokens,
    build_multimodal_samples,
    resolve_media,
)
from turbo.errors import DataError
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.loading import read_settings_file
from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings

from ..helpers import CONFIGS, FIXTURES

LLAVA_CONFIG = CONFIGS / "train" / "multimodal" / "llava_lora.json"


class FileChecker:
    def missing(self, item: MediaItem) -> str | None:
        return None if item.path.is_file() else f"not found at {item.path}"


def test_llava_records_become_messages_in_order() -> None:
    record = MultimodalRecord.model_validate(
        {
            "id": 7,
            "image": ["a.png", "b.png"],
            "conversations": [
                {"from": "human", "value": "<image>\nCompare with <image> please"},
                {"from": "gpt", "value": "They differ."},
            ],
        }
    )
    assert [(m.role, m.type, m.content) for m in record.messages] == [
        ("user", "image", "a.png"),
        ("user", "text", "Compare with"),
        ("user", "image", "b.png"),
        ("user", "text", "please"),
        ("bot", "text", "They differ."),
    ]
    assert record.id == "7" and "image" not in record.model_dump()
    plain = MultimodalRecord.model_validate(
        {"id": "p", "image": "c.png", "conversations": [{"from": "human", "value": "What?"}]}
    )
    assert [(m.type, m.content) for m in plain.messages] == [("image", "c.png"), ("text", "What?")]
    with pytest.raises(ValidationError, match="placeholders"):
        MultimodalRecord.model_validate(
            {"id": "x", "image": "a.png", "conversations": [{"from": "human", "value": "<image><image>"}]}
        )


def test_media_paths_may_not_leave_the_root(tmp_path: Path) -> None:
    assert resolve_media("images/a.png", tmp_path, "f:1")[0] == "images/a.png"
    assert resolve_media("images/../b.png", tmp_path, "f:1")[0] == "b.png"
    for bad in ("../secret.png", "/etc/passwd", ""):
        with pytest.raises(DataError, match="f:1"):
            resolve_media(bad, tmp_path, "f:1")


def _dataset(tmp_path: Path, rows: list[dict], **changes) -> MultimodalDatasetSettings:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = read_settings_file(LLAVA_CONFIG)["train_dataset_settings"]
    data["sources"] = [{"name": "s", "records_path": str(path), "sample_rate": 1.0}]
    data.update(changes)
    return MultimodalDatasetSettings.model_validate(data)


def _tokenizer(fixture_models: Path, settings: MultimodalDatasetSettings):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixture_models / "llama_tiny")
    add_modality_tokens(tokenizer, settings)
    return tokenizer


def _image(content: str, role: str = "user") -> dict:
    return {"role": role, "type": "image", "content": content}


def test_spans_are_whole_untrained_and_match_the_media(multimodal_models: Path, tmp_path: Path) -> None:
    rows = [
        {
            "id": "two",
            "messages": [
                _image("images/red_0.png"),
                {"role": "user", "content": "and"},
                _image("images/blue_0.png"),
                {"role": "bot", "content": "red and blue"},
                {"role": "user", "content": "again " * 40},
                _image("images/green_0.png"),
                {"role": "bot", "content": "green"},
            ],
        },
        {"id": "many", "messages": [_image("images/red_0.png")] * 4 + [{"role": "bot", "content": "x"}]},
    ]
    settings = _dataset(tmp_path, rows, max_tokens_count=90, max_media_per_sample=3, n_modality_embeddings=4)
    tokenizer = _tokenizer(multimodal_models, settings)
    samples, report = build_multimodal_samples(settings, tokenizer, {"image": FileChecker()}, seed=0)
    (sample,) = samples
    assert [item.key for item in sample.media] == ["images/red_0.png", "images/blue_0.png"]  # third cut whole
    assert sample.truncated and report.sources[0].dropped == {"more than 3 media items": ["many"]}
    ids = tokenizer.convert_tokens_to_ids(["<MS>", "<img>", "</MS>"])
    assert sample.input_ids.count(ids[0]) == 2 and sample.input_ids.count(ids[1]) == 8
    first = sample.input_ids.index(ids[0])
    assert sample.input_ids[first : first + 6] == [ids[0], *[ids[1]] * 4, ids[2]]
    assert all(
        label == -100 for token, label in zip(sample.input_ids, sample.labels, strict=True) if token in ids
    )
    assert tokenizer.decode(
        [t for t, lab in zip(sample.input_ids, sample.labels, strict=True) if lab != -100]
    )


def test_a_missing_image_names_file_and_line(multimodal_models: Path, tmp_path: Path) -> None:
    rows = [{"id": "a", "messages": [_image("images/red_0.png"), {"role": "bot", "content": "red"}]}] * 1
    rows += [{"id": "b", "messages": [_image("images/nope.png"), {"role": "bot", "content": "?"}]}]
    settings = _dataset(tmp_path, rows)
    with pytest.raises(DataError, match=r"records.jsonl:2: image 'images/nope.png': not found"):
        build_multimodal_samples(
            settings, _tokenizer(multimodal_models, settings), {"image": FileChecker()}, seed=0
        )


def test_modality_tokens_in_text_are_rejected(multimodal_models: Path, tmp_path: Path) -> None:
    rows = [
        {"id": "a", "messages": [{"role": "user", "content": "hi <img>"}, {"role": "bot", "content": "x"}]}
    ]
    settings = _dataset(tmp_path, rows)
    with pytest.raises(DataError, match="records.jsonl:1: the text holds a modality token"):
        build_multimodal_samples(
            settings, _tokenizer(multimodal_models, settings), {"image": FileChecker()}, seed=0
        )


def _experiment(**changes) -> dict:
    data = read_settings_file(LLAVA_CONFIG)
    data.update(changes)
    return data


def test_settings_checks_name_what_to_write() -> None:
    settings = MultimodalExperimentSettings.model_validate(
        _experiment(modality_projector_mapping={"image": "c_abstractor"})
    )
    assert settings.projectors["image"].projector_type == "c_abs"  # the old name is accepted
    data = _experiment(modality_projector_mapping={"image": "c_abs"})
    data["train_dataset_settings"]["n_modality_embeddings"] = 10
    with pytest.raises(ValidationError, match=r"10 is not a perfect square.* \(nearest: 9 or 16\)"):
        MultimodalExperimentSettings.model_validate(data)
    with pytest.raises(ValidationError, match="is_pickle: true passes pre-encoded features"):
        MultimodalExperimentSettings.model_validate(
            _experiment(
                modality_encoder_settings_mapping={
                    "image": {
                        "modality_encoder_type": "clip",
                        "encoder_path": "x",
                        "is_pickle": True,
                        "freeze": False,
                    }
                }
            )
        )
    with pytest.raises(ValidationError, match="reader_type: pickle and is_pickle: true"):
        MultimodalExperimentSettings.model_validate(
            _experiment(
                modality_encoder_settings_mapping={
                    "image": {"modality_encoder_type": "clip", "encoder_path": "x", "is_pickle": True}
                }
            )
        )
    with pytest.raises(ValidationError, match="did you mean 'modality_projector_mapping'"):
        MultimodalExperimentSettings.model_validate(_experiment(modality_projector_maping={}))


def test_shipped_multimodal_configs_validate() -> None:
    from turbo.settings.pipelines.inference.multimodal import MultimodalInferenceExperimentSettings
    from turbo.settings.pipelines.preprocessing import PreprocessMultimodalSettings

    for path in sorted((CONFIGS / "train" / "multimodal").glob("*.json")):
        MultimodalExperimentSettings.model_validate(read_settings_file(path))
    MultimodalInferenceExperimentSettings.model_validate(
        read_settings_file(CONFIGS / "inference" / "multimodal" / "llava.json")
    )
    PreprocessMultimodalSettings.model_validate(read_settings_file(CONFIGS / "preprocessing" / "clip.json"))
    assert (FIXTURES / "datasets" / "multimodal" / "train_images.jsonl").is_file()
