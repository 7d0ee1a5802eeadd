"""Layouts of the original documentation that turbo reads as written (or refuses with what to write)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from turbo.settings.datasets.chat import ChatDatasetSettings
from turbo.settings.datasets.pair_preferences import PairPreferencesDatasetSettings
from turbo.settings.generation import GenerationSettings, VLLMSamplingSettings
from turbo.settings.model import ModelSettings, ModelTransformersSettings
from turbo.settings.pipelines.inference.chat import ChatInferenceModelSettings
from turbo.settings.pipelines.train.dpo import DpoExperimentSettings
from turbo.settings.pipelines.train.kto import KtoExperimentSettings

from ...helpers import CONFIGS, DATASETS

MODEL = "tests/fixtures/models/llama_tiny"
ADAPTER = "tests/fixtures/models/llama_tiny_adapter"
PAIRS = str(DATASETS / "pair_preferences" / "train_preferences.jsonl")
SOURCE = {"name": "pairs", "records_path": PAIRS, "sample_rate": 1}


def dpo(model: dict, trainer: dict) -> DpoExperimentSettings:
    data = json.loads((CONFIGS / "train" / "dpo" / "lora.json").read_text())
    data["model_settings"] = {"model_path": MODEL, "model_type": "causal", **model}
    data["trainer_settings"] = {**data["trainer_settings"], **trainer}
    return DpoExperimentSettings.model_validate(data)


def test_peft_settings_without_name_are_lora() -> None:
    settings = ModelSettings(model_path=MODEL, peft_settings={"r": 8, "target_modules": ["q_proj", "v_proj"]})
    assert settings.peft_settings is not None and settings.peft_settings.name == "LORA"
    assert settings.peft_settings.r == 8


def test_num_labels_beside_model_path_is_a_model_kwarg() -> None:
    settings = ModelSettings(model_path=MODEL, model_type="seq_cls", num_labels=3)
    assert settings.model_kwargs == {"num_labels": 3}


def test_torch_dtype_is_the_old_name_of_dtype() -> None:
    assert ModelTransformersSettings(torch_dtype="float32").dtype == "float32"


def test_add_labels_on_pair_preferences_is_read() -> None:
    for value in (True, False):
        settings = PairPreferencesDatasetSettings(
            dataset_type="pair_preferences", sources=[SOURCE], add_labels=value
        )
        assert settings.add_labels is value


def test_truncate_top_is_keep_end() -> None:
    settings = ChatDatasetSettings(dataset_type="chat", sources=[SOURCE], truncate_top=True)
    assert settings.keep_end is True
    with pytest.raises(ValidationError, match="old name of 'keep_end'"):
        ChatDatasetSettings(dataset_type="chat", sources=[SOURCE], truncate_top=True, keep_end=True)


def test_inference_entry_takes_tensor_parallel_size_and_micro_batch() -> None:
    entry = ChatInferenceModelSettings(
        model_settings={"model_path": MODEL},
        use_vllm=True,
        tensor_parallel_size=2,
        batch=8,
        micro_batch=2,
    )
    assert entry.vllm_engine_settings is not None and entry.vllm_engine_settings.tensor_parallel_size == 2
    assert entry.generate_batch == 2
    with pytest.raises(ValidationError, match="set it only in vllm_engine_settings"):
        ChatInferenceModelSettings(
            model_settings={"model_path": MODEL},
            use_vllm=True,
            tensor_parallel_size=2,
            vllm_engine_settings={"tensor_parallel_size": 4},
        )


def test_vllm_top_k_minus_one_is_off_and_stop_strings_is_stop() -> None:
    settings = VLLMSamplingSettings(top_k=-1, stop_strings=["</RS>"])
    assert settings.top_k is None and settings.stop == ["</RS>"]
    with pytest.raises(ValidationError):
        VLLMSamplingSettings(top_k=-2)


def test_generation_eos_token_is_a_stop_string() -> None:
    settings = GenerationSettings(
        custom_settings={"generation_eos_token": "</RS>", "skip_special_tokens": False}
    )
    assert settings.transformers_settings.stop_strings == "</RS>"
    assert settings.custom_settings.skip_special_tokens is False


def test_dpo_trainer_fields_of_the_original() -> None:
    settings = dpo({"peft_settings": {"r": 4}}, {"use_sft_model": True, "average_log_prob": True})
    trainer = settings.trainer_settings
    assert trainer.use_sft_model is True and trainer.average_log_prob is True
    arguments = trainer.training_arguments()
    assert "use_sft_model" not in arguments and "average_log_prob" not in arguments


def test_average_log_prob_scores_answers_by_their_mean() -> None:
    from turbo.trainers.dpo import DpoTrainer
    from turbo.trainers.logps import AnswerLogps
    from turbo.trainers.losses.dpo import LOSSES, sigmoid_loss

    policy = AnswerLogps(torch.tensor([-6.0, -8.0]), torch.tensor([3, 2]), torch.zeros(2))
    reference = torch.tensor([-3.0, -4.0])
    for average, divisor in ((True, torch.tensor([3.0, 2.0])), (False, torch.ones(2))):
        fake = SimpleNamespace(
            loss_spec=LOSSES["sigmoid"],
            average_log_prob=average,
            loss_kwargs={"beta": 0.1, "label_smoothing": 0},
        )
        result, _ = DpoTrainer.pair_loss(fake, policy, reference, None)  # type: ignore[arg-type]
        sums = policy.sums / divisor
        expected = sigmoid_loss(
            sums[:1], sums[1:], (reference / divisor)[:1], (reference / divisor)[1:], beta=0.1
        )
        assert torch.allclose(result.losses, expected.losses)


def test_sync_ref_model_with_a_saved_adapter_is_accepted_and_with_a_new_one_refused() -> None:
    sync = {"sync_ref_settings": {"sync_ref_model": True}, "use_ref_model": True}
    settings = dpo({"adapter_path": ADAPTER, "is_trainable": True}, sync)
    assert settings.trainer_settings.sync_ref_settings.sync_ref_model
    with pytest.raises(ValidationError, match="start from a saved adapter"):
        dpo({"peft_settings": {"r": 4}}, sync)


def test_kto_takes_sync_ref_settings() -> None:
    data = json.loads((CONFIGS / "train" / "kto" / "base.json").read_text())
    data["trainer_settings"]["sync_ref_settings"] = {"sync_ref_model": False}
    settings = KtoExperimentSettings.model_validate(data)
    assert settings.trainer_settings.sync_ref_settings.sync_ref_model is False
    assert "sync_ref_settings" not in settings.trainer_settings.training_arguments()


def test_sequence_parallelism_is_refused_with_what_to_write() -> None:
    with pytest.raises(ValidationError, match="remove sequence_parallel_degree .* use model_type 'causal'"):
        ModelSettings(model_path=MODEL, model_type="gemma_with_ulysses", sequence_parallel_degree=2)
    assert ModelSettings(model_path=MODEL, sequence_parallel_degree=1).model_type == "causal"


def test_a_hub_id_is_answered_with_give_a_local_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from turbo.settings.paths import input_path_problems

    monkeypatch.chdir(tmp_path)
    settings = ModelSettings.model_construct(model_path=Path("openai/clip-vit-base-patch32"))
    problems = input_path_problems(settings)
    assert problems == [
        "model_path: openai/clip-vit-base-patch32 does not exist: it looks like a model hub id; "
        "models are not downloaded, give a local path"
    ]


def test_an_adapter_of_the_wrong_task_type_is_refused(fixture_models: Path) -> None:
    from turbo.pipelines.preflight import adapter_task_types

    settings = ModelSettings(
        model_path=fixture_models / "llama_rm",
        model_type="seq_cls",
        adapter_path=fixture_models / "llama_tiny_adapter",
    )
    (problem,) = adapter_task_types(settings)
    assert "is a CAUSAL_LM adapter, but model_type 'seq_cls' needs a SEQ_CLS adapter" in problem
    assert (
        adapter_task_types(settings.model_copy(update={"adapter_path": fixture_models / "llama_rm_adapter"}))
        == []
    )


def test_a_tokenizer_that_cannot_load_names_its_folder(tmp_path: Path) -> None:
    from turbo.errors import ModelError
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.tokenizer import TokenizerSettings

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "tokenizer.json").write_text("{not json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    with pytest.raises(ModelError, match=f"cannot load a tokenizer from {tmp_path}"):
        load_tokenizer(TokenizerSettings(use_fast=False), ModelSettings(model_path=tmp_path))


def test_a_sentencepiece_tokenizer_loads_with_use_fast_false(tmp_path: Path) -> None:
    import sentencepiece as spm

    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.tokenizer import TokenizerSettings

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the capital of france is paris", "hello how are you", "good bad"] * 50))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tmp_path / "tokenizer"),
        vocab_size=24,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=3,
        minloglevel=2,
    )
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    tokenizer = load_tokenizer(TokenizerSettings(use_fast=False), ModelSettings(model_path=tmp_path))
    assert not (tmp_path / "tokenizer.json").exists()  # only the sentencepiece model is there
    ids = tokenizer("hello paris", add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == "hello paris"


def test_multimodal_inference_entries_take_text_metrics_only(multimodal_models: Path) -> None:
    """The original writes metric_settings on an inference entry; metrics of the model's log-probs are
    refused there (only the text of the answers is scored)."""
    from turbo.settings.pipelines.inference.multimodal import MultimodalInferenceExperimentSettings

    data = json.loads(
        (CONFIGS / "original" / "inference" / "multimodal" / "llama_llava_clip_pickle.json").read_text()
    )
    settings = MultimodalInferenceExperimentSettings.model_validate(data)
    assert [metric.type for metric in settings.inference_settings[0].metric_settings] == ["meteor"]
    data["inference_settings"][0]["metric_settings"] = [
        {"type": "kl", "parameters": {"need_average": [True]}}
    ]
    with pytest.raises(ValidationError, match="kl read the language model's log-probs"):
        MultimodalInferenceExperimentSettings.model_validate(data)


def test_dpo_lc_alpha_is_the_length_desensitisation_of_lddpo() -> None:
    reference = {"use_ref_model": True}
    assert dpo({}, reference).trainer_settings.lc_alpha is None
    settings = dpo({}, {**reference, "lc_alpha": 0.5})
    assert settings.trainer_settings.lc_alpha == 0.5
    assert "lc_alpha" not in settings.trainer_settings.training_arguments()
    with pytest.raises(ValidationError, match="lc_alpha"):
        dpo({}, {**reference, "lc_alpha": 1.5})
