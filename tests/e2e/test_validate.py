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
