from __future__ import annotations

from typing import Literal

from turbo.settings.datasets.multimodal import MediaSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings


class MultimodalPairPreferencesDatasetSettings(PairPreferencesDatasetSettings, MediaSettings):
    """Pair preferences whose prompt holds images (or audio): records
    `{"prompt", "chosen", "rejected", "image" | "images"}` (each image goes where its `<image>` marker is
    in the prompt, the rest before it) or `{"context": [messages, image messages as in the multimodal
    dataset], "answer_w", "answer_l"}`. The chosen and rejected rows share the prompt tokens and its
    media exactly; the answers are text. Truncation drops the earliest context messages (with their
    media) and never cuts through a media span."""

    dataset_type: Literal["multimodal_pair_preferences"]  # type: ignore[assignment]
