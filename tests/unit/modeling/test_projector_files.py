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
