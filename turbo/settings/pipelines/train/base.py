"""What every training experiment file has."""

from __future__ import annotations

from pydantic import Field, model_validator

from turbo.settings.base import Seed, StrictModel
from turbo.settings.logging import LoggingSettings
from turbo.settings.model import ModelSettings
from turbo.settings.outputs import OutputFolder
from turbo.settings.problems import Problem, raise_problems
from turbo.settings.tokenizer import SpecialTokensSettings, TokenizerSettings
from turbo.settings.trainer import TrainerSettings


class BaseTrainExperimentSettings(StrictModel):
    log_path: OutputFolder = Field(
        description="The experiment folder: settings, checkpoints, outputs, metrics. A new or empty folder, "
        "or an earlier run's folder to resume (trainer_settings.resume_from_checkpoint) or restart "
        "(overwrite_log_path)."
    )
    overwrite_log_path: bool = Field(
        False,
        description="Delete the earlier run in log_path (metrics, checkpoints, final model) and start again. "
        "Without it, a log_path holding an earlier run is refused unless the run resumes.",
    )
    seed: Seed = Field(42, description="Seeds Python, NumPy and torch (sampling, shuffling, initialisation).")
    model_settings: ModelSettings
    tokenizer_settings: TokenizerSettings = TokenizerSettings()
    special_tokens_settings: SpecialTokensSettings = SpecialTokensSettings()
    trainer_settings: TrainerSettings = TrainerSettings()
    logging_settings: LoggingSettings | None = Field(
        None,
        description="Where the metrics also go (by logging_type: none, tensorboard, wandb, clearml); "
        "metrics.jsonl in log_path is always written. None: no logger.",
    )
    data_ratio: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Train on this share of the training samples (drawn with the seed); None: all.",
    )
    data_train_split_ratio: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Hold out an evaluation split from the training sources: this share of the training "
        "samples trains, the rest is evaluated (drawn with the seed, the same split every run). "
        "Instead of val_dataset_settings.",
    )
    data_debug_path: OutputFolder | None = Field(
        None,
        description="Before training, write the first 10 training samples as the model sees them to "
        "<data_debug_path>/train_samples.jsonl: decoded text with the spans that carry a loss in [[...]], "
        "token ids and labels, and for multimodal samples each media item with the positions of its "
        "embeddings.",
    )

    @model_validator(mode="after")
    def _cross_field_rules(self) -> BaseTrainExperimentSettings:
        raise_problems(self, self.cross_field_problems())
        return self

    def cross_field_problems(self) -> list[Problem]:
        """Every cross-field rule that fails, each at its field; a subclass adds its own rules to these."""
        problems = []
        trainer_seed = self.trainer_settings.seed
        if trainer_seed is not None and "seed" in self.model_fields_set and trainer_seed != self.seed:
            problems.append(
                ("trainer_settings.seed", f"{trainer_seed} and seed ({self.seed}) disagree; set one of them")
            )
        if self.model_settings.bnb_settings is not None and not self.trains_adapter:
            problems.append(
                (
                    "model_settings.bnb_settings",
                    "loads frozen quantised weights; train an adapter on top "
                    "(model_settings.peft_settings, or adapter_path with is_trainable: true)",
                )
            )
        if self.overwrite_log_path and self.trainer_settings.resume_from_checkpoint not in (None, False):
            problems.append(
                (
                    "overwrite_log_path",
                    "deletes the earlier run that trainer_settings.resume_from_checkpoint resumes; "
                    "set one of them",
                )
            )
        val_dataset = getattr(self, "val_dataset_settings", None)
        if self.data_train_split_ratio is not None and val_dataset is not None:
            problems.append(
                (
                    "data_train_split_ratio",
                    "holds out an evaluation split, but val_dataset_settings is set too; set one of them",
                )
            )
        problems += evaluation_problems(
            self.trainer_settings,
            val_dataset if self.data_train_split_ratio is None else self.data_train_split_ratio,
            getattr(self, "cherry_pick_settings", None),
        )
        return problems

    @property
    def trains_adapter(self) -> bool:
        """The run trains an adapter on a frozen base (so the base with the adapter disabled can be the
        reference); model_settings says so."""
        return self.model_settings.trains_adapter

    @property
    def training_seed(self) -> int:
        return self.trainer_settings.seed if self.trainer_settings.seed is not None else self.seed


def evaluation_problems(
    trainer: TrainerSettings, val_dataset: object, cherry_pick: object = None
) -> list[Problem]:
    """Evaluation needs validation data; cherry-picks run at evaluation, so they need one too."""
    problems = []
    if trainer.eval_strategy != "no" and val_dataset is None:
        problems.append(
            (
                "trainer_settings.eval_strategy",
                f"is '{trainer.eval_strategy}' but there is no val_dataset_settings; "
                "add one or set eval_strategy: 'no'",
            )
        )
    if cherry_pick is not None and trainer.eval_strategy == "no":
        problems.append(
            ("cherry_pick_settings", "runs at each evaluation; set trainer_settings.eval_strategy")
        )
    return problems
