"""train_rag and inference_rag through the real CLI on the tiny fixtures: what the run leaves, that
both the question encoder and the generator trained, that retrieval helps the trained model answer
questions whose answers are only in the index, resume, and inference on the trained folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ..helpers import CONFIGS, read_jsonl, run_turbo

TRAIN = CONFIGS / "train" / "rag" / "lora.json"
INFERENCE = CONFIGS / "inference" / "rag" / "base.json"
ENTRY = "inference_settings.0"


@pytest.fixture(scope="module")
def trained(rag_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_rag") / "run"
    run_turbo("train_rag", "--experiment_settings_path", TRAIN, "--set", f"log_path={folder}")
    return folder


def test_the_run_leaves_both_models_and_both_tokenizers(trained: Path) -> None:
    final = trained / "final"
    assert (final / "generator" / "adapter_model.safetensors").is_file()
    assert (final / "question_encoder" / "model.safetensors").is_file()
    assert (final / "generator_tokenizer" / "tokenizer.json").is_file()
    assert (final / "question_encoder_tokenizer" / "tokenizer.json").is_file()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["checkpoint-20", "checkpoint-40"]
    rows = read_jsonl(trained / "cherry_picks" / "step_40.jsonl")
    assert len(rows) == 2 and all(len(row["retrieved_ids"]) == 2 and row["answers"] for row in rows)


def test_loss_falls_and_both_parts_train(rag_models: Path, trained: Path) -> None:
    losses = [row["loss"] for row in read_jsonl(trained / "metrics.jsonl") if "loss" in row]
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    before = load_file(str(rag_models / "bert_tiny" / "model.safetensors"))
    after = load_file(str(trained / "final" / "question_encoder" / "model.safetensors"))
    changed = [name for name, tensor in after.items() if not torch.equal(tensor, before[name])]
    assert len(changed) >= len(after) // 2, f"only {changed} changed"
    adapter = load_file(str(trained / "final" / "generator" / "adapter_model.safetensors"))
    assert all(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)


def answer_logps(
    trained: Path, rag_models: Path
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Answer log-likelihoods of the trained generator on the fixture questions, with the passages the
    trained question encoder retrieves, without any passage, and with another question's passage."""
    from turbo.data.chat import build_chat_samples
    from turbo.data.rag import generator_batch, samples_with_documents
    from turbo.generators.rag import QuestionEncoder, retrieve_for_samples
    from turbo.modeling.loading import load_model
    from turbo.modeling.rag.encoder import load_encoder
    from turbo.modeling.rag.model import sequence_logps
    from turbo.modeling.rag.retriever import load_retriever
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.pipelines.train.rag import RagExperimentSettings

    settings = RagExperimentSettings.model_validate(json.loads(TRAIN.read_text()))
    final = trained / "final"
    retrieval = settings.model_settings.retrieval_settings.model_copy(update={"n_docs": 1})
    adapter = (final / "generator" / "adapter_config.json").is_file()
    generator_settings = settings.model_settings.generator_settings.model_copy(
        update={"peft_settings": None, "adapter_path": final / "generator"}
        if adapter
        else {"peft_settings": None, "model_path": final / "generator"}
    )
    tokenizer_settings = settings.tokenizer_settings.model_copy(
        update={"tokenizer_path": final / "generator_tokenizer"}
    )
    tokenizer = load_tokenizer(tokenizer_settings, generator_settings)
    generator = load_model(generator_settings, tokenizer, tokenizer_settings).eval()
    encoder_settings = settings.model_settings.question_encoder_settings.model_copy(
        update={
            "model_path": final / "question_encoder",
            "tokenizer_path": final / "question_encoder_tokenizer",
        }
    )
    encoder = QuestionEncoder(*load_encoder(encoder_settings), "mean", True)
    index = settings.model_settings.index_settings
    retriever = load_retriever(index.index_path, index.passages_path, "index_settings", 64, 1)
    dataset = settings.train_dataset_settings
    samples, _ = build_chat_samples(dataset, tokenizer, seed=0)
    retrieved = retrieve_for_samples(encoder, retriever, samples, retrieval)
    wrong = retrieved.documents[1:] + retrieved.documents[:1]  # each question gets another's passage
    with_docs, with_wrong = (
        samples_with_documents(samples, docs, dataset, tokenizer, retrieval, inference=False, joined=True)
        for docs in (retrieved.documents, wrong)
    )
    out = []
    for rows in (with_docs, samples, with_wrong):
        batch = generator_batch(rows, tokenizer.pad_token_id)
        with torch.no_grad():
            logits = generator(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        out.append(sequence_logps(logits, batch["labels"])[0])
    return out[0], out[1], out[2], [docs[0].id for docs in retrieved.documents]


def test_retrieval_helps_the_trained_model_answer(rag_models: Path, trained: Path) -> None:
    """The answers (made-up capitals) are only in the passages. On this tiny overfit set the trained
    RAG model gives every answer a higher likelihood with the retrieved passage than without one, and
    a lower one with another question's passage: it reads the passage (it also memorised the answers,
    so the margins are modest: about 0.3 and 0.5 nats on average)."""
    with_retrieval, without, wrong, top_ids = answer_logps(trained, rag_models)
    assert top_ids == [f"p{i}" for i in range(8)]  # the trained encoder finds each question's passage
    assert (with_retrieval > without).all(), (with_retrieval, without)
    assert (with_retrieval - without).mean() > 0.15, (with_retrieval, without)
    assert (with_retrieval - wrong).mean() > 0.25, (with_retrieval, wrong)


def test_resume_gives_the_uninterrupted_weights(trained: Path, tmp_path: Path) -> None:
    """A run resumed from checkpoint-20 of the 40-step run ends with that run's final weights."""
    folder = tmp_path / "resumed"
    shutil.copytree(trained / "checkpoints" / "checkpoint-20", folder / "checkpoints" / "checkpoint-20")
    shutil.copy(trained / "experiment_settings.json", folder)  # an experiment folder, as the run left it
    run_turbo(
        "train_rag", "--experiment_settings_path", TRAIN, "--set", f"log_path={folder}",
        "--set", "trainer_settings.resume_from_checkpoint=true",
    )  # fmt: skip
    for part, file in (("question_encoder", "model.safetensors"), ("generator", "adapter_model.safetensors")):
        expected = load_file(str(trained / "final" / part / file))
        resumed = load_file(str(folder / "final" / part / file))
        assert expected.keys() == resumed.keys()
        for name, tensor in expected.items():
            assert torch.allclose(resumed[name], tensor, atol=1e-5), f"{part}: {name}"
    steps = [row["step"] for row in read_jsonl(folder / "metrics.jsonl") if "loss" in row]
    assert steps == list(range(21, 41))


def test_inference_rag_on_the_trained_folder(trained: Path, tmp_path: Path) -> None:
    final = trained / "final"
    encoder = f"{ENTRY}.model_settings.question_encoder_settings"
    run_turbo(
        "inference_rag", "--inference_settings_path", INFERENCE, "--set", f"save_path={tmp_path}",
        "--set", f"{ENTRY}.model_settings.generator_settings.adapter_path={final / 'generator'}",
        "--set", f"{ENTRY}.tokenizer_settings.tokenizer_path={final / 'generator_tokenizer'}",
        "--set", f"{encoder}.model_path={final / 'question_encoder'}",
        "--set", f"{encoder}.tokenizer_path={final / 'question_encoder_tokenizer'}",
    )  # fmt: skip
    rows = read_jsonl(tmp_path / "model_0" / "generation_0" / "questions.jsonl")
    assert [row["id"] for row in rows] == [f"q{i}" for i in range(8)]
    for i, row in enumerate(rows):
        assert row["retrieved_ids"][0] == f"p{i}" and len(row["retrieved_ids"]) == 2
        assert row["retrieved_scores"] == sorted(row["retrieved_scores"], reverse=True)
        assert len(row["answers"]) == 1
    gold = [row["messages"][-1]["content"] for row in rows]
    right = sum(
        row["answers"][0]["content"].strip().startswith(answer)
        for row, answer in zip(rows, gold, strict=True)
    )
    assert right >= 4, [row["answers"][0]["content"] for row in rows]


def test_inference_rag_reads_the_final_folder_in_the_rag_tokenizer_layout(
    trained: Path, tmp_path: Path
) -> None:
    """As the original's inference files write it: tokenizer_path is the final folder (generator_tokenizer/
    inside), the question encoder has no tokenizer_path (question_encoder_tokenizer/ beside it). The answers
    equal those of the run that names both tokenizer folders."""
    final = trained / "final"
    encoder = f"{ENTRY}.model_settings.question_encoder_settings"
    common = (
        "--set", f"{ENTRY}.model_settings.generator_settings.adapter_path={final / 'generator'}",
        "--set", f"{encoder}.model_path={final / 'question_encoder'}",
    )  # fmt: skip
    run_turbo(
        "inference_rag", "--inference_settings_path", INFERENCE, "--set", f"save_path={tmp_path / 'layout'}",
        "--set", f"{ENTRY}.tokenizer_settings.tokenizer_path={final}", *common,
    )  # fmt: skip
    run_turbo(
        "inference_rag", "--inference_settings_path", INFERENCE, "--set", f"save_path={tmp_path / 'named'}",
        "--set", f"{ENTRY}.tokenizer_settings.tokenizer_path={final / 'generator_tokenizer'}",
        "--set", f"{encoder}.tokenizer_path={final / 'question_encoder_tokenizer'}", *common,
    )  # fmt: skip
    rows, expected = (
        read_jsonl(tmp_path / name / "model_0" / "generation_0" / "questions.jsonl")
        for name in ("layout", "named")
    )
    assert len(rows) == 8 and rows == expected
    assert [row["retrieved_ids"][0] for row in rows] == [f"p{i}" for i in range(8)]


# train_rag under torchrun (2 ranks against one process, cherry-picks written once):
# tests/e2e/test_distributed_commands.py
