"""Multimodal pair preferences: records (flat with image/images, context with image messages), the
samples' media, and the batch: both rows of a pair carry the pair's image at their spans, labels only
on the answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from turbo.data.multimodal import MediaItem, add_modality_tokens
from turbo.data.multimodal_pair_preferences import (
    MultimodalPairCollator,
    MultimodalPairRecord,
    build_multimodal_pair_samples,
)
from turbo.errors import DataError
from turbo.settings.datasets.multimodal_pair_preferences import MultimodalPairPreferencesDatasetSettings
from turbo.settings.loading import read_settings_file

from ..helpers import CONFIGS, DATASETS

CONFIG = CONFIGS / "train" / "multimodal_dpo" / "llava_lora.json"
MEDIA = DATASETS / "multimodal" / "media"
N = 4  # tokens per image in these tests


class FileChecker:
    def missing(self, item: MediaItem) -> str | None:
        return None if item.path.is_file() else f"not found at {item.path}"


class PixelReader(FileChecker):
    """A constant tensor per image file (its index in `order` + 1): rows show whose image they got."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def read(self, item: MediaItem) -> torch.Tensor:
        if item.key not in self.order:
            self.order.append(item.key)
        return torch.full((N, 3), float(self.order.index(item.key) + 1))


def _settings(tmp_path: Path, rows: list[dict], **changes) -> MultimodalPairPreferencesDatasetSettings:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = read_settings_file(CONFIG)["train_dataset_settings"]
    data["sources"] = [{"name": "s", "records_path": str(path), "sample_rate": 1.0}]
    data.update({"n_modality_embeddings": N, **changes})
    return MultimodalPairPreferencesDatasetSettings.model_validate(data)


def _tokenizer(models: Path, settings: MultimodalPairPreferencesDatasetSettings):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models / "llama_tiny")
    add_modality_tokens(tokenizer, settings)  # type: ignore[arg-type]
    return tokenizer


def test_flat_records_place_images_at_their_markers_or_before_the_prompt() -> None:
    marked = MultimodalPairRecord.model_validate(
        {"prompt": "Look: <image> which?", "chosen": "a", "rejected": "b", "image": "x.png"}
    )
    assert [(m.role, m.type, m.content) for m in marked.context] == [
        ("user", "text", "Look:"),
        ("user", "image", "x.png"),
        ("user", "text", "which?"),
    ]
    assert marked.answer_w.content == "a" and marked.answer_l.content == "b"
    unmarked = MultimodalPairRecord.model_validate(
        {"prompt": "which?", "chosen": "a", "rejected": "b", "images": ["x.png", "y.png"], "score_margin": 1}
    )
    assert [m.content for m in unmarked.context] == ["x.png", "y.png", "which?"]
    assert unmarked.precomputed_margin == 1.0
    with pytest.raises(ValidationError, match="not both"):
        MultimodalPairRecord.model_validate(
            {
                "context": [{"role": "user", "type": "image", "content": "x.png"}],
                "answer_w": {"role": "bot", "content": "a"},
                "answer_l": {"role": "bot", "content": "b"},
                "image": "y.png",
            }
        )


def test_the_batch_gives_each_pair_its_image_at_the_spans_of_both_rows(
    multimodal_models: Path, tmp_path: Path
) -> None:
    rows = [
        {
            "id": "r",
            "prompt": "<image>\nColor?",
            "chosen": "red",
            "rejected": "blue",
            "image": "images/red_0.png",
        },
        {
            "id": "g",
            "context": [
                {"role": "user", "content": "Long question first"},
                {"role": "user", "type": "image", "content": "images/green_0.png"},
            ],
            "answer_w": {"role": "bot", "content": "green it is"},
            "answer_l": {"role": "bot", "content": "no"},
        },
    ]
    settings = _settings(tmp_path, rows, media_root=str(MEDIA))
    tokenizer = _tokenizer(multimodal_models, settings)
    reader = PixelReader()
    samples, _ = build_multimodal_pair_samples(settings, tokenizer, {"image": reader}, seed=0)
    assert [[m.key for m in s.media] for s in samples] == [["images/red_0.png"], ["images/green_0.png"]]

    batch = MultimodalPairCollator(tokenizer.pad_token_id, {"image": reader})([s.features() for s in samples])
    start, img, end = tokenizer.convert_tokens_to_ids(["<MS>", "<img>", "</MS>"])
    ids, labels = batch["input_ids"], batch["labels"]
    assert ids.shape[0] == 4  # [chosen r, chosen g, rejected r, rejected g]
    for row, sample in enumerate([*samples, *samples]):
        answer = sample.chosen_ids if row < 2 else sample.rejected_ids
        prompt = sample.prompt_ids
        assert ids[row, : len(prompt)].tolist() == prompt
        assert labels[row, : len(prompt)].eq(-100).all()  # no label on the prompt or its image span
        assert labels[row, len(prompt) : len(prompt) + len(answer)].tolist() == answer
        span = prompt.index(start)
        assert prompt[span : span + N + 2] == [start, *[img] * N, end]
    # the k-th image span of the batch (row-major) takes the k-th image: r, g, r, g
    assert [float(t[0, 0]) for t in batch["modality_inputs"]["image"]] == [1.0, 2.0, 1.0, 2.0]

    from turbo.modeling.multimodal.model import MultimodalModel

    language_model = torch.nn.Module()
    embeddings = torch.nn.Embedding(len(tokenizer), 3)
    language_model.get_input_embeddings = lambda: embeddings  # type: ignore[method-assign]
    model = MultimodalModel(
        language_model, {"image": torch.nn.Identity()}, {"image": torch.nn.Identity()}, {"image": img}
    )
    spliced = model.embed(ids, batch["modality_inputs"])
    for row in range(4):
        positions = ids[row] == img
        assert spliced[row][positions].eq(1.0 if row % 2 == 0 else 2.0).all()  # its pair's image
        assert torch.equal(spliced[row][~positions], embeddings(ids[row])[~positions])


def test_truncation_drops_the_earliest_image_with_its_message(
    multimodal_models: Path, tmp_path: Path
) -> None:
    rows = [
        {
            "id": "two",
            "context": [
                {"role": "user", "type": "image", "content": "images/red_0.png"},
                {"role": "user", "content": "and more words " * 8},
                {"role": "user", "type": "image", "content": "images/blue_0.png"},
                {"role": "user", "content": "Which?"},
            ],
            "answer_w": {"role": "bot", "content": "blue"},
            "answer_l": {"role": "bot", "content": "red"},
        }
    ]
    media_root = str(MEDIA)
    settings = _settings(tmp_path, rows, media_root=media_root, max_tokens_count=40)
    tokenizer = _tokenizer(multimodal_models, settings)
    (sample,), report = build_multimodal_pair_samples(settings, tokenizer, {"image": FileChecker()}, seed=0)
    assert [m.key for m in sample.media] == ["images/blue_0.png"]
    assert report.sources[0].truncated == 1


def test_a_missing_image_names_file_and_line(multimodal_models: Path, tmp_path: Path) -> None:
    rows = [
        {"prompt": "<image> a?", "chosen": "x", "rejected": "y", "image": "images/red_0.png"},
        {"prompt": "<image> b?", "chosen": "x", "rejected": "y", "image": "images/nope.png"},
    ]
    media_root = str(MEDIA)
    settings = _settings(tmp_path, rows, media_root=media_root)
    with pytest.raises(DataError, match=r"pairs.jsonl:2: image 'images/nope.png': not found"):
        build_multimodal_pair_samples(
            settings, _tokenizer(multimodal_models, settings), {"image": FileChecker()}, seed=0
        )
