"""train_sft under launchers: DDP (torchrun, accelerate launch) and DeepSpeed ZeRO-2/3 (torchrun), 2
processes, with trainer_settings as users write them on a CPU machine (no use_cpu).

Two processes with 2 samples each and one process with 4 see the same global batches (sequential
order), so the runs must log the same losses and token counts and end with the same weights: each
rank read its own shard, the metrics were reduced across ranks, and only rank 0 wrote the files.
Two launchers of one process each on two simulated nodes (127.0.0.1) must give the one node's run.
The other non-RL commands: tests/e2e/test_distributed_commands.py; the launchers: tests/distributed.py.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ..distributed import accelerate, killed_at_checkpoint, launch_nodes, torchrun
from ..distributed import launch as run_launcher
from ..helpers import CONFIGS, read_jsonl, run_turbo, train_rows

SFT = CONFIGS / "train" / "sft" / "lora.json"
STEPS = 4
COMMON = [
    *("--set", f"trainer_settings.max_steps={STEPS}"),
    *("--set", "trainer_settings.save_steps=2"),
    *("--set", "trainer_settings.train_sampling_strategy=sequential"),
    *("--set", "trainer_settings.evaluation_strategy=no"),
    *("--set", "cherry_pick_settings=null"),
    *("--set", "trainer_settings.no_cuda=false"),  # the fixture sets it; users on CPU do not
]

pytestmark = pytest.mark.slow


def sft_arguments(folder: Path, *settings: str) -> list[str]:
    """`train_sft ...` with 2 samples per process (for 2 processes)."""
    arguments = ["train_sft", "--experiment_settings_path", str(SFT), "--set", f"log_path={folder}", *COMMON]
    return arguments + [*settings, "--set", "trainer_settings.per_device_train_batch_size=2"]


def train_command(launcher: list[str], folder: Path, *settings: str) -> list[str]:
    """`<launcher> -m turbo train_sft ...` with 2 processes of 2 samples each."""
    return launcher + sft_arguments(folder, *settings)


def launch(launcher: list[str], folder: Path, *settings: str, timeout: int = 600) -> None:
    run_launcher(train_command(launcher, folder, *settings), timeout=timeout)


@pytest.fixture(scope="module")
def single(fixture_models, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("single") / "run"
    run_turbo(
        "train_sft",
        *("--experiment_settings_path", SFT, "--set", f"log_path={folder}"),
        *COMMON,
        *("--set", "trainer_settings.per_device_train_batch_size=4"),
    )
    return folder


@pytest.fixture(scope="module")
def ddp(single: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp") / "run"
    launch(torchrun(), folder)
    return folder


def assert_same_run(folder: Path, reference: Path) -> None:
    rows, expected = train_rows(folder), train_rows(reference)
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))  # written once, by rank 0
    assert [row["num_input_tokens_seen"] for row in rows] == [r["num_input_tokens_seen"] for r in expected]
    assert [row["loss"] for row in rows] == pytest.approx([r["loss"] for r in expected], abs=1e-5)
    actual = load_file(folder / "final" / "adapter_model.safetensors")
    weights = load_file(reference / "final" / "adapter_model.safetensors")
    lora = [name for name in weights if "lora_" in name]
    assert lora and set(lora) <= actual.keys()
    for name in actual:  # ZeRO-3 leaves out the frozen copies of resized embeddings
        torch.testing.assert_close(actual[name], weights[name], atol=1e-4, rtol=0, msg=name)
    assert all(actual[name].abs().sum() > 0 for name in lora if "lora_B" in name)  # B starts at zero
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert json.loads((folder / "experiment_settings.json").read_text())["log_path"] == str(folder)
    assert sorted(path.name for path in folder.iterdir() if path.name.startswith(".")) == []  # no leftovers


def test_ddp_with_torchrun_writes_each_step_once(ddp: Path, single: Path) -> None:
    """Every rank used to think it was the main one: each logged every step and wrote final/."""
    assert_same_run(ddp, single)


def test_ddp_with_accelerate_launch_matches_one_process(single: Path, tmp_path: Path) -> None:
    launch(accelerate(), tmp_path / "ddp")
    assert_same_run(tmp_path / "ddp", single)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")
@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_deepspeed_with_torchrun_matches_one_process(single: Path, tmp_path: Path, preset: str) -> None:
    """The first run compiles DeepSpeed's CPU helpers into TORCH_EXTENSIONS_DIR (about a minute)."""
    launch(torchrun(), tmp_path / preset, "--set", f"trainer_settings.deepspeed={preset}")
    assert_same_run(tmp_path / preset, single)
    assert (tmp_path / preset / "checkpoints" / "checkpoint-4" / "global_step4").is_dir()


def test_ddp_killed_and_resumed_gives_the_uninterrupted_weights(ddp: Path, tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    killed_at_checkpoint(train_command(torchrun(), folder), folder / "checkpoints" / "checkpoint-2")
    assert not (folder / "final").exists()

    launch(torchrun(), folder, "--set", "trainer_settings.resume_from_checkpoint=true")
    expected = load_file(ddp / "final" / "adapter_model.safetensors")
    actual = load_file(folder / "final" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(actual[name], tensor) for name, tensor in expected.items())  # bit-exact
    assert [row["step"] for row in train_rows(folder)] == list(range(1, STEPS + 1))


def test_two_nodes_give_the_one_node_run(ddp: Path, tmp_path: Path) -> None:
    """Two launchers (--nnodes 2 --node_rank 0|1, one process each) meeting at 127.0.0.1, as on two
    machines: the same world of 2 ranks, so the same adapter (bit-exact), rows and files as one node's."""
    folder = tmp_path / "nodes"
    launch_nodes(sft_arguments(folder), nnodes=2, nproc_per_node=1)
    assert_same_run(folder, ddp)
    expected = load_file(ddp / "final" / "adapter_model.safetensors")
    actual = load_file(folder / "final" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(actual[name], tensor) for name, tensor in expected.items())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_fsdp_on_gpus_matches_one_process(single: Path, tmp_path: Path) -> None:
    fsdp = ["--set", "trainer_settings.fsdp=full_shard auto_wrap"]
    fsdp += ["--set", 'trainer_settings.fsdp_config={"transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}']
    launch(torchrun(), tmp_path / "fsdp", *fsdp)
    rows, expected = train_rows(tmp_path / "fsdp"), train_rows(single)
    assert [row["loss"] for row in rows] == pytest.approx([r["loss"] for r in expected], abs=1e-3)
    assert (tmp_path / "fsdp" / "final" / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")
def test_zero3_cherry_picks_run_on_every_rank(fixture_models, tmp_path: Path) -> None:
    """Under ZeRO-3 a generate or forward pass needs every rank: the prompts are sharded (3 prompts over 2
    ranks, so one rank repeats one), each rank answers its shard, rank 0 gathers and writes once."""
    cherry = json.loads(SFT.read_text())["cherry_pick_settings"]
    cherry["dataset_settings"]["sources"][0]["num_samples"] = 3
    reward_model = {"model_path": str(fixture_models / "llama_rm"), "model_type": "seq_cls"}
    cherry["metric_settings"] = [
        {"type": "perplexity", "parameters": {"need_average": [True, False]}},
        {"type": "kl"},
        {"type": "length"},
        {  # a reward model outside DeepSpeed, whole on every rank
            "type": "reward",
            "parameters": {"model_settings": reward_model},
        },
    ]
    folder = tmp_path / "zero3"
    launch(
        torchrun(),
        folder,
        *("--set", "trainer_settings.deepspeed=zero3", "--set", "trainer_settings.evaluation_strategy=steps"),
        *("--set", "trainer_settings.eval_steps=2", "--set", f"cherry_pick_settings={json.dumps(cherry)}"),
    )
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "cherry_pick/cherry_pick_chat/kl" in row]
    assert all("cherry_pick/cherry_pick_chat/reward" in row for row in rows)
    assert [row["step"] for row in rows] == [2, 4]
    for row in rows:
        answers = read_jsonl(folder / "cherry_picks" / f"step_{row['step']}.jsonl")
        assert len(answers) == 3 and len({a["id"] for a in answers}) == 3
        perplexities = [a["metrics"]["perplexity"] for a in answers]
        assert all(p > 1 for p in perplexities)
        assert row["cherry_pick/cherry_pick_chat/perplexity"] == pytest.approx(sum(perplexities) / 3)
    assert (folder / "final" / "adapter_model.safetensors").is_file() and (folder / "report.html").is_file()
