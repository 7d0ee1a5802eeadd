"""Every dataset type, keyed by the `dataset_type` a file writes: the settings side of the dataset-type
registry. Each command takes its own subset; this union lists them all, so a test can check it against
the implementations (`turbo.pipelines.tools.validate.DATA_BUILDERS`, which reads and tokenises each)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from turbo.settings.datasets.chat import ChatDatasetSettings
from turbo.settings.datasets.classification import ClassificationDatasetSettings
from turbo.settings.datasets.ddpo import DdpoDatasetSettings
from turbo.settings.datasets.kto import KtoDatasetSettings
from turbo.settings.datasets.multimodal import MultimodalDatasetSettings
from turbo.settings.datasets.multimodal_pair_preferences import MultimodalPairPreferencesDatasetSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.datasets.prompt import PromptDatasetSettings
from turbo.settings.datasets.rm import RmDatasetSettings
from turbo.settings.datasets.sampling import SamplingDatasetSettings

DatasetSettings = Annotated[
    ChatDatasetSettings
    | ClassificationDatasetSettings
    | DdpoDatasetSettings
    | KtoDatasetSettings
    | MultimodalDatasetSettings
    | MultimodalPairPreferencesDatasetSettings
    | PairPreferencesDatasetSettings
    | PromptDatasetSettings
    | RmDatasetSettings
    | SamplingDatasetSettings,
    Field(discriminator="dataset_type"),
]
