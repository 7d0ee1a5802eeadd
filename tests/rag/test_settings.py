"""RAG settings: the original layout validates, and the rules that need no files."""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from turbo.settings.pipelines.build_index import BuildIndexSettings
from turbo.settings.pipelines.inference.rag import RagInferenceExperimentSettings
from turbo.settings.pipelines.train.rag import RagExperimentSettings

from ..helpers import CONFIGS

TRAIN = json.loads((CONFIGS / "train" / "rag" / "lora.json").read_text())
INFERENCE = json.loads((CONFIGS / "inference" / "rag" / "base.json").read_text())


def test_retrieval_defaults_are_the_original_ones() -> None:
    data = copy.deepcopy(TRAIN)
    del data["model_settings"]["retrieval_settings"]
    retrieval = RagExperimentSettings.model_validate(data).model_settings.retrieval_settings
    assert (retrieval.n_docs, retrieval.title_sep, retrieval.doc_sep, retrieval.prefix) == (
        1,
        " / ",
        " // ",
        "",
    )
    assert (retrieval.max_doc_length, retrieval.retrieval_vector_size, retrieval.retrieval_batch_size) == (
        300, None, 8,
    )  # fmt: skip  # None: the question encoder's width
    assert (retrieval.query_encoder_max_length, retrieval.encoder_learning_rate) == (512, None)
    build = BuildIndexSettings.model_validate(
        {
            "passages_source": "p.jsonl",
            "encoder_settings": {"model_path": "e"},
            "index_settings": {"index_path": "i.faiss", "passages_path": "p"},
        }
    )
    assert (build.index_factory, build.pooling, build.normalize, build.prefix) == ("Flat", "mean", False, "")


def invalid(model: type, data: dict) -> str:
    with pytest.raises(ValidationError) as error:
        model.model_validate(data)
    return str(error.value)


def test_rules() -> None:
    data = copy.deepcopy(TRAIN)
    data["model_settings"]["retrieval_settings"]["n_dcos"] = 2
    assert "did you mean 'n_docs'" in invalid(RagExperimentSettings, data)
    data = copy.deepcopy(TRAIN)
    data["model_settings"]["generator_settings"]["model_type"] = "seq_cls"
    assert "generator_settings.model_type must be 'causal'" in invalid(RagExperimentSettings, data)
    data = copy.deepcopy(TRAIN)
    data["train_dataset_settings"]["pack_to_max_length"] = True
    assert "train_rag does not pack" in invalid(RagExperimentSettings, data)
    data = copy.deepcopy(TRAIN)
    data["model_settings"]["question_encoder_settings"]["model_type"] = "causal"
    assert "model_type" in invalid(RagExperimentSettings, data)
    data = copy.deepcopy(INFERENCE)
    data["inference_settings"][0]["use_vllm"] = True
    data["inference_settings"][0]["model_settings"]["generator_settings"]["peft_settings"] = {"name": "LORA"}
    assert "use_vllm: true cannot apply it" in invalid(RagInferenceExperimentSettings, data)


def test_the_generator_is_what_code_reading_a_model_block_sees() -> None:
    """The train base checks (bnb needs an adapter) and `turbo validate` read model_settings.model_path,
    peft_settings, ...: for RAG they are the generator's."""
    settings = RagExperimentSettings.model_validate(TRAIN)
    assert settings.model_settings.model_path == settings.model_settings.generator_settings.model_path
    assert settings.model_settings.peft_settings.name == "LORA" and settings.model_settings.trains_adapter
    data = copy.deepcopy(TRAIN)
    generator = data["model_settings"]["generator_settings"]
    generator["bnb_settings"] = {"load_in_4bit": True}
    del generator["peft_settings"]
    problem = invalid(RagExperimentSettings, data)
    assert "model_settings.bnb_settings\n  loads frozen quantised weights" in problem
