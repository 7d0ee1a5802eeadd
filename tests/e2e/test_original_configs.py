"""The original project's own fixture experiment files (tests/fixtures/configs/original/: the same keys,
nesting and values, model and data paths pointed at our tiny fixtures) pass `turbo validate --command`
and the cheap ones run end to end through the CLI for a few steps. A file that cannot work here is
refused with a message that says what to write instead (train_reinforce: a train_grpo file; train_lddpo
is train_dpo with trainer_settings.lc_alpha)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turbo.errors import SettingsError
from turbo.settings.commands import COMMANDS, not_a_command

from ..helpers import CONFIGS, REPO, read_jsonl, run_turbo

ORIGINAL = CONFIGS / "original"
FILES = sorted(str(path.relative_to(ORIGINAL)) for path in ORIGINAL.rglob("*.json"))

COMMAND_OF_FOLDER = {
    "train/sft": "train_sft",
    "train/dpo": "train_dpo",
    "train/kto": "train_kto",
    "train/rm": "train_rm",
    "train/classification": "train_classification",
    "train/ddpo": "train_ddpo",
    "train/lddpo": "train_lddpo",
    "train/multimodal": "train_multimodal",
    "train/rag": "train_rag",
    "train/reinforce": "train_reinforce",
    "inference/sft": "inference_chat",
    "inference/classification": "inference_classification",
    "inference/rm": "inference_rm",
    "inference/multimodal": "inference_multimodal",
    "inference/rag": "inference_rag",
    "utils/convert_to_base": "merge_adapters_to_base",
    "utils/preprocess": "preprocess_multimodal_dataset",
}
SAMPLING = {"base.json": "random_sample", "rm.json": "rm_sample", "rso.json": "rso_sample"}

SEQUENCE_PARALLEL = "sequence parallelism (Ulysses) is not available in turbo; remove sequence_parallel"
# files that cannot work here, and the part of the message that says what to write instead
REFUSED = {
    "train/sft/base_with_seq_p.json": SEQUENCE_PARALLEL,
    "train/sft/peft_with_seq_p.json": SEQUENCE_PARALLEL,
    "train/dpo/dpo_with_seq_p.json": SEQUENCE_PARALLEL,
    "train/rm/base_with_seq_p.json": SEQUENCE_PARALLEL,
    # greedy search cannot return 2 answers per prompt (transformers refuses it too)
    "train/sft/sft_with_rm_metric.json": "num_return_sequences=2 needs do_sample: true or num_beams >= 2",
    # vLLM serves no beam search
    "inference/sft/vllm_base.json": "beam search is not served by vLLM here; set num_beams: 1",
    # REINFORCE/RLOO on Ray actors: online RL here is train_grpo / train_ppo
    "train/reinforce/base.json": "write a train_grpo file instead",
}

# run end to end: file -> what the run leaves behind (relative to its output folder)
RUNS = {
    "train/sft/base.json": "final/adapter_model.safetensors",
    "train/sft/resume_from_checkpoint.json": "final/adapter_model.safetensors",
    "train/sft/prompt_tuning.json": "final/adapter_model.safetensors",
    "train/kto/base.json": "final/adapter_model.safetensors",
    "train/rm/base.json": "final/adapter_model.safetensors",
    "train/rm/pretrained_head.json": "final/adapter_model.safetensors",
    "train/classification/base.json": "final/adapter_model.safetensors",
    "train/ddpo/base.json": "final/adapter_model.safetensors",
    "train/lddpo/base.json": "final/adapter_model.safetensors",
    "train/dpo/simpo.json": "final/adapter_model.safetensors",
    "train/sft/sft_retrieval_utility.json": "final/adapter_model.safetensors",
    "train/rag/base.json": "final/generator/adapter_model.safetensors",
    "train/rag/end2end.json": "final/generator/adapter_model.safetensors",
    "inference/rag/base.json": "model_0/generation_0/test.jsonl",
    "inference/sft/base.json": "model_0/generation_0/chat_test.jsonl",
    "inference/classification/base.json": "model_0/classification_test.jsonl",
    "inference/rm/base.json": "model_0/rm_test.jsonl",
    "sampling/base.json": "test.jsonl",
    "sampling/rm.json": "test.jsonl",
    "sampling/rso.json": "test.jsonl",
    "utils/convert_to_base/merge_debug.json": "model.safetensors",
    "train/multimodal/llama_llava_base_clip.json": "final/projectors.safetensors",
    "train/multimodal/llama_llava_clip_pickle.json": "final/projectors.safetensors",
    "train/multimodal/llama_c_abs_clip_pickle.json": "final/projectors.safetensors",
    # the original's train_multimodal output layout (build_multimodal.py), answers scored by METEOR
    "inference/multimodal/llama_llava_clip_pickle.json": "model_0/generation_0/metrics.json",
}
# pre-encoded image features, written as the original does: beside the images, keyed by file name
CHERRY_PICKS = {  # train runs whose original file asks for cherry-picks at each evaluation
    "train/sft/base.json",
    "train/rm/base.json",
    "train/classification/base.json",
    "train/ddpo/base.json",
    "train/multimodal/llama_llava_base_clip.json",
    "train/multimodal/llama_c_abs_clip_pickle.json",
}


def command_of(name: str) -> str:
    folder = str(Path(name).parent)
    return SAMPLING[Path(name).name] if folder == "sampling" else COMMAND_OF_FOLDER[folder]


def test_the_original_fixture_files_are_all_here() -> None:
    assert len(FILES) >= 30, FILES
    # every file's command is in the command table, or one turbo refuses with what to run instead
    assert all(command_of(name) in COMMANDS or not_a_command(command_of(name)) for name in FILES)


@pytest.mark.parametrize("name", FILES)
def test_original_file_passes_validate(
    name: str, fixture_models: Path, multimodal_models: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    from turbo.pipelines.tools.validate import validate

    command = command_of(name)
    if command in ("train_rag", "inference_rag"):
        request.getfixturevalue("rag_models")  # the question encoder and the index
    monkeypatch.chdir(REPO)  # the files' paths are relative to the repository root, as in the original
    path = ORIGINAL / name
    if name in REFUSED:
        with pytest.raises(SettingsError) as caught:
            validate(path, [], command, data=False)
        assert REFUSED[name] in str(caught.value), str(caught.value)
        return
    lines = validate(path, [], command, data=False)
    assert lines[0] == f"valid settings for {command}"


def test_original_preprocessing_writes_features_beside_the_images(pre_encoded_images: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(pre_encoded_images), framework="pt") as handle:
        keys = sorted(handle.keys())
        shape = handle.get_tensor(keys[0]).shape
    assert keys == sorted(path.name for path in pre_encoded_images.parent.glob("*.png"))
    assert shape[0] == 225  # clip_tiny_225: 15 x 15 patches, the count the original's files name


def _output_key(data: dict) -> str:
    return "save_path" if "save_path" in data else "output_path" if "output_path" in data else "log_path"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_original_file_runs_end_to_end(
    name: str, fixture_models: Path, multimodal_models: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Through the real CLI, a few steps; only the output folder, the step count, the logger (no
    network: wandb blocks become logging_type none) and the RAG files' encoder width are overridden."""
    command = command_of(name)
    if "pickle" in name:
        request.getfixturevalue("pre_encoded_images")
    if command in ("train_rag", "inference_rag"):
        request.getfixturevalue("rag_models")  # the question encoder and the index
    data = json.loads((ORIGINAL / name).read_text())
    output = tmp_path / "out"
    overrides = [f"{_output_key(data)}={output}"]  # RAG: the width is the encoder's
    trainer_key = next((key for key in ("trainer_settings", "training_arguments") if key in data), None)
    if trainer_key is not None:
        overrides.append(f"{trainer_key}.max_steps=2")
    logging_key = next((key for key in ("logging_settings", "wandb_settings") if key in data), None)
    if logging_key is not None:
        overrides.append(f'{logging_key}={{"logging_type": "none"}}')
    flag = COMMANDS[command].flag
    run_turbo(command, f"--{flag}", ORIGINAL / name, *(item for o in overrides for item in ("--set", o)))
    produced = output / RUNS[name]
    assert produced.is_file() and produced.stat().st_size > 0, sorted(output.rglob("*"))
    if trainer_key is not None:
        rows = read_jsonl(output / "metrics.jsonl")
        assert [row["step"] for row in rows if "loss" in row] == [1, 2]
        if name in CHERRY_PICKS:
            assert (output / "cherry_picks" / "step_2.jsonl").is_file(), sorted(output.rglob("*"))
    elif produced.suffix == ".jsonl":
        assert read_jsonl(produced)


@pytest.mark.slow
def test_original_dpo_syncs_a_reference_that_carries_the_loaded_adapter(
    fixture_models: Path, tmp_path: Path
) -> None:
    """dpo/base.json: sync_ref_model with adapter_path and use_sft_model (its cherry-pick metrics
    emptied). Every optimizer step the reference becomes the policy (alpha 1), so at step 3 (the first
    step after one with a learning rate above 0: warmup starts at 0) both score the batch alike; a frozen
    reference scores it as the starting adapter did (about 1e-3 apart here)."""
    output = tmp_path / "out"
    run_turbo(
        "train_dpo",
        *("--experiment_settings_path", ORIGINAL / "train/dpo/base.json"),
        *("--set", f"log_path={output}"),
        *("--set", "cherry_pick_settings.metric_settings=[]"),
        *("--set", "trainer_settings.max_steps=3"),
        *("--set", 'wandb_settings={"logging_type": "none"}'),
    )
    rows = [row for row in read_jsonl(output / "metrics.jsonl") if "loss" in row]
    assert [row["step"] for row in rows] == [1, 2, 3]
    for name in ("chosen", "rejected"):
        assert rows[2][f"logps/ref_{name}"] == pytest.approx(rows[2][f"logps/{name}"], abs=1e-6)
    # use_sft_model: the policy's rewards against the frozen starting model, beside the reference's; at
    # step 1 both references are the starting model, at step 3 only the synced one follows the policy
    for name in ("chosen", "rejected", "margins", "accuracies"):
        assert rows[0][f"rewards/sft_{name}"] == pytest.approx(rows[0][f"rewards/{name}"], abs=1e-7)
    assert rows[2]["rewards/chosen"] == pytest.approx(0, abs=1e-7)
    assert abs(rows[2]["rewards/sft_chosen"]) > 1e-6, rows[2]
    assert (output / "final" / "adapter_model.safetensors").is_file()


def test_the_original_rm_sampling_file_with_a_causal_lm_adapter_is_refused(fixture_models: Path) -> None:
    """sampling/rm.json as written, its seq_cls reward model given a CAUSAL_LM adapter: one message,
    exit 2, before any weights load."""
    result = run_turbo(
        "rm_sample", "--experiment_settings_path", ORIGINAL / "sampling/rm.json",
        "--set", "rm.adapter_path=tests/fixtures/models/llama_tiny_adapter", expect=2,
    )  # fmt: skip
    assert "is a CAUSAL_LM adapter, but model_type 'seq_cls' needs a SEQ_CLS adapter" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hub_id_for_the_vision_encoder_is_answered_with_give_a_local_path(multimodal_models: Path) -> None:
    """The original multimodal file with the hub id the original documentation writes for its encoder."""
    name = "train/multimodal/llama_llava_base_clip.json"
    hub_id = "openai/clip-vit-base-patch32"
    result = run_turbo(
        "validate", ORIGINAL / name, "--command", "train_multimodal",
        "--set", f"modality_encoder_settings_mapping.image.encoder_path={hub_id}", expect=2,
    )  # fmt: skip
    assert (
        f"modality_encoder_settings_mapping.image.encoder_path: {hub_id} does not exist: it looks like a "
        "model hub id; models are not downloaded, give a local path"
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_original_kto_with_sync_ref_model_keeps_the_reference_at_the_policy(
    fixture_models: Path, tmp_path: Path
) -> None:
    """kto/base.json (a loaded adapter, trained; its trainer block is the old training_arguments) with its
    sync_ref_settings turned on: after each optimizer
    step the reference becomes the policy, so from step 3 on both score each sample alike; with the file's
    sync_ref_model: false the reference stays the starting adapter and they part."""

    def rows(sync: bool) -> list[dict]:
        output = tmp_path / f"sync_{sync}"
        run_turbo(
            "train_kto", "--experiment_settings_path", ORIGINAL / "train/kto/base.json",
            "--set", f"log_path={output}", "--set", "training_arguments.max_steps=4",
            "--set", f"training_arguments.sync_ref_settings.sync_ref_model={str(sync).lower()}",
            "--set", 'logging_settings={"logging_type": "none"}',
        )  # fmt: skip
        return [row for row in read_jsonl(output / "metrics.jsonl") if "loss" in row]

    synced, frozen = rows(True), rows(False)
    assert [row["step"] for row in synced] == [1, 2, 3, 4]

    def gaps(steps: list[dict]) -> list[float]:
        return [
            abs(row[key] - row[key.replace("logps/ref_", "logps/")])
            for row in steps[2:]
            for key in row
            if key.startswith("logps/ref_")
        ]

    assert gaps(synced) and max(gaps(synced)) < 1e-6, gaps(synced)
    assert max(gaps(frozen)) > 1e-5, gaps(frozen)
