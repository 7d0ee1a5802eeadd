"""read_tokenizer: a tokenizer.json that `tokenizers` refuses falls back to the slow files (tokenizer.model)
and gives the same token ids; the folder layouts of transformers' RagTokenizer resolve to their parts."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from turbo.errors import ModelError
from turbo.modeling.rag.encoder import encoder_tokenizer_folder
from turbo.modeling.tokenizer import load_tokenizer, rag_tokenizer_folder, read_tokenizer
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import TokenizerSettings

TEXT = "the capital of the answer is a question"


def sentencepiece_folder(folder: Path) -> Path:
    """A llama tokenizer as the original's fixtures ship it: tokenizer.model (sentencepiece), and the
    tokenizer.json transformers writes from it."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    folder.mkdir()
    corpus = [TEXT, "hello user bot system yes no what is the color"] * 50
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=60, model_type="bpe",
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
    )  # fmt: skip
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    AutoTokenizer.from_pretrained(folder, local_files_only=True).save_pretrained(folder)
    return folder


def break_merges(folder: Path) -> None:
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"].append(["zzq", "qqz"])  # tokens not in the vocabulary
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")


def test_an_unreadable_tokenizer_json_falls_back_to_tokenizer_model(tmp_path: Path) -> None:
    folder = sentencepiece_folder(tmp_path / "tokenizer")
    expected = read_tokenizer(folder, "tokenizer_settings.tokenizer_path")(TEXT).input_ids
    break_merges(folder)
    with pytest.raises(Exception, match="out of vocabulary"):
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer = read_tokenizer(folder, "tokenizer_settings.tokenizer_path", use_fast=False)
    assert tokenizer(TEXT).input_ids == expected and len(expected) > 3
    assert tokenizer.name_or_path == str(folder)


def test_without_slow_files_the_message_names_the_field(fixture_models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "llama"
    shutil.copytree(fixture_models / "llama_tiny", folder)
    break_merges(folder)
    settings = TokenizerSettings(tokenizer_path=folder, use_fast=False)
    with pytest.raises(ModelError) as caught:
        load_tokenizer(settings, ModelSettings(model_path=fixture_models / "llama_tiny"))
    message = str(caught.value)
    assert message.startswith(f"tokenizer_settings.tokenizer_path: cannot load a tokenizer from {folder}")
    assert "out of vocabulary" in message


def test_rag_tokenizer_layouts_resolve_to_their_parts(fixture_models: Path, tmp_path: Path) -> None:
    """train_rag's final folder: generator_tokenizer/ and question_encoder_tokenizer/ beside the models."""
    final = tmp_path / "final"
    (final / "question_encoder").mkdir(parents=True)
    for part in ("generator_tokenizer", "question_encoder_tokenizer"):
        shutil.copytree(fixture_models / "llama_tiny", final / part)
    assert rag_tokenizer_folder(final, "generator_tokenizer") == final / "generator_tokenizer"
    assert encoder_tokenizer_folder(final / "question_encoder") == final / "question_encoder_tokenizer"
    # a folder with its own tokenizer files is used as it is
    llama = fixture_models / "llama_tiny"
    assert rag_tokenizer_folder(llama, "generator_tokenizer") == llama
    assert encoder_tokenizer_folder(llama) == llama
    tokenizer = load_tokenizer(TokenizerSettings(tokenizer_path=final), ModelSettings(model_path=llama))
    assert tokenizer.name_or_path == str(final / "generator_tokenizer")
