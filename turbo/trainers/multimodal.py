"""The Trainer for MultimodalModel: one learning rate per part, and checkpoints that hold only what trains.

The three steps are plain functions of a trainer, so the DPO and GRPO trainers call them on a multimodal
policy too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from transformers import Trainer

from turbo.modeling.multimodal.parts import ENCODERS_FOLDER, PROJECTORS_FILE, projector_state


def part_optimizer(trainer: Any, model: Any, part_learning_rates: dict[str, float]) -> Any:
    """The trainer's optimizer with one parameter group per part (and weight decay or not), each at the
    learning rate of the first prefix of `part_learning_rates` its parameter names start with."""
    optimizer_cls, optimizer_kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    decay = set(trainer.get_decay_parameter_names(model))
    groups: dict[tuple[str, bool], list] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        part = next(prefix for prefix in part_learning_rates if name.startswith(prefix))
        groups.setdefault((part, name in decay), []).append(parameter)
    return optimizer_cls(
        [
            {
                "params": params,
                "lr": part_learning_rates[part],
                "weight_decay": trainer.args.weight_decay if decays else 0.0,
            }
            for (part, decays), params in groups.items()
        ],
        **optimizer_kwargs,
    )


def save_parts(trainer: Any, output_dir: str | None) -> None:
    """The LM (adapter or full model), projectors.safetensors, every trained encoder under
    encoders/<modality>, and the tokenizer."""
    folder = Path(output_dir or trainer.args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.language_model.save_pretrained(str(folder))
    tmp = folder / f".{PROJECTORS_FILE}.tmp"
    save_file(projector_state(model.projectors), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / PROJECTORS_FILE)
    for modality, encoder in model.encoders.items():
        if any(p.requires_grad for p in encoder.parameters()):
            encoder.model.save_pretrained(str(folder / ENCODERS_FOLDER / modality))
    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(str(folder))


def load_parts(model: Any, folder: Path) -> None:
    """A checkpoint written by `save_parts` back into `model` (the unwrapped MultimodalModel)."""
    from peft import set_peft_model_state_dict

    def load_part(module: Any, where: Path) -> None:
        if (where / "adapter_model.safetensors").is_file():
            set_peft_model_state_dict(module, load_file(str(where / "adapter_model.safetensors")))
        else:
            module.load_state_dict(load_file(str(where / "model.safetensors")), strict=False)

    load_part(model.language_model, folder)
    projectors = load_file(str(folder / PROJECTORS_FILE))
    for modality, projector in model.projectors.items():
        prefix = f"{modality}."
        projector.load_state_dict(
            {k[len(prefix) :]: v for k, v in projectors.items() if k.startswith(prefix)}
        )
    for modality, encoder in model.encoders.items():
        if (folder / ENCODERS_FOLDER / modality).is_dir():
            load_part(encoder.model, folder / ENCODERS_FOLDER / modality)


class MultimodalTrainer(Trainer):
    """The Trainer of a MultimodalModel: `part_learning_rates` maps a parameter-name prefix ('projectors.',
    'encoders.', 'language_model.') to its learning rate (`part_optimizer`); a checkpoint holds the LM
    (adapter or full model), projectors.safetensors and every trained encoder under encoders/<modality>
    (`save_parts`, `load_parts`). The multimodal DPO trainer calls the same functions."""

    def __init__(self, *args: Any, part_learning_rates: dict[str, float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.part_learning_rates = part_learning_rates

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None:
            model = self.model if model is None else model
            self.optimizer = part_optimizer(self, model, self.part_learning_rates)
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        save_parts(self, output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        load_parts(
            self.accelerator.unwrap_model(self.model if model is None else model),
            Path(resume_from_checkpoint),
        )
