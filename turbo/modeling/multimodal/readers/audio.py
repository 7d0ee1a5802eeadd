"""Audio decoded without torchaudio (WAV with the standard library; other formats with soundfile if
installed), resampled linearly when needed, then turned into Whisper log-mel features."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch

from turbo.media import MediaItem
from turbo.errors import DataError, ModelError


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sampling rate."""
    if path.suffix.lower() != ".wav":
        try:
            import soundfile
        except ImportError:
            raise ValueError(
                "only .wav audio can be read (pip install soundfile for other formats)"
            ) from None
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return samples.mean(axis=1), int(rate)
    with wave.open(str(path), "rb") as handle:
        width, channels, rate = handle.getsampwidth(), handle.getnchannels(), handle.getframerate()
        frames = handle.readframes(handle.getnframes())
    if width == 1:
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        samples = np.frombuffer(frames, dtype=dtype).astype(np.float32) / float(np.iinfo(dtype).max)
    else:
        raise ValueError(f"{8 * width}-bit WAV is not supported (use 8, 16 or 32 bit)")
    return samples.reshape(-1, channels).mean(axis=1), rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or len(samples) == 0:
        return samples
    count = max(1, round(len(samples) * target / rate))
    return np.interp(np.linspace(0, len(samples) - 1, count), np.arange(len(samples)), samples).astype(
        np.float32
    )


class WhisperReader:
    """Reads one audio file into log-mel features (mel bins, frames), padded or cut to one chunk."""

    def __init__(self, path: str | Path) -> None:
        from transformers import WhisperFeatureExtractor

        try:
            self.extractor = WhisperFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load a Whisper feature extractor from {path}: {exc}") from exc

    def missing(self, item: MediaItem) -> str | None:
        return None if item.path.is_file() else f"not found at {item.path}"

    def read(self, item: MediaItem) -> torch.Tensor:
        try:
            samples, rate = decode_audio(item.path)
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            raise DataError(f"{item.where}: cannot read audio {item.key!r}: {exc}") from None
        rate_wanted = self.extractor.sampling_rate
        features = self.extractor(
            resample(samples, rate, rate_wanted), sampling_rate=rate_wanted, return_tensors="pt"
        )["input_features"]
        return features[0]
