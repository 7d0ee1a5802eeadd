"""Cross-field rules report every problem at once, each at the field it concerns (never "(top level)")."""

import copy
import json

import pytest

from turbo.errors import SettingsError
from turbo.settings.loading import validate_settings
from turbo.settings.pipelines.inference.multimodal import MultimodalInferenceExperimentSettings
from turbo.settings.pipelines.merge import MergeAdaptersSettings
from turbo.settings.pipelines.preprocessing import PreprocessMultimodalSettings
from turbo.settings.pipelines.sampling import RmSamplingSettings
from turbo.settings.pipelines.train.multimodal import MultimodalExperimentSettings

from ...helpers import CONFIGS


def load(*parts: str) -> dict:
    return json.loads(CONFIGS.joinpath(*parts).read_text())


def problems(data: dict, model) -> list[str]:
    with pytest.raises(SettingsError) as info:
        validate_settings(data, model, "x.json")
    head, *lines = str(info.value).splitlines()
    assert head == f"x.json: {len(lines)} problem{'s' if len(lines) > 1 else ''} in the settings:"
    assert not any("(top level)" in line for line in lines)
    return [line.strip() for line in lines]


def test_multimodal_training_rules_all_at_once() -> None:
    data = load("train", "multimodal", "llava_lora.json")
    data["val_dataset_settings"] = copy.deepcopy(data["train_dataset_settings"])
    data["val_dataset_settings"]["n_modality_embeddings"] = 9
    data["modality_projector_mapping"] = {"image": "c_abs"}
    data["modality_projector_initialization_mapping"] = {"audio": "weights.safetensors"}
    data["trainer_settings"]["eval_strategy"] = "no"
    found = problems(data, MultimodalExperimentSettings)
    wanted = [
        "val_dataset_settings.n_modality_embeddings: is 9 but train_dataset_settings.n_modality_embeddings",
        "modality_projector_initialization_mapping.audio: no projector for this modality",
    ]
    for line in wanted:
        assert any(problem.startswith(line) for problem in found), found
    assert len(found) == 2


def test_multimodal_inference_reports_each_entry() -> None:
    data = load("inference", "multimodal", "llava.json")
    data["inference_settings"].append(copy.deepcopy(data["inference_settings"][0]))
    for entry in data["inference_settings"]:
        entry["n_modality_embeddings"] = 4
    data["modality_encoder_settings_mapping"]["image"]["freeze"] = False
    found = problems(data, MultimodalInferenceExperimentSettings)
    assert found[0].startswith("modality_encoder_settings_mapping.image: inference trains nothing")
    assert found[1].startswith("inference_settings.0.n_modality_embeddings: is 4 but dataset_settings")
    assert found[2].startswith("inference_settings.1.n_modality_embeddings: is 4 but dataset_settings")


def test_tool_settings_locate_their_rules() -> None:
    data = load("preprocessing", "clip.json")
    data["reader_settings"] = {"reader_type": "pickle", "reader_path": "x.safetensors"}
    data["encoder_settings"]["is_pickle"] = True
    assert [p.split(":")[0] for p in problems(data, PreprocessMultimodalSettings)] == [
        "reader_settings.reader_type",
        "encoder_settings.is_pickle",
    ]
    merge = load("merge", "lora.json")
    merge["model_settings"]["adapter_path"] = "another/adapter"
    assert problems(merge, MergeAdaptersSettings) == [
        "adapter_path: set the adapter to merge once: here or in model_settings.adapter_path"
    ]
    sampling = load("sampling", "rm.json")
    sampling["rm_settings"]["model_settings"].update(model_type="causal", model_kwargs={"num_labels": 2})
    assert problems(sampling, RmSamplingSettings) == [
        "rm_settings.model_settings.model_type: must be 'seq_cls' for a reward model",
        "rm_settings.model_settings.model_kwargs.num_labels: a reward model has one output; this is 2",
    ]


def test_paths_are_the_files_own_keys_without_union_markers() -> None:
    from turbo.settings.pipelines.train.sft import SftExperimentSettings

    data = load("train", "sft", "lora.json")
    data["model_settings"]["peft_settings"].update(r="eight", target_modules=["q_proj", 5])
    data["trainer_settings"]["evaluation_strategy"] = "often"  # the old name of eval_strategy
    found = problems(data, SftExperimentSettings)
    peft = "model_settings.peft_settings"
    assert any(line.startswith(f"{peft}.r: Input should be a valid integer") for line in found)
    assert f"{peft}.target_modules.1: Input should be a valid string" in found
    assert any(line.startswith("trainer_settings.eval_strategy: Input should be") for line in found)
