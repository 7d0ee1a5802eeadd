"""The one table that routes every pipeline command: name -> settings flag, settings class, pipeline."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    flag: str  # the option that names the settings file
    settings: str  # "module:Class" of the settings
    pipeline: str  # "module:function" that runs them
    help: str


def _commands(*commands: Command) -> dict[str, Command]:
    return {command.name: command for command in commands}


COMMANDS = _commands(
    Command(
        "train_sft",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.sft:SftExperimentSettings",
        "turbo.pipelines.train.sft:run",
        "Supervised fine-tuning on chat data (full or PEFT).",
    ),
    Command(
        "inference_chat",
        "inference_settings_path",
        "turbo.settings.pipelines.inference.chat:ChatInferenceExperimentSettings",
        "turbo.pipelines.inference.chat:run",
        "Answer chat datasets with one or more models and generation settings.",
    ),
    Command(
        "train_classification",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.classification:ClassificationExperimentSettings",
        "turbo.pipelines.train.classification:run",
        "Train a sequence-classification model (focal loss; accuracy, F1, ROC-AUC at eval).",
    ),
    Command(
        "inference_classification",
        "inference_settings_path",
        "turbo.settings.pipelines.inference.classification:ClassificationInferenceExperimentSettings",
        "turbo.pipelines.inference.classification:run",
        "Predict the label and class probabilities of every record of classification datasets.",
    ),
    Command(
        "train_kto",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.kto:KtoExperimentSettings",
        "turbo.pipelines.train.kto:run",
        "KTO alignment on unpaired desirable / undesirable answers (full or PEFT).",
    ),
    Command(
        "random_sample",
        "experiment_settings_path",
        "turbo.settings.pipelines.sampling:RandomSamplingSettings",
        "turbo.pipelines.sampling.random:run",
        "Keep N answers per record of an inference_chat output, chosen at random (seeded).",
    ),
    Command(
        "rm_sample",
        "experiment_settings_path",
        "turbo.settings.pipelines.sampling:RmSamplingSettings",
        "turbo.pipelines.sampling.rm:run",
        "Score every answer with a reward model and keep the N best per record.",
    ),
    Command(
        "rso_sample",
        "experiment_settings_path",
        "turbo.settings.pipelines.sampling:RsoSamplingSettings",
        "turbo.pipelines.sampling.rso:run",
        "Statistical rejection sampling: keep up to N answers per record, accepted by reward.",
    ),
    Command(
        "train_multimodal",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.multimodal:MultimodalExperimentSettings",
        "turbo.pipelines.train.multimodal:run",
        "Train a projector and the LM (LoRA or full) on image/audio chat data; the encoder stays frozen.",
    ),
    Command(
        "inference_multimodal",
        "inference_settings_path",
        "turbo.settings.pipelines.inference.multimodal:MultimodalInferenceExperimentSettings",
        "turbo.pipelines.inference.multimodal:run",
        "Answer multimodal chat datasets with a trained LM and its projectors.",
    ),
    Command(
        "preprocess_multimodal_dataset",
        "settings_path",
        "turbo.settings.pipelines.preprocessing:PreprocessMultimodalSettings",
        "turbo.pipelines.preprocessing.multimodal:run",
        "Encode a folder of media once into a safetensors file (read back with reader_type: pickle).",
    ),
    Command(
        "train_dpo",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.dpo:DpoExperimentSettings",
        "turbo.pipelines.train.dpo:run",
        "DPO and its relatives (ipo, simpo, orpo, ...) on pair preferences (full or PEFT).",
    ),
    Command(
        "train_lddpo",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.dpo:DpoExperimentSettings",
        "turbo.pipelines.train.dpo:run",
        "The original's name for train_dpo with trainer_settings.lc_alpha (length-desensitised DPO).",
    ),
    Command(
        "train_multimodal_dpo",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.multimodal_dpo:MultimodalDpoExperimentSettings",
        "turbo.pipelines.train.multimodal_dpo:run",
        "train_dpo's losses on a train_multimodal model, over pair preferences whose prompts hold images.",
    ),
    Command(
        "train_ppo",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.ppo:PpoExperimentSettings",
        "turbo.pipelines.train.ppo:run",
        "Online RL with PPO: value model, per-token KL penalty, GAE; rollouts from transformers or vLLM.",
    ),
    Command(
        "train_grpo",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.grpo:GrpoExperimentSettings",
        "turbo.pipelines.train.grpo:run",
        "Online RL with GRPO: group-normalised rewards of sampled answers; rollouts from HF or vLLM.",
    ),
    Command(
        "train_ddpo",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.ddpo:DdpoExperimentSettings",
        "turbo.pipelines.train.ddpo:run",
        "Distillation DPO: the policy's pair preferences matched to a reward model's (full or PEFT).",
    ),
    Command(
        "train_rm",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.rm:RmExperimentSettings",
        "turbo.pipelines.train.rm:run",
        "Train a reward model (one-output sequence classifier) on pair preferences.",
    ),
    Command(
        "inference_rm",
        "inference_settings_path",
        "turbo.settings.pipelines.inference.rm:RmInferenceExperimentSettings",
        "turbo.pipelines.inference.rm:run",
        "Score pair-preference, chat or sampling records with a reward model.",
    ),
    Command(
        "build_index",
        "settings_path",
        "turbo.settings.pipelines.build_index:BuildIndexSettings",
        "turbo.pipelines.preprocessing.build_index:run",
        "Encode passages (JSONL or a datasets folder) into a passages folder and a faiss index.",
    ),
    Command(
        "train_rag",
        "experiment_settings_path",
        "turbo.settings.pipelines.train.rag:RagExperimentSettings",
        "turbo.pipelines.train.rag:run",
        "RAG-Sequence: train the question encoder and the generator (LoRA or full) together.",
    ),
    Command(
        "inference_rag",
        "inference_settings_path",
        "turbo.settings.pipelines.inference.rag:RagInferenceExperimentSettings",
        "turbo.pipelines.inference.rag:run",
        "Answer chat datasets with retrieval: batched question encoding, one faiss search, generation.",
    ),
    Command(
        "merge_adapters_to_base",
        "settings_path",
        "turbo.settings.pipelines.merge:MergeAdaptersSettings",
        "turbo.pipelines.tools.merge:run",
        "Merge a LoRA adapter into its base model and save a plain model folder.",
    ),
    Command(
        "evaluate",
        "settings_path",
        "turbo.settings.pipelines.evaluate:EvaluateSettings",
        "turbo.pipelines.tools.evaluate:run",
        "Compute cherry-pick metrics (ROUGE, METEOR, reward, ...) on an inference output.",
    ),
    Command(
        "export_llava",
        "settings_path",
        "turbo.settings.pipelines.export:ExportLlavaSettings",
        "turbo.pipelines.tools.export_llava:run",
        "Export a train_multimodal run (CLIP + llava projector + LM) as a transformers LLaVA folder.",
    ),
)


# commands of the original project that turbo does not run, and what to write instead
ORIGINAL_ONLY: dict[str, str] = {
    "train_reinforce": "train_reinforce (the original's REINFORCE with an RLOO baseline on Ray actors and a "
    "vLLM engine) is not a turbo command; write a train_grpo file instead (docs/rl.md): its "
    "train_dataset_settings give the prompts; reward_model_settings becomes reward_settings: "
    '[{"type": "reward_model", "model_settings": ...}]; reward_processor_type "rloo" becomes '
    "trainer_settings.scale_rewards: false (group-centred rewards, num_generations answers per prompt); "
    "kl_coef becomes trainer_settings.beta; temperature and actor_settings (vLLM) become rollout_settings "
    "(temperature, use_vllm); critic_type, deepspeed's Ray roles and the reward clipping and whitening "
    "options have no counterpart (train_ppo trains a value model)",
}


def not_a_command(name: str) -> str | None:
    """What to write instead of a command of the original project that turbo does not run."""
    return ORIGINAL_ONLY.get(name)


def load_object(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
