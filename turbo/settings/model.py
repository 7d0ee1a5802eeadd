"""Which model to load and how: path, head, transformers options, adapters, PEFT."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import default_peft_name, nest_field, refuse_sequence_parallel
from turbo.settings.base import PositiveCount, StrictModel
from turbo.settings.paths import InputFolder
from turbo.settings.problems import Problem

TaskType = Literal["CAUSAL_LM", "SEQ_CLS"]
PEFT_TASK_TYPES: dict[str, TaskType] = {"causal": "CAUSAL_LM", "seq_cls": "SEQ_CLS"}  # model_type -> peft's
AttentionKind = Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"]

# from_pretrained arguments turbo passes itself -> the setting that owns each
MODEL_KWARGS_OWNED = {
    "trust_remote_code": "model_settings.transformers_settings.trust_remote_code",
    "dtype": "model_settings.transformers_settings.dtype",
    "torch_dtype": "model_settings.transformers_settings.dtype",
    "low_cpu_mem_usage": "model_settings.transformers_settings.low_cpu_mem_usage",
    "quantization_config": "model_settings.bnb_settings",
    "load_in_4bit": "model_settings.bnb_settings",
    "load_in_8bit": "model_settings.bnb_settings",
    "attn_implementation": "model_settings.attn_implementation",
    "local_files_only": "nothing (turbo always loads local files only)",
    "pretrained_model_name_or_path": "model_settings.model_path",
}


class ModelTransformersSettings(StrictModel):
    """Options passed to `from_pretrained`."""

    trust_remote_code: bool = Field(False, description="Run code shipped with the model. Off unless set.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        None, description="Weights dtype; None keeps float32 (or the saved dtype with 'auto')."
    )
    low_cpu_mem_usage: bool | None = Field(
        None, description="from_pretrained's low_cpu_mem_usage. None: its default."
    )


class BnbSettings(StrictModel):
    """4-/8-bit loading with bitsandbytes (QLoRA when a LoRA trains on top)."""

    load_in_4bit: bool = Field(False, description="Load the linear layers in 4 bits (QLoRA).")
    load_in_8bit: bool = Field(False, description="Load the linear layers in 8 bits.")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="The 4-bit data type.")
    bnb_4bit_use_double_quant: bool = Field(False, description="Quantise the quantisation constants too.")
    bnb_4bit_compute_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Dtype of the 4-bit matmuls; None: transformers_settings.dtype, else float32."
    )
    llm_int8_skip_modules: list[str] | None = Field(
        None, description="Modules kept unquantised (transformers keeps the output head by default)."
    )

    @model_validator(mode="after")
    def _one_width(self) -> BnbSettings:
        if self.load_in_4bit == self.load_in_8bit:
            raise ValueError("set exactly one of load_in_4bit or load_in_8bit to true")
        four_bit = {"bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"}
        if self.load_in_8bit and four_bit & self.model_fields_set:
            raise ValueError(
                f"{', '.join(sorted(four_bit & self.model_fields_set))} apply to load_in_4bit only"
            )
        return self


class _PeftFields(StrictModel):
    virtual_tokens: ClassVar[bool] = True
    """Prompt learning: the adapter prepends virtual tokens to every row (so rows stay padded, and
    vLLM cannot load it); LoRA changes weights instead."""


class LoraSettings(_PeftFields):
    virtual_tokens = False

    name: Literal["LORA"]
    r: PositiveCount = Field(16, description="The rank of each LoRA update.")
    lora_alpha: PositiveCount = Field(16, description="The update is scaled by lora_alpha / r.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    bias: Literal["none", "all", "lora_only"] = Field(
        "none", description="Which biases train: none, all, or those of the LoRA layers (also as lora_bias)."
    )
    target_modules: list[str] | str | None = Field(
        None,
        description='Module names (or a regex). "auto": every linear layer of the language model, found '
        "from the model itself (not the output head, a vision tower or a projector). None: peft's "
        "default for the architecture.",
    )
    modules_to_save: list[str] | None = Field(
        None,
        description="Modules trained in full and saved beside the adapter (e.g. embed_tokens, lm_head); "
        'a list or one comma-separated string ("embed_tokens,lm_head").',
    )
    task_type: TaskType | None = Field(None, description="None: follows model_settings.model_type.")
    use_rslora: bool = Field(False, description="Scale by lora_alpha / sqrt(r) (rank-stabilised LoRA).")
    use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")

    @field_validator("modules_to_save", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",") if name.strip()]
            if not names:
                raise ValueError("no module names in the string; give names separated by commas")
            return names
        return value


class PromptTuningSettings(_PeftFields):
    name: Literal["PROMPT_TUNING"]
    num_virtual_tokens: PositiveCount = Field(32, description="Trained virtual tokens put before the input.")
    prompt_tuning_init_text: str | None = Field(
        None, description="Initialise the virtual tokens from this text (else random)."
    )
    task_type: TaskType | None = Field(None, description="None: follows model_settings.model_type.")


class PrefixTuningSettings(_PeftFields):
    name: Literal["PREFIX_TUNING"]
    num_virtual_tokens: PositiveCount = Field(32, description="Trained virtual tokens put before the input.")
    encoder_hidden_size: PositiveCount | None = Field(
        None, description="Width of the prefix projection MLP. None: the model's hidden size."
    )
    prefix_projection: bool = Field(
        False, description="Produce the prefixes through an MLP (else learn them directly)."
    )
    task_type: TaskType | None = Field(None, description="None: follows model_settings.model_type.")


class PTuningSettings(_PeftFields):
    name: Literal["P_TUNING"]
    num_virtual_tokens: PositiveCount = Field(32, description="Trained virtual tokens put before the input.")
    encoder_hidden_size: PositiveCount | None = Field(
        None, description="Width of the prompt encoder. None: the model's hidden size."
    )
    encoder_reparameterization_type: Literal["MLP", "LSTM"] = Field(
        "MLP", description="The prompt encoder that produces the virtual tokens."
    )
    encoder_num_layers: PositiveCount = Field(2, description="Layers of the prompt encoder.")
    encoder_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout in the prompt encoder.")
    task_type: TaskType | None = Field(None, description="None: follows model_settings.model_type.")


PeftSettings = Annotated[
    LoraSettings | PromptTuningSettings | PrefixTuningSettings | PTuningSettings,
    Field(discriminator="name"),
]


class ModelSettings(StrictModel):
    """A local transformers model: how to load it, and the adapter (PEFT) to load or train on it."""

    model_path: InputFolder = Field(description="Local folder of a transformers model.")
    model_type: Literal["causal", "seq_cls"] = Field(
        "causal", description="causal: a language model; seq_cls: a sequence classifier (reward models too)."
    )
    transformers_settings: ModelTransformersSettings = ModelTransformersSettings()
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra from_pretrained kwargs, e.g. attn_implementation, num_labels.",
    )
    adapter_path: InputFolder | None = Field(None, description="A saved PEFT adapter to load on top.")
    is_trainable: bool = Field(False, description="Train the loaded adapter (adapter_path).")
    resize_token_embeddings: bool = Field(
        False, description="Grow the embeddings when the tokenizer gains tokens."
    )
    embeddings_initialization_strategy: dict[str, str] | None = Field(
        None,
        description="New token -> text; the new token is added (the embeddings grow to fit it, as with "
        "resize_token_embeddings) and its embedding row is the mean of the text's sub-token embeddings.",
    )
    peft_settings: PeftSettings | None = Field(
        None, description="A new adapter to train; without `name` it is LoRA (as in the original)."
    )
    bnb_settings: BnbSettings | None = Field(
        None, description="Load the weights in 4 or 8 bits (bitsandbytes); training then needs an adapter."
    )
    attn_implementation: (
        Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"] | None
    ) = Field(
        None,
        description="The attention kernel (transformers' attn_implementation); None: transformers' "
        "default. A kernel the machine or model lacks is refused before training. "
        "use_flash_attention_2: true is the same as flash_attention_2.",
    )

    @model_validator(mode="before")
    @classmethod
    def _original_names(cls, data: Any) -> Any:
        """`bits: 4 | 8 | 16` (LLaVA, XTuner) for bnb_settings; use_flash_attention_2 for
        attn_implementation."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "bits" in data:
            bits = data.pop("bits")
            if bits not in (4, 8, 16):
                raise ValueError(f"bits: {bits!r} is not one of 4, 8 or 16")
            if bits != 16:
                if data.get("bnb_settings") is not None:
                    raise ValueError("bits sets bnb_settings; set one of them")
                data["bnb_settings"] = (
                    {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
                    if bits == 4
                    else {"load_in_8bit": True}
                )
        if "use_flash_attention_2" in data:
            flash = data.pop("use_flash_attention_2")
            if not isinstance(flash, bool):
                raise ValueError("use_flash_attention_2: expected true or false")
            if flash:
                if data.get("attn_implementation") not in (None, "flash_attention_2"):
                    raise ValueError(
                        "use_flash_attention_2 and attn_implementation disagree; set one of them"
                    )
                data["attn_implementation"] = "flash_attention_2"
        return data

    @model_validator(mode="before")
    @classmethod
    def _no_sequence_parallel(cls, data: Any) -> Any:
        """Also: `num_labels` beside model_path (the original's classification layout) is read as
        model_kwargs.num_labels."""
        return nest_field(refuse_sequence_parallel(data), "num_labels", "model_kwargs")

    @field_validator("peft_settings", mode="before")
    @classmethod
    def _lora_by_default(cls, value: Any) -> Any:
        return default_peft_name(value)

    @model_validator(mode="after")
    def _one_adapter(self) -> ModelSettings:
        if self.adapter_path is not None and self.peft_settings is not None:
            raise ValueError(
                "set either adapter_path (load a saved adapter; is_trainable: true trains it further) "
                "or peft_settings (create a new adapter), not both"
            )
        return self

    @field_validator("model_kwargs")
    @classmethod
    def _not_owned(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & set(MODEL_KWARGS_OWNED))
        if reserved:
            raise ValueError(
                "; ".join(f"{key} is set by turbo: use {MODEL_KWARGS_OWNED[key]}" for key in reserved)
            )
        return value

    @property
    def trains_adapter(self) -> bool:
        """A new adapter (peft_settings) or a loaded one that trains further."""
        return self.peft_settings is not None or (self.adapter_path is not None and self.is_trainable)


def reward_model_problems(model: ModelSettings, where: str, expected: str) -> list[Problem]:
    """A reward model is a sequence classifier (`expected` follows "must be 'seq_cls'") with one output;
    `where` is the path of its model settings."""
    problems: list[Problem] = []
    if model.model_type != "seq_cls":
        problems.append((f"{where}.model_type", f"must be 'seq_cls' {expected}"))
    num_labels = model.model_kwargs.get("num_labels", 1)
    if num_labels != 1:
        problems.append(
            (f"{where}.model_kwargs.num_labels", f"a reward model has one output; this is {num_labels}")
        )
    return problems
