"""Every non-RL train command besides train_sft (tests/e2e/test_distributed.py) under `torchrun
--nproc_per_node 2` (gloo, CPU), through the CLI, against one process with twice the per-device batch.

In sequential order the two ranks' batches together are the one process's batch, so the user must get
the same run: the same logged rows (loss, token counts and every metric of the command: reduced over
the ranks, not rank 0's half) written once per step, the same final weights up to float summation
order, one experiment folder holding the same files as the one process's.

The weights are not bit-exact: the two ranks' gradients are summed by an all-reduce in another order,
and Adam divides each element by its own magnitude, so an element whose gradient is near zero can move
by up to the learning rate either way (seen: 1 of 512 elements of a LoRA matrix of
train_multimodal_dpo off by 1e-4, 2 of 16k of train_classification's by 1-4e-5, after 2 steps at lr
3e-3). So each tensor must agree to 1e-5 in all but 1% of its elements; a rank on the wrong shard, a
loss normalised per rank or an update missing from the average moves most elements by about the
learning rate (train_rag's per-rank token mean did: 70% of a LoRA matrix off by up to 4e-3).

Each command is launched once per module and shared by its asserts; DPO also resumes a run killed
with -9 (SFT's kill test covers the checkpoint code the others share) and runs on two nodes simulated
on this machine.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ..distributed import killed_at_checkpoint, launch, launch_nodes, torchrun
from ..helpers import CONFIGS, read_jsonl, train_rows

pytestmark = pytest.mark.slow

TIMING = ("runtime", "per_second", "seconds", "flos")  # keys that end so measure the machine


@dataclass(frozen=True)
class Case:
    config: str  # under tests/fixtures/configs/train
    batch: int  # per device with 2 ranks; the one process gets twice as many
    steps: int = 2
    fixture: str = "fixture_models"  # the session fixture that builds its models
    settings: tuple[str, ...] = ()


ENCODER = "model_settings.question_encoder_settings"
NO_DROPOUT = f'{ENCODER}.model_kwargs={{"hidden_dropout_prob": 0, "attention_probs_dropout_prob": 0}}'
EVALUATED = ("trainer_settings.eval_strategy=steps", "trainer_settings.eval_steps=2")
NOT_CPU = "trainer_settings.use_cpu=false"
CASES = {
    # precomputed reference log-probs: every rank computes them before training; resumed below
    "train_dpo": Case("dpo/lora.json", 2, 4, settings=("trainer_settings.precompute_ref_log_probs=true",)),
    "train_kto": Case("kto/lora.json", 2),  # the adapter disabled as reference, KL pairs of the batch
    "train_rm": Case("rm/full.json", 2),
    "train_classification": Case("classification/base.json", 2),
    "train_ddpo": Case("ddpo/lora.json", 1),
    "train_multimodal": Case("multimodal/llava_lora.json", 1, fixture="multimodal_models"),
    "train_multimodal_dpo": Case("multimodal_dpo/llava_lora.json", 1, fixture="multimodal_models"),
    # evaluated with cherry-picks at step 2 (answers and retrieved ids from each rank's share, written
    # once), trainer_settings as a CPU user writes them (no use_cpu), and the question encoder without
    # dropout: each rank draws its own dropout masks, so with dropout the two ranks are another random
    # draw than the one process (both right, not equal)
    "train_rag": Case("rag/lora.json", 2, fixture="rag_models", settings=(*EVALUATED, NO_DROPOUT, NOT_CPU)),
}


def arguments(command: str, folder: Path, batch: int, *settings: str) -> list[str]:
    """`COMMAND --experiment_settings_path CONFIG --set ...`: the fixture's file, `steps` steps in
    sequential order with a checkpoint at step 2, no evaluation unless the case asks for it."""
    case = CASES[command]
    sets = [
        f"log_path={folder}",
        f"trainer_settings.max_steps={case.steps}",
        "trainer_settings.save_steps=2",
        "trainer_settings.logging_steps=1",
        "trainer_settings.train_sampling_strategy=sequential",
        "trainer_settings.eval_strategy=no",
        f"trainer_settings.per_device_train_batch_size={batch}",
        *case.settings,
        *settings,
    ]
    config = CONFIGS / "train" / case.config
    return [command, "--experiment_settings_path", str(config), *(a for s in sets for a in ("--set", s))]


@dataclass(frozen=True)
class Runs:
    single: Path  # one process, batch 2b
    ranks: Path  # torchrun, 2 processes of batch b


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """`runs(command)`: the one-process and the 2-process run of a command, launched once per module."""
    done: dict[str, Runs] = {}

    def run(command: str) -> Runs:
        if command not in done:
            case = CASES[command]
            request.getfixturevalue(case.fixture)
            root = tmp_path_factory.mktemp(command)
            launch([sys.executable, "-m", "turbo", *arguments(command, root / "single", 2 * case.batch)])
            launch(torchrun(nproc=2) + arguments(command, root / "ranks", case.batch))
            done[command] = Runs(root / "single", root / "ranks")
        return done[command]

    return run


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the final model, adapter or projector: {file/tensor name: tensor}."""
    files = sorted((folder / "final").rglob("*.safetensors"))
    assert files, f"no weights in {folder / 'final'}"
    return {f"{f.relative_to(folder)}/{name}": t for f in files for name, t in load_file(f).items()}


def experiment_files(folder: Path) -> list[str]:
    """The run's files, checkpoint folders by name only (their RNG states are one file per rank)."""
    paths = [p for p in folder.rglob("*") if "checkpoint-" not in str(p.parent.relative_to(folder))]
    return sorted(str(p.relative_to(folder)) for p in paths)


def assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Every tensor equal to 1e-5 in all but 1% of its elements (see the module's docstring)."""
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        off = int(((actual[name] - tensor).abs() > 1e-5).sum())
        assert off <= max(1, tensor.numel() // 100), (
            f"{name}: {off} of {tensor.numel()} elements off by > 1e-5"
        )


def assert_same_rows(folder: Path, reference: Path, steps: int) -> None:
    rows, expected = train_rows(folder), train_rows(reference)
    assert [row["step"] for row in rows] == list(range(1, steps + 1))  # each step written once
    assert len(read_jsonl(folder / "metrics.jsonl")) == len(read_jsonl(reference / "metrics.jsonl"))
    for row, want in zip(rows, expected, strict=True):
        assert row.keys() == want.keys()
        for key, value in want.items():
            if not key.endswith(TIMING) and isinstance(value, float | int):
                assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), (row["step"], key)


@pytest.mark.parametrize("command", list(CASES))
def test_two_processes_give_the_one_process_run(runs, command: str) -> None:
    single, ranks = runs(command).single, runs(command).ranks
    assert_same_rows(ranks, single, CASES[command].steps)
    assert_same_weights(final_weights(ranks), final_weights(single))
    assert experiment_files(ranks) == experiment_files(single)  # one copy of each, no rank's extra
    assert json.loads((ranks / "experiment_settings.json").read_text())["log_path"] == str(ranks)


def test_rag_cherry_picks_are_the_one_process_ones(runs, rag_models: Path) -> None:
    """Each rank answers its share of the cherry-pick questions and rank 0 writes them all once; the
    question encoder trains under DDP."""
    single, ranks = runs("train_rag").single, runs("train_rag").ranks
    rows = read_jsonl(ranks / "cherry_picks" / "step_2.jsonl")
    assert len(rows) == 2 and all(len(row["retrieved_ids"]) == 2 and row["answers"] for row in rows)
    assert rows == read_jsonl(single / "cherry_picks" / "step_2.jsonl")
    before = load_file(rag_models / "bert_tiny" / "model.safetensors")
    after = load_file(ranks / "final" / "question_encoder" / "model.safetensors")
    assert any(not torch.equal(tensor, before[name]) for name, tensor in after.items())  # it trains


def test_dpo_killed_and_resumed_gives_the_uninterrupted_weights(runs, tmp_path: Path) -> None:
    """kill -9 of the launcher and both ranks after the first checkpoint; the resumed run recomputes
    the reference log-probs and ends bit-exact with the uninterrupted 2-process run."""
    folder, uninterrupted = tmp_path / "killed", runs("train_dpo").ranks
    command = torchrun(nproc=2) + arguments("train_dpo", folder, 2)
    killed_at_checkpoint(command, folder / "checkpoints" / "checkpoint-2")
    assert not (folder / "final").exists()

    launch(
        torchrun(nproc=2) + arguments("train_dpo", folder, 2, "trainer_settings.resume_from_checkpoint=true")
    )
    expected, actual = final_weights(uninterrupted), final_weights(folder)
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[name], tensor) for name, tensor in expected.items())  # bit-exact
    assert [row["step"] for row in train_rows(folder)] == list(range(1, CASES["train_dpo"].steps + 1))


def test_dpo_on_two_nodes_gives_the_one_node_run(runs, tmp_path: Path) -> None:
    """Two launchers (--nnodes 2 --node_rank 0|1, one process each) meeting at 127.0.0.1, as two
    machines would: the same world of 2 ranks, so the same adapter, rows and files as one node's."""
    one_node = runs("train_dpo").ranks
    launch_nodes(arguments("train_dpo", tmp_path / "nodes", 2), nnodes=2, nproc_per_node=1)
    expected, actual = final_weights(one_node), final_weights(tmp_path / "nodes")
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[name], tensor) for name, tensor in expected.items())
    assert_same_rows(tmp_path / "nodes", one_node, CASES["train_dpo"].steps)
    assert experiment_files(tmp_path / "nodes") == experiment_files(one_node)
