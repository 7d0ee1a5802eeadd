"""Every registry's settings union (the discriminated union a file picks a type from) and its
implementation dict name the same types, and every discriminated union in settings is one of them.

Adding an encoder, projector, reader, metric, reward, loss, dataset type, peft type or logger is one
settings class (in the union), one implementation and one dict entry; these tests fail when one of
the three is missing.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from typing import Any, get_args

import pytest
from pydantic.fields import FieldInfo

import turbo.settings
from turbo.settings.commands import load_object

# plug-in kind -> (the settings union, the implementation dict), as "module:name"
REGISTRIES: dict[str, tuple[str, str]] = {
    "dpo_losses": ("turbo.settings.dpo_losses:DpoLossSettings", "turbo.trainers.losses.dpo:LOSSES"),
    "metrics": ("turbo.settings.metrics:MetricSettings", "turbo.metrics.registry:METRICS"),
    "rewards": ("turbo.settings.rewards:RewardSettings", "turbo.trainers.rewards:REWARDS"),
    "encoders": ("turbo.settings.multimodal:EncoderSettings", "turbo.modeling.multimodal.encoders:ENCODERS"),
    "readers": ("turbo.settings.multimodal:ReaderSettings", "turbo.modeling.multimodal.readers:READERS"),
    "projectors": (
        "turbo.settings.multimodal:ProjectorSettings",
        "turbo.modeling.multimodal.projectors:PROJECTORS",
    ),
    "dataset_types": (
        "turbo.settings.datasets.types:DatasetSettings",
        "turbo.pipelines.tools.validate:DATA_BUILDERS",
    ),
    "peft_types": ("turbo.settings.model:PeftSettings", "turbo.modeling.peft:PEFT_CONFIGS"),
    "loggers": ("turbo.settings.logging:LoggingSettings", "turbo.trainers.loggers:LOGGERS"),
    "tools": ("turbo.settings.tools:ToolSettings", "turbo.generators.tools:TOOLS"),
}


def discriminator(union: Any) -> str | None:
    """The field a discriminated union (Annotated[A | B, Field(discriminator=...)]) switches on."""
    if typing.get_origin(union) is not typing.Annotated:
        return None
    return next(
        (
            meta.discriminator
            for meta in union.__metadata__
            if isinstance(meta, FieldInfo) and meta.discriminator
        ),
        None,
    )


def members(union: Any) -> dict[str, type]:
    """tag -> settings class of a discriminated union."""
    field = discriminator(union)
    assert field is not None, f"{union} is not a discriminated union"
    classes = get_args(get_args(union)[0])
    tags: dict[str, type] = {}
    for klass in classes:
        for tag in get_args(klass.model_fields[field].annotation):
            assert tag not in tags, f"{tag} is the tag of {tags[tag].__name__} and {klass.__name__}"
            tags[tag] = klass
    return tags


def settings_unions() -> dict[int, tuple[str, Any]]:
    """Every discriminated union defined in turbo.settings: id -> ("module:name", union)."""
    found: dict[int, tuple[str, Any]] = {}
    for info in pkgutil.walk_packages(turbo.settings.__path__, "turbo.settings."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if discriminator(value) is not None:
                found.setdefault(id(value), (f"{info.name}:{name}", value))
    return found


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_the_settings_union_and_the_implementations_name_the_same_types(kind: str) -> None:
    union, implementations = (load_object(reference) for reference in REGISTRIES[kind])
    assert sorted(members(union)) == sorted(implementations)


def test_every_discriminated_union_in_settings_is_a_registry_or_a_subset_of_one() -> None:
    """A new plug-in kind (a new union on a type field) needs its registry here and in
    docs/architecture.md; a union that takes some of the dataset types is a subset, not a registry."""
    registered = {id(load_object(union)) for union, _ in REGISTRIES.values()}
    dataset_classes = set(members(load_object(REGISTRIES["dataset_types"][0])).values())
    for where, union in settings_unions().values():
        if id(union) in registered:
            continue
        assert set(members(union).values()) <= dataset_classes, (
            f"{where} is a discriminated union that is not a registry of tests/unit/test_registries.py"
        )


def test_properties_live_on_the_settings_classes() -> None:
    """What settings and implementations both need to know about a type is a class attribute."""
    metrics = members(load_object(REGISTRIES["metrics"][0]))
    assert {tag for tag, klass in metrics.items() if klass.reads_model} == {
        "kl",
        "perplexity",
        "retrieval_utility",
    }
    assert {tag for tag, klass in metrics.items() if klass.per_sample} == {
        "kl", "perplexity", "retrieval_utility", "reward",
    }  # fmt: skip
    assert [tag for tag, klass in metrics.items() if klass.reads_reference] == ["kl"]
    encoders = members(load_object(REGISTRIES["encoders"][0]))
    readers = members(load_object(REGISTRIES["readers"][0]))
    assert {tag: klass.modality for tag, klass in encoders.items()} == {
        "clip": "image", "siglip": "image", "whisper": "audio",
    }  # fmt: skip
    assert {tag: readers[tag].modality for tag in encoders} == {
        tag: k.modality for tag, k in encoders.items()
    }
    assert readers["pickle"].modality is None  # pre-encoded features of any modality
    projectors = members(load_object(REGISTRIES["projectors"][0]))
    assert [tag for tag, klass in projectors.items() if klass.pools_to_square] == ["c_abs"]
    loggers = members(load_object(REGISTRIES["loggers"][0]))
    assert {tag: klass.package for tag, klass in loggers.items()} == {
        "none": None, "tensorboard": "tensorboard", "wandb": "wandb", "clearml": "clearml",
    }  # fmt: skip
    peft = members(load_object(REGISTRIES["peft_types"][0]))
    assert [tag for tag, klass in peft.items() if not klass.virtual_tokens] == ["LORA"]


def test_each_subset_dict_keyed_by_dataset_type_covers_its_union() -> None:
    """Dicts keyed by some of the dataset types (inference_rm's row builders) take every type the
    command's settings accept, so a type added to the union cannot reach a KeyError."""
    union = load_object("turbo.settings.pipelines.inference.rm:RmDatasetSettings")
    builders = load_object("turbo.pipelines.inference.rm_rows:ROW_BUILDERS")
    assert sorted(members(union)) == sorted(builders)
