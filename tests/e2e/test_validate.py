"""`turbo validate` says what the run would say, all at once, each problem at its field path; the run
itself stops on the same preflight before it writes anything."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from ..helpers import CONFIGS, REPO, run_turbo

SFT = CONFIGS / "train" / "sft" / "lora.json"
LLAVA = CONFIGS / "train" / "multimodal" / "llava_lora.json"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    return path


def test_a_folder_as_records_path_fails_validate_and_the_run_alike(fixture_models, tmp_path: Path) -> None:
    data = json.loads(SFT.read_text())
    data["log_path"] = str(tmp_path / "run")
    data["train_dataset_settings"]["sources"][0]["records_path"] = str(tmp_path)
    path = write(tmp_path, data)
    expected = (
        f"train_dataset_settings.sources.0.records_path: {tmp_path} is a folder, expected a records file"
    )
    result = run_turbo("validate", path, "--command", "train_sft", expect=2)
    assert expected in result.stderr and "Traceback" not in result.stderr
    result = run_turbo("train_sft", "--experiment_settings_path", path, expect=2)
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_preflight_problem_at_once(fixture_models, tmp_path: Path) -> None:
    empty = tmp_path / "empty_model"
    empty.mkdir()
    records = tmp_path / "records.jsonl"
    records.write_text("")
    data = json.loads(SFT.read_text())
    data["model_settings"]["model_path"] = str(empty)
    data["train_dataset_settings"]["sources"][0]["records_path"] = str(tmp_path / "nope.jsonl")
    data["val_dataset_settings"]["sources"][0]["records_path"] = str(tmp_path)
    data["tokenizer_settings"] = {"tokenizer_path": str(records)}
    result = run_turbo("validate", write(tmp_path, data), "--command", "train_sft", expect=2)
    assert "valid settings for train_sft, but 4 problems before anything loads" in result.stderr
    for line in (
        f"model_settings.model_path: {empty} has no config.json",
        f"train_dataset_settings.sources.0.records_path: {tmp_path / 'nope.jsonl'} does not exist",
        f"val_dataset_settings.sources.0.records_path: {tmp_path} is a folder, expected a records file",
        f"tokenizer_settings.tokenizer_path: {records} is a file, expected a folder",
    ):
        assert line in result.stderr, result.stderr


def test_cross_field_rules_all_at_once_at_their_fields(tmp_path: Path) -> None:
    data = json.loads(SFT.read_text())
    del data["val_dataset_settings"]  # eval_strategy is 'steps'
    data["seed"], data["trainer_settings"]["seed"] = 1, 2
    data["model_settings"]["peft_settings"] = {"name": "PROMPT_TUNING"}
    data["train_dataset_settings"]["pack_to_max_length"] = True
    result = run_turbo("validate", write(tmp_path, data), "--command", "train_sft", expect=2)
    assert "3 problems in the settings" in result.stderr and "(top level)" not in result.stderr
    stderr = result.stderr
    assert "  trainer_settings.eval_strategy: is 'steps' but there is no val_dataset_settings" in stderr
    assert "  trainer_settings.seed: 2 and seed (1) disagree" in result.stderr
    assert "  train_dataset_settings.pack_to_max_length: cannot be used with PROMPT_TUNING" in result.stderr


def test_validate_checks_the_multimodal_shapes_before_loading(multimodal_models) -> None:
    result = run_turbo(
        "validate", LLAVA, "--command", "train_multimodal",
        "--set", "train_dataset_settings.n_modality_embeddings=9", expect=2,
    )  # fmt: skip
    assert "train_dataset_settings.n_modality_embeddings: 9, but the clip encoder" in result.stderr
    assert "set n_modality_embeddings: 16" in result.stderr


def test_an_ambiguous_file_asks_for_command_and_command_settles_it(fixture_models, tmp_path: Path) -> None:
    data = json.loads((CONFIGS / "inference" / "rm" / "pairs.json").read_text())
    data["dataset_settings"] = json.loads((CONFIGS / "inference" / "chat" / "base.json").read_text())[
        "dataset_settings"
    ]
    path = write(tmp_path, data)
    result = run_turbo("validate", path, expect=2)
    assert "inference_chat, inference_rm; pass --command" in result.stderr
    out = run_turbo("validate", path, "--command", "inference_rm").stdout
    assert out.startswith("valid settings for inference_rm")


def test_validate_with_the_preflight_imports_no_torch(multimodal_models) -> None:
    paths = [LLAVA]  # the shape check reads encoder configs
    if importlib.util.find_spec("vllm") is not None:
        paths.append(CONFIGS / "inference" / "chat" / "vllm.json")  # the vLLM check reads its version
    code = (
        "import sys\n"
        "from turbo.cli import main\n"
        f"for path in {[str(path) for path in paths]}:\n"
        "    args = ['validate', path]\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- validate runs what the run runs: RL, RAG, index and output paths (issue 19, issue 20 items 4, 7)

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
RAG_TRAIN = CONFIGS / "train" / "rag" / "lora.json"
RAG_INFERENCE = CONFIGS / "inference" / "rag" / "base.json"
CHAT_INFERENCE = CONFIGS / "inference" / "chat" / "base.json"
MERGE = CONFIGS / "merge" / "lora.json"
PREPROCESS = CONFIGS / "preprocessing" / "clip.json"


def refused(path: Path, command: str, flag: str, *overrides: str) -> str:
    """validate and the run both refuse the file with exit 2 and no traceback; the run's stderr."""
    sets = [item for setting in overrides for item in ("--set", setting)]
    checked = run_turbo("validate", path, "--command", command, *sets, expect=2)
    ran = run_turbo(command, f"--{flag}", path, *sets, expect=2)
    for result in (checked, ran):
        assert "Traceback" not in result.stderr, result.stderr
    return checked.stderr


def test_settings_errors_and_preflight_problems_in_one_message(fixture_models, tmp_path: Path) -> None:
    data = json.loads(SFT.read_text())
    data["log_path"] = str(tmp_path / "run")
    data["trainer_settings"]["learning_rat"] = 0.1  # a typo
    data["trainer_settings"]["num_train_epochs"] = -1  # out of range
    data["train_dataset_settings"]["sources"][0]["records_path"] = str(tmp_path / "nope.jsonl")
    stderr = refused(write(tmp_path, data), "train_sft", "experiment_settings_path")
    assert "2 problems in the settings, and 1 problem before anything loads" in stderr
    lines = [line.strip() for line in stderr.splitlines()[1:]]
    assert lines == [
        "trainer_settings.num_train_epochs: Input should be greater than 0; allowed: 0 < value <= 2147483647",
        "trainer_settings.learning_rat: unknown field; did you mean 'learning_rate'?",
        f"train_dataset_settings.sources.0.records_path: {tmp_path / 'nope.jsonl'} does not exist",
    ]
    assert not (tmp_path / "run").exists()


def test_a_python_reward_that_cannot_be_imported(fixture_models, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_rewards.py").write_text(
        '"""Rewards."""\n\n\ndef score(prompts, answers, references):\n    return [0.0] * len(answers)\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    log = f"log_path={tmp_path / 'run'}"

    def reward(function: str) -> str:
        return f'reward_settings=[{{"type": "python", "function": "{function}"}}]'

    stderr = refused(GRPO, "train_grpo", "experiment_settings_path", log, reward("no_such_module:score"))
    assert "reward_settings.0.function: no_such_module:score: no module named 'no_such_module'" in stderr
    stderr = refused(GRPO, "train_grpo", "experiment_settings_path", log, reward("my_rewards:scor"))
    module = tmp_path / "my_rewards.py"
    assert f"reward_settings.0.function: my_rewards:scor: {module} defines no 'scor'" in stderr
    good = reward("my_rewards:score")
    result = run_turbo("validate", GRPO, "--command", "train_grpo", "--set", log, "--set", good)
    assert result.stdout.startswith("valid settings for train_grpo")
    assert not (tmp_path / "run").exists()


def test_a_vector_size_that_does_not_match_the_encoder(rag_models, tmp_path: Path) -> None:
    width = "model_settings.retrieval_settings.retrieval_vector_size=768"
    log = f"log_path={tmp_path / 'run'}"
    stderr = refused(RAG_TRAIN, "train_rag", "experiment_settings_path", log, width)
    assert (
        "model_settings.retrieval_settings.retrieval_vector_size: 768, but the question encoder at "
        "tests/fixtures/models/bert_tiny gives vectors of width 64"
    ) in stderr
    assert not (tmp_path / "run").exists()


def test_an_index_of_the_wrong_dimension(rag_models, tmp_path: Path) -> None:
    import faiss

    index = tmp_path / "index.faiss"
    faiss.write_index(faiss.IndexFlatIP(32), str(index))
    entry = "inference_settings.0.model_settings"
    save = f"save_path={tmp_path / 'out'}"
    where = f"{entry}.index_settings.index_path={index}"
    stderr = refused(RAG_INFERENCE, "inference_rag", "inference_settings_path", save, where)
    assert (
        f"{entry}.index_settings.index_path: {index} holds vectors of width 32, but the question encoder at "
        "tests/fixtures/models/bert_tiny gives 64"
    ) in stderr
    not_an_index = tmp_path / "notes.txt"
    not_an_index.write_text("hello, not a faiss index\n")
    where = f"{entry}.index_settings.index_path={not_an_index}"
    stderr = refused(RAG_INFERENCE, "inference_rag", "inference_settings_path", save, where)
    assert f"{entry}.index_settings.index_path: {not_an_index} is not a faiss index file" in stderr
    assert not (tmp_path / "out").exists()


def test_the_original_rag_file_gets_its_width_from_the_encoder(rag_models, tmp_path: Path) -> None:
    """The original's train_rag file sets no retrieval_vector_size: the encoder's width (64) is taken."""
    original = CONFIGS / "original" / "train" / "rag" / "base.json"
    assert "retrieval_vector_size" not in original.read_text()
    out = run_turbo("validate", original, "--command", "train_rag", "--set", f"log_path={tmp_path / 'run'}")
    assert out.stdout.startswith("valid settings for train_rag")
    from turbo.modeling.rag.encoder import vector_size
    from turbo.settings.loading import load_settings
    from turbo.settings.pipelines.train.rag import RagExperimentSettings

    settings = load_settings(original, RagExperimentSettings)
    assert settings.model_settings.retrieval_settings.retrieval_vector_size is None
    assert vector_size(settings.model_settings, "model_settings") == 64  # what the run searches with
    ours = json.loads(RAG_TRAIN.read_text())
    del ours["model_settings"]["retrieval_settings"]["retrieval_vector_size"]
    ours["log_path"] = str(tmp_path / "run")
    assert run_turbo("validate", write(tmp_path, ours), "--command", "train_rag").returncode == 0


def test_output_paths_that_cannot_be_written(fixture_models, multimodal_models, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    stderr = refused(SFT, "train_sft", "experiment_settings_path", "log_path=/proc/turbo_run")
    assert "log_path: no folder can be made in /proc: " in stderr
    stderr = refused(GRPO, "train_grpo", "experiment_settings_path", f"log_path={blocker}")
    assert f"log_path: {blocker} is a file, not a folder" in stderr
    stderr = refused(CHAT_INFERENCE, "inference_chat", "inference_settings_path", f"save_path={blocker}")
    assert f"save_path: {blocker} is a file, not a folder" in stderr
    out = tmp_path / "features"
    stderr = refused(PREPROCESS, "preprocess_multimodal_dataset", "settings_path",
                     f"output_file_path={blocker / 'features'}")  # fmt: skip
    assert f"output_file_path: {blocker} is a file, so no folder can be made under it" in stderr
    assert blocker.read_text() == "not a folder\n" and not out.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["a_file"]


def test_a_shard_size_that_is_not_a_size(fixture_models, tmp_path: Path) -> None:
    sets = [
        f"model_settings.model_path={fixture_models / 'llama_tiny'}",
        f"tokenizer_settings.tokenizer_path={fixture_models / 'llama_tiny'}",
        f"adapter_path={fixture_models / 'llama_tiny_adapter'}",
        f"save_path={tmp_path / 'merged'}",
        "max_shard_size=banana",
    ]
    stderr = refused(MERGE, "merge_adapters_to_base", "settings_path", *sets)
    assert "max_shard_size: 'banana' is not a size; write a whole number and a unit" in stderr
    assert not (tmp_path / "merged").exists()
    for size in ("500MB", "10KiB", "1000000"):
        others = [item for setting in sets[:-1] for item in ("--set", setting)]
        command = ("validate", MERGE, "--command", "merge_adapters_to_base")
        result = run_turbo(*command, *others, "--set", f"max_shard_size={size}")
        assert result.stdout.startswith("valid settings for merge_adapters_to_base")


def test_validate_of_rl_rag_and_index_files_imports_no_torch(rag_models, tmp_path: Path) -> None:
    files = [
        (GRPO, "train_grpo", f"log_path={tmp_path / 'grpo'}"),
        (RAG_TRAIN, "train_rag", f"log_path={tmp_path / 'rag'}"),
        (RAG_INFERENCE, "inference_rag", f"save_path={tmp_path / 'out'}"),
        (CONFIGS / "build_index" / "tiny.json", "build_index", f"index_settings.index_path={tmp_path / 'i'}"),
    ]
    code = (
        "import sys\n"
        "from turbo.cli import main\n"
        f"for path, command, override in {[(str(p), c, o) for p, c, o in files]}:\n"
        "    try:\n"
        "        main(['validate', path, '--command', command, '--set', override])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (command, exc.code)\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'peft', 'faiss') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_grpo_multimodal_shapes_are_checked_before_loading(multimodal_models, tmp_path: Path) -> None:
    llava = json.loads(LLAVA.read_text())
    projections = tmp_path / "projectors.safetensors"
    projections.write_bytes(b"")  # only its presence is checked before loading
    parts = {
        "modality_encoder_settings_mapping": llava["modality_encoder_settings_mapping"],
        "modality_projector_mapping": llava["modality_projector_mapping"],
        "projections_path": str(projections),
    }
    model = {
        "model_path": str(multimodal_models / "llama_tiny"),
        "adapter_path": str(multimodal_models / "llama_tiny_adapter"),
        "is_trainable": True,
    }
    dataset = {**llava["train_dataset_settings"], "n_modality_embeddings": 9}
    stderr = refused(
        GRPO, "train_grpo", "experiment_settings_path", f"log_path={tmp_path / 'run'}",
        f"model_settings={json.dumps(model)}", f"train_dataset_settings={json.dumps(dataset)}",
        f"multimodal_settings={json.dumps(parts)}",
    )  # fmt: skip
    assert "train_dataset_settings.n_modality_embeddings: 9, but the clip encoder" in stderr
    assert "set n_modality_embeddings: 16" in stderr
    assert not (tmp_path / "run").exists()


def test_build_index_outputs_that_cannot_be_written(rag_models, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x\n")
    stderr = refused(
        CONFIGS / "build_index" / "tiny.json", "build_index", "settings_path",
        f"index_settings.index_path={tmp_path}", f"index_settings.passages_path={blocker / 'passages'}",
    )  # fmt: skip
    assert f"index_settings.index_path: {tmp_path} is a folder; name the index file to write" in stderr
    assert f"index_settings.passages_path: {blocker} is a file, so no folder can be made under it" in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]
