"""The `transformers.TrainingArguments` fields users set; anything else is rejected."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from turbo.settings.aliases import refuse_sequence_parallel
from turbo.settings.base import MAX_COUNT, Count, PositiveCount, Seed, StrictModel

SchedulerType = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
]
Strategy = Literal["no", "steps", "epoch"]


NOT_TRAINING_ARGUMENTS = {
    "warmup_ratio", "resume_from_checkpoint", "seed", "chunked_cross_entropy", "padding_free",
}  # fmt: skip
"""Fields of TrainerSettings that turbo reads itself (warmup_ratio becomes warmup_steps below)."""


FSDP_PRESETS: dict[str, tuple[bool, dict[str, Any]]] = {
    "fsdp2": (True, {"version": 2, "reshard_after_forward": True}),
}
"""trainer_settings.fsdp presets -> transformers' fsdp and fsdp_config (the user's fsdp_config on top):
full sharding; accelerate wraps each of the model's _no_split_modules (the decoder layers) with
fully_shard."""


class TrainerSettings(StrictModel):
    """The transformers.TrainingArguments fields users set (anything else is rejected); each keeps its
    transformers meaning and default."""

    per_device_train_batch_size: PositiveCount = 1
    per_device_eval_batch_size: PositiveCount = 1
    gradient_accumulation_steps: PositiveCount = 1
    learning_rate: float = Field(5e-5, gt=0)
    lr_scheduler_type: SchedulerType = "linear"
    lr_scheduler_kwargs: dict[str, Any] | None = None
    warmup_steps: Count = 0
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Warmup as a share of all steps.")
    num_train_epochs: float = Field(3.0, gt=0, le=MAX_COUNT)
    max_steps: int = Field(-1, ge=-1, le=MAX_COUNT, description="Overrides num_train_epochs when > 0.")
    eval_strategy: Strategy = "no"
    eval_steps: float | None = Field(None, gt=0, le=MAX_COUNT)
    eval_on_start: bool = False
    save_strategy: Literal["no", "steps", "epoch", "best"] = "steps"
    save_steps: float = Field(500, gt=0, le=MAX_COUNT)
    save_total_limit: PositiveCount | None = None
    save_only_model: bool = False
    logging_strategy: Strategy = "steps"
    logging_steps: float = Field(10, gt=0, le=MAX_COUNT)
    logging_first_step: bool = False
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    bf16: bool = False
    fp16: bool = False
    tf32: bool | None = None
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: dict[str, Any] | None = None
    optim: str = "adamw_torch"
    optim_args: str | None = None
    weight_decay: float = Field(0.0, ge=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    label_smoothing_factor: float = Field(0.0, ge=0, lt=1)
    neftune_noise_alpha: float | None = Field(None, ge=0)
    deepspeed: str | dict[str, Any] | None = Field(
        None,
        description="A DeepSpeed preset (zero1, zero2, zero2_offload, zero3, zero3_offload), a path to a "
        "DeepSpeed JSON, or the config. Batch size, accumulation, clipping and precision come from these "
        'trainer settings (write "auto" or leave them out of the DeepSpeed config).',
    )
    fsdp: str | None = Field(
        None,
        description='FSDP of transformers.Trainer: the preset "fsdp2" (PyTorch FSDP2 through accelerate: '
        "parameters, gradients and optimizer state sharded, each decoder layer wrapped; fsdp_config adds to "
        'it), or transformers\' own string, e.g. "full_shard auto_wrap", with fsdp_config as transformers '
        "reads it.",
    )
    fsdp_config: dict[str, Any] | None = None
    seed: Seed | None = Field(None, description="Defaults to the experiment's seed.")
    data_seed: Seed | None = None
    full_determinism: bool = False
    resume_from_checkpoint: bool | str | None = Field(
        None, description="true: the newest checkpoint in the experiment folder; or a checkpoint path."
    )
    train_sampling_strategy: Literal["random", "sequential", "group_by_length"] = "random"
    dataloader_num_workers: int = Field(0, ge=0, le=1024)
    dataloader_drop_last: bool = False
    use_cpu: bool = False
    ddp_find_unused_parameters: bool | None = None
    torch_compile: bool = False
    disable_tqdm: bool | None = None
    chunked_cross_entropy: bool = Field(
        True,
        description="train_sft: compute the training loss from the final hidden states of the labelled "
        "positions only, a chunk at a time, never the full-vocabulary logits of the batch (same loss; "
        "less memory and time). Used where the model's head allows it (a plain linear lm_head, LoRA "
        "or no adapter), else the plain loss.",
    )
    padding_free: bool = Field(
        True,
        description="train_sft, train_dpo (not with lc_alpha): put each batch in one row without pad "
        "positions, each sample attending only to itself (same samples and loss; no work on padding). "
        "train_grpo, train_ppo: the same for the scoring of the answers (old and reference log-probs, "
        "the value model, the forward/backward passes), not for multimodal prompts. "
        "Used where the attention reads sample offsets (sdpa/eager through turbo_varlen, "
        "flash-attention) and no prompt-learning adapter adds virtual tokens; else rows are padded. "
        "Packed rows (pack_to_max_length) are always padding-free.",
    )

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed_shape(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if value is not None:
            from turbo.settings.deepspeed import load_config  # pure Python, no torch
            from turbo.settings.deepspeed.schema import shape_problems

            problems = shape_problems(load_config(value))
            if problems:
                raise ValueError("the DeepSpeed config is malformed: " + "; ".join(problems))
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_sequence_parallel(cls, data: Any) -> Any:
        return refuse_sequence_parallel(data)

    @model_validator(mode="after")
    def _consistent(self) -> TrainerSettings:
        if self.bf16 and self.fp16:
            raise ValueError("set only one of bf16 or fp16")
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("set only one of warmup_steps or warmup_ratio")
        if self.load_best_model_at_end and self.save_strategy != self.eval_strategy:
            raise ValueError(
                "load_best_model_at_end needs save_strategy equal to eval_strategy "
                f"(now {self.save_strategy!r} and {self.eval_strategy!r})"
            )
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ValueError("eval_strategy 'steps' needs eval_steps")
        if self.deepspeed is not None and self.fsdp is not None:
            raise ValueError("set either deepspeed or fsdp, not both")
        fsdp_config = self.fsdp_config or {}
        if self.fsdp in FSDP_PRESETS and fsdp_config.get("fsdp_version", fsdp_config.get("version", 2)) != 2:
            raise ValueError(
                f"fsdp_config.fsdp_version: the preset fsdp {self.fsdp!r} is FSDP2; remove fsdp_version "
                'or write fsdp: "full_shard auto_wrap" with your fsdp_config for FSDP1'
            )
        if self.deepspeed is not None:
            from turbo.settings.deepspeed import conflicts, load_config  # pure Python, no torch

            problems = conflicts(load_config(self.deepspeed), self.model_dump())
            if problems:
                raise ValueError("deepspeed: " + "; ".join(problems))
        return self

    def training_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `transformers.TrainingArguments` (without output_dir/seed/report_to): the
        fields of TrainerSettings itself but turbo's own. A method's trainer settings (a subclass) add
        fields that never go there (loss_settings, beta, rollout_batch_size, ...): the one rule that strips
        them, so a new method field needs no list."""
        kwargs = self.model_dump(include=TrainerSettings.model_fields.keys() - NOT_TRAINING_ARGUMENTS)
        if self.warmup_ratio:
            kwargs["warmup_steps"] = self.warmup_ratio
        if self.deepspeed is not None:
            from turbo.settings.deepspeed import resolve

            kwargs["deepspeed"] = resolve(self.deepspeed)
        if self.fsdp in FSDP_PRESETS:
            kwargs["fsdp"], preset = FSDP_PRESETS[self.fsdp]
            kwargs["fsdp_config"] = {**preset, **(self.fsdp_config or {})}
        return {key: value for key, value in kwargs.items() if value is not None}
