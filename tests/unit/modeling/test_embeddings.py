import pytest
import torch

from turbo.errors import ModelError
from turbo.modeling.loading import load_model
from turbo.modeling.tokenizer import load_tokenizer
from turbo.settings.model import ModelSettings
from turbo.settings.tokenizer import SpecialTokensSettings, TokenizerSettings


def test_new_tokens_start_as_the_mean_of_their_text(fixture_models) -> None:
    from transformers import AutoModelForCausalLM

    path = fixture_models / "llama_tiny"
    strategy = {"<RS>": "<s>", "<bot>": "capital of France"}
    settings = ModelSettings(
        model_path=path, resize_token_embeddings=True, embeddings_initialization_strategy=strategy
    )
    tokenizer = load_tokenizer(TokenizerSettings(), settings)
    model = load_model(settings, tokenizer, TokenizerSettings())
    base = AutoModelForCausalLM.from_pretrained(path)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) == base.config.vocab_size + 2
    for token, text in strategy.items():
        new_id = tokenizer.convert_tokens_to_ids(token)
        source_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(source_ids) >= 1 and new_id >= base.config.vocab_size
        for table, original in (
            (model.get_input_embeddings(), base.get_input_embeddings()),
            (model.get_output_embeddings(), base.get_output_embeddings()),
        ):
            expected = original.weight[source_ids].mean(dim=0)
            torch.testing.assert_close(table.weight[new_id], expected, atol=1e-6, rtol=0)
    # the old rows are untouched and the ids reach the config
    torch.testing.assert_close(
        model.get_input_embeddings().weight[:100], base.get_input_embeddings().weight[:100]
    )
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_tokens_of_embeddings_initialization_strategy_grow_the_embeddings(fixture_models) -> None:
    """As in the original's files: asking to initialise a new token implies rows for it."""
    settings = ModelSettings(
        model_path=fixture_models / "llama_tiny", embeddings_initialization_strategy={"<RS>": "<s>"}
    )
    tokenizer = load_tokenizer(TokenizerSettings(), settings)
    model = load_model(settings, tokenizer, TokenizerSettings())
    table = model.get_input_embeddings().weight
    assert table.shape[0] == len(tokenizer)
    new, source = tokenizer.convert_tokens_to_ids(["<RS>", "<s>"])
    assert torch.equal(table[new], table[source])


def test_new_special_tokens_without_resize_is_an_error(fixture_models) -> None:
    settings = ModelSettings(model_path=fixture_models / "llama_tiny")
    tokenizer = load_tokenizer(TokenizerSettings(), settings, SpecialTokensSettings(sep_token="<sep>"))
    with pytest.raises(ModelError, match="set model_settings.resize_token_embeddings: true"):
        load_model(settings, tokenizer, TokenizerSettings())


def test_special_tokens_are_added_only_where_missing(fixture_models) -> None:
    settings = ModelSettings(model_path=fixture_models / "llama_tiny")
    tokenizer = load_tokenizer(
        TokenizerSettings(), settings, SpecialTokensSettings(bos_token="<other>", sep_token="<sep>")
    )
    assert tokenizer.bos_token == "<s>"  # kept: the tokenizer has one
    assert tokenizer.sep_token == "<sep>" and tokenizer.sep_token_id == len(tokenizer) - 1
