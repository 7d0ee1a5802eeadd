"""Projector weights as the original saves them (modality_adapters.pt, a torch state dict) load with
weights_only=True: tensors come back, and a pickle that would run code on load is refused unrun."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from turbo.errors import ModelError
from turbo.modeling.multimodal.parts import load_projector_weights, read_projector_file


class RunsOnLoad:
    """Unpickling this writes a file: a general unpickle would run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "ran"))


@pytest.mark.parametrize("suffix", [".pt", ".bin"])
def test_a_torch_state_dict_loads_into_the_projector(tmp_path: Path, suffix: str) -> None:
    projector = torch.nn.Linear(3, 2)
    state = {f"image.{name}": torch.full_like(value, 0.5) for name, value in projector.state_dict().items()}
    path = tmp_path / f"modality_adapters{suffix}"
    torch.save(state, path)
    load_projector_weights({"image": projector}, path)
    assert all(torch.equal(value, torch.full_like(value, 0.5)) for value in projector.state_dict().values())


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    path = tmp_path / "modality_adapters.pt"
    torch.save({"image.weight": RunsOnLoad(marker)}, path)
    with pytest.raises(ModelError, match=f"cannot read projector weights from {path}"):
        read_projector_file(path)
    assert not marker.exists()


def transformers_llava_projector(width: int, hidden: int) -> torch.nn.Module:
    """transformers' own LLaVA projector (the naming the original and LlavaForConditionalGeneration use)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=width, num_attention_heads=4).to_dict(),
        text_config=LlamaConfig(hidden_size=hidden, num_attention_heads=4).to_dict(),
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
    )
    torch.manual_seed(3)
    return LlavaMultiModalProjector(config).eval()


def turbo_llava_projector(width: int, hidden: int) -> torch.nn.Module:
    from turbo.modeling.multimodal.projectors import build_projector
    from turbo.settings.multimodal import LlavaProjectorSettings

    torch.manual_seed(0)
    return build_projector(LlavaProjectorSettings(projector_type="llava"), width, hidden, 4, 4).eval()


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("name", ["modality_adapters.pt", "projectors.safetensors"])
def test_the_originals_llava_naming_loads_and_computes_as_transformers(tmp_path: Path, name: str) -> None:
    """The original's modality_adapters.pt is its ModuleDict of projectors: 'image.linear_1.weight', ...
    (transformers' LlavaMultiModalProjector naming)."""
    reference = transformers_llava_projector(16, 24)
    state = {f"image.{key}": value for key, value in reference.state_dict().items()}
    assert sorted(state) == [f"image.linear_{i}.{p}" for i in (1, 2) for p in ("bias", "weight")]
    projector = turbo_llava_projector(16, 24)
    load_projector_weights({"image": projector}, save(state, tmp_path / name))
    features = torch.randn(2, 4, 16)
    with torch.no_grad():
        torch.testing.assert_close(projector(features), reference(features), atol=0, rtol=0)


def test_turbos_earlier_naming_still_loads(tmp_path: Path) -> None:
    reference = transformers_llava_projector(16, 24)
    old = {"linear_1": "net.0", "linear_2": "net.2"}
    state = {}
    for key, value in reference.state_dict().items():
        layer, parameter = key.split(".")
        state[f"image.{old[layer]}.{parameter}"] = value
    projector = turbo_llava_projector(16, 24)
    load_projector_weights({"image": projector}, save(state, tmp_path / "projectors.safetensors"), "image")
    assert all(torch.equal(projector.state_dict()[k], v) for k, v in reference.state_dict().items())


def test_turbo_writes_the_naming_transformers_llava_reads() -> None:
    from turbo.modeling.multimodal.parts import projector_state

    projector = turbo_llava_projector(16, 24)
    written = projector_state({"image": projector})
    reference = transformers_llava_projector(16, 24)
    reference.load_state_dict({k.removeprefix("image."): v for k, v in written.items()})  # strict
    features = torch.randn(2, 4, 16)
    with torch.no_grad():
        torch.testing.assert_close(reference(features), projector(features), atol=0, rtol=0)


def test_the_originals_c_abs_weights_are_refused_with_a_reason(tmp_path: Path) -> None:
    from turbo.modeling.multimodal.projectors import build_projector
    from turbo.settings.multimodal import CAbstractorSettings

    projector = build_projector(CAbstractorSettings(projector_type="c_abs"), 8, 12, 16, 4)
    state = {
        "image.pos_emb": torch.zeros(1, 16, 8),
        "image.net.0.b1.conv1.conv.weight": torch.zeros(4, 8, 1, 1),
    }
    path = save(state, tmp_path / "modality_adapters.pt")
    with pytest.raises(ModelError, match="the original project's c_abs weights"):
        load_projector_weights({"image": projector}, path)
