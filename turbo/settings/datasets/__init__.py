"""Dataset settings, one module per dataset type."""

from turbo.settings.datasets.base import DatasetSourceSettings
from turbo.settings.datasets.chat import ChatDatasetSettings, ChatPromptTemplate

__all__ = ["ChatDatasetSettings", "ChatPromptTemplate", "DatasetSourceSettings"]
