"""What happened to every record: used, truncated or dropped (and why), token lengths."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

SHOWN_IDS = 3


@dataclass
class SourceReport:
    name: str
    path: str
    read: int
    sampled: int
    used: int = 0
    truncated: int = 0
    lengths: list[int] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def keep(self, length: int, truncated: bool) -> None:
        self.used += 1
        self.truncated += truncated
        self.lengths.append(length)

    def drop(self, reason: str, record_id: str) -> None:
        self.dropped[reason].append(record_id)

    def summary(self) -> str:
        text = f"{self.name}: {self.used} of {self.sampled} sampled records used"
        if self.truncated:
            text += f", {self.truncated} truncated"
        for reason, ids in self.dropped.items():
            shown = ", ".join(ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")
            text += f"; {len(ids)} dropped: {reason} (ids {shown})"
        return text

    def percentiles(self, points: tuple[int, ...] = (50, 90, 99, 100)) -> dict[int, int]:
        ordered = sorted(self.lengths)
        if not ordered:
            return {}
        return {p: ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] for p in points}

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "read": self.read,
            "sampled": self.sampled,
            "used": self.used,
            "truncated": self.truncated,
            "dropped": {reason: len(ids) for reason, ids in self.dropped.items()},
            "token_length_percentiles": self.percentiles(),
        }


@dataclass
class DatasetReport:
    sources: list[SourceReport] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(source.summary() for source in self.sources)

    @property
    def dropped(self) -> int:
        return sum(len(ids) for source in self.sources for ids in source.dropped.values())
