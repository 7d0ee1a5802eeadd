"""Trainer classes stay shallow (DESIGN.md: no mixin stacks, no hierarchy deeper than two): every
transformers.Trainer subclass in turbo.trainers has at most two classes of turbo's own on its way down from
transformers.Trainer, and every one of them has a single base (shared hooks are plain functions or
composed objects, never a mixin)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from transformers import Trainer

import turbo.trainers


def turbo_trainers() -> dict[str, type]:
    found: dict[str, type] = {}
    for module in pkgutil.walk_packages(turbo.trainers.__path__, "turbo.trainers."):
        for _, value in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(value, Trainer) and value.__module__.startswith("turbo."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def own(cls: type) -> list[type]:
    return [base for base in cls.__mro__ if base.__module__.startswith("turbo.")]


def test_the_walk_finds_every_trainer() -> None:
    names = {cls.__name__ for cls in turbo_trainers().values()}
    expected = {"SftTrainer", "DpoTrainer", "KtoTrainer", "GrpoTrainer", "PpoTrainer", "MultimodalTrainer"}
    assert expected <= names


def test_at_most_two_own_levels_under_transformers_trainer() -> None:
    deep = {
        name: " -> ".join(base.__name__ for base in own(cls))
        for name, cls in turbo_trainers().items()
        if len(own(cls)) > 2
    }
    assert not deep, deep


def test_no_mixins() -> None:
    mixed = {
        f"{cls.__module__}.{cls.__qualname__}": [base.__name__ for base in cls.__bases__]
        for trainer in turbo_trainers().values()
        for cls in own(trainer)
        if len(cls.__bases__) != 1 or not issubclass(cls.__bases__[0], Trainer)
    }
    assert not mixed, mixed
