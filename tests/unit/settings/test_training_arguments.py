"""One rule strips a method's own trainer fields before transformers.TrainingArguments: every train
command's trainer settings give only keys TrainingArguments takes."""

from __future__ import annotations

import dataclasses

import pytest

from turbo.settings.commands import COMMANDS, load_object
from turbo.settings.pipelines.train.base import BaseTrainExperimentSettings
from turbo.settings.trainer import TrainerSettings

TRAIN_SETTINGS = sorted(
    {
        command.settings
        for command in COMMANDS.values()
        if issubclass(load_object(command.settings), BaseTrainExperimentSettings)
    }
)


@pytest.mark.parametrize("reference", TRAIN_SETTINGS)
def test_training_arguments_are_the_ones_transformers_takes(reference: str) -> None:
    from transformers import TrainingArguments

    trainer_class = load_object(reference).model_fields["trainer_settings"].annotation
    assert issubclass(trainer_class, TrainerSettings)
    arguments = trainer_class().training_arguments()
    accepted = {field.name for field in dataclasses.fields(TrainingArguments)}
    assert set(arguments) <= accepted, sorted(set(arguments) - accepted)
    own = trainer_class.model_fields.keys() - TrainerSettings.model_fields.keys()
    assert not own & set(arguments)  # loss_settings, beta, rollout_batch_size, ... stay out
