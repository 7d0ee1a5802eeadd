"""evaluate: the cherry-pick metrics computed on an inference output, without training."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.metrics import MetricSettings, model_metric_names
from turbo.settings.paths import InputPath


class EvaluateSettings(StrictModel):
    outputs_path: InputPath = Field(
        description="An inference output (the JSONL that inference_chat, inference_multimodal or "
        "inference_rag write), or a folder: every .jsonl under it is scored."
    )
    metric_settings: list[MetricSettings] = Field(min_length=1, description="The metrics to compute.")
    save_path: Path = Field(
        description="Folder for metrics.json (the means per file and dataset) and, per scored file, the "
        "rows with each sample's values."
    )

    @field_validator("metric_settings")
    @classmethod
    def _answers_only(cls, value: list) -> list:
        names = model_metric_names(value)
        if names:
            raise ValueError(
                f"{', '.join(names)} read the trained model's log-probs; they run during training "
                "(cherry_pick_settings), not on an inference output"
            )
        return value
