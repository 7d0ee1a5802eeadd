"""Every registered reader, encoder and projector built from its settings; the composed model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter

from turbo.media import MediaItem
from turbo.modeling.multimodal.encoders import ENCODERS, build_encoder, encoder_shape
from turbo.modeling.multimodal.model import MultimodalModel
from turbo.modeling.multimodal.parts import build_encoders
from turbo.modeling.multimodal.projectors import PROJECTORS, build_projector
from turbo.modeling.multimodal.readers import READERS, build_reader
from turbo.settings.multimodal import CAbstractorSettings, EncoderSettings, LlavaProjectorSettings
from turbo.settings.pipelines.preprocessing import PreprocessMultimodalSettings

MEDIA = {"image": "images/green_1.png", "audio": "audio/low.wav"}
TOWERS = {"clip": "clip_tiny", "siglip": "siglip_tiny", "whisper": "whisper_tiny"}


@pytest.mark.parametrize("kind", sorted(ENCODERS))
def test_every_encoder_and_its_reader_build_from_settings(multimodal_models: Path, kind: str) -> None:
    modality = (
        TypeAdapter(EncoderSettings)
        .validate_python(
            {"modality_encoder_type": kind, "encoder_path": str(multimodal_models / TOWERS[kind])}
        )
        .modality
    )
    folder = multimodal_models / TOWERS[kind]
    media = multimodal_models.parent / "datasets" / "multimodal" / "media"
    settings = PreprocessMultimodalSettings.model_validate(
        {
            "modality": modality,
            "reader_settings": {"reader_type": kind, "reader_path": str(folder)},
            "encoder_settings": {"modality_encoder_type": kind, "encoder_path": str(folder)},
            "dataset_path": str(media),
            "output_file_path": "unused",
        }
    )
    item = MediaItem(modality, MEDIA[modality], media / MEDIA[modality], "x:1")
    inputs = build_reader(settings.reader_settings).read(item)
    output = build_encoder(settings.encoder_settings)(inputs.unsqueeze(0))
    assert output.shape == (1, *encoder_shape(settings.encoder_settings))
    assert set(READERS) == {*ENCODERS, "pickle"}


@pytest.mark.parametrize(
    ("settings", "n_in", "n_out"),
    [
        (LlavaProjectorSettings(projector_type="llava"), 16, 16),
        (CAbstractorSettings(projector_type="c_abs"), 16, 4),
    ],
)
def test_projectors_give_n_embeddings_of_the_lm_width(settings, n_in: int, n_out: int) -> None:
    projector = build_projector(settings, 32, 64, n_in, n_out)
    assert projector.forward(torch.randn(3, n_in, 32)).shape == (3, n_out, 64)
    assert settings.output_tokens(n_in, n_out) == n_out and settings.projector_type in PROJECTORS


class TinyLM(torch.nn.Module):
    """Any module with get_input_embeddings() and an inputs_embeds forward will do."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.head = torch.nn.Linear(8, 10)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def forward(self, inputs_embeds, attention_mask=None, labels=None):
        logits = self.head(inputs_embeds)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return {"loss": loss, "logits": logits, "inputs_embeds": inputs_embeds}


def test_the_model_splices_features_in_order_and_the_frozen_encoder_never_changes(
    multimodal_models: Path,
) -> None:
    torch.manual_seed(0)
    encoder_settings = PreprocessMultimodalSettings.model_validate(
        {
            "modality": "image",
            "reader_settings": {"reader_type": "clip", "reader_path": str(multimodal_models / "clip_tiny")},
            "encoder_settings": {
                "modality_encoder_type": "clip",
                "encoder_path": str(multimodal_models / "clip_tiny"),
            },
            "dataset_path": str(multimodal_models),
            "output_file_path": "unused",
        }
    ).encoder_settings
    (encoder,) = build_encoders({"image": encoder_settings}, torch.float32).values()
    projector = build_projector(CAbstractorSettings(projector_type="c_abs"), 32, 8, 16, 4)
    model = MultimodalModel(TinyLM(), {"image": encoder}, {"image": projector}, {"image": 9})
    input_ids = torch.tensor([[1, 9, 9, 9, 9, 2, 3], [2, 9, 9, 9, 9, 3, 4]])
    pixels = torch.randn(2, 3, 32, 32)
    output = model(input_ids, labels=input_ids, modality_inputs={"image": pixels})
    expected = projector(encoder(pixels))
    assert torch.equal(output["inputs_embeds"][0, 1:5], expected[0])
    assert torch.equal(output["inputs_embeds"][1, 1:5], expected[1])
    assert torch.equal(output["inputs_embeds"][0, 0], model.language_model.embed.weight[1])

    frozen = {k: v.clone() for k, v in encoder.state_dict().items()}
    projected = {k: v.clone() for k, v in projector.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.01)
    for _ in range(2):
        model(input_ids, labels=input_ids, modality_inputs={"image": pixels})["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.equal(frozen[k], v) for k, v in encoder.state_dict().items())
    assert all(not torch.equal(projected[k], v) for k, v in projector.state_dict().items())
    with pytest.raises(Exception, match="n_modality_embeddings does not fit"):
        model(input_ids[:, :4], labels=input_ids[:, :4], modality_inputs={"image": pixels})
