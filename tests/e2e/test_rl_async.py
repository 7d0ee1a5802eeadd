"""train_grpo with rollouts that overlap training (rollout_settings.async, max_staleness 1), through the
real CLI, against a stand-in on 127.0.0.1 that answers as `vllm serve --enable-lora` does (/v1/models,
run-time LoRA loading and unloading, completions on token ids with log-probs) and records which adapter
sampled each batch. (tests/e2e/test_rl_vllm_server.py runs a real `vllm serve`, with one overlapped run.)

Step t's answers are seeded seed + t, so the stand-in's log tells which policy sampled them: the first
step waits for its own (the adapter of step 0, staleness 0); every later one trains answers sampled with
the adapter of the step before (staleness 1), asked before that step trained."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ..helpers import CONFIGS, REPO, read_jsonl, run_turbo
from ..standin import JsonHandler, serving

pytestmark = pytest.mark.slow

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
BASE = str((REPO / "tests" / "fixtures" / "models" / "llama_tiny").resolve())
SEED = 42  # the config's
STEPS = 4  # one epoch: 16 prompts, 4 per step
SAMPLE_SECONDS = 0.3  # each completions request takes this long, as a server that is busy sampling


class Server(JsonHandler):
    """Records (route, body) per request, and per loaded adapter the hash of its weights; answers
    completions only for an adapter that is loaded (404 otherwise, as vLLM does)."""

    events: list[tuple[str, dict]] = []
    weights: dict[str, dict[str, torch.Tensor]] = {}
    loaded: set[str] = set()
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.answer(200, {"object": "list", "data": [{"id": BASE, "root": BASE, "parent": None}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.events.append((self.path, body))
            if self.path == "/v1/load_lora_adapter":
                self.weights[body["lora_name"]] = load_file(
                    Path(body["lora_path"]) / "adapter_model.safetensors"
                )
                self.loaded.add(body["lora_name"])
            elif self.path == "/v1/unload_lora_adapter":
                self.loaded.discard(body["lora_name"])
            elif self.path == "/v1/completions" and body["model"] not in self.loaded:
                return self.answer(
                    404, {"error": {"message": f"The model `{body['model']}` does not exist."}}
                )
        if self.path != "/v1/completions":
            return self.answer(200, "Success")
        time.sleep(SAMPLE_SECONDS)
        eos = body["stop_token_ids"][0]
        choices = [  # answer j of a group: j + 1 quotes, so the length reward tells them apart
            {"index": p * body["n"] + j, "token_ids": [5] * (j + 1) + [eos],
             "logprobs": {"token_logprobs": [-3.0] * (j + 1) + [-1.0]}}
            for p in range(len(body["prompt"])) for j in range(body["n"])
        ]  # fmt: skip
        self.answer(200, {"choices": choices})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    Server.events, Server.weights, Server.loaded = [], {}, set()
    with serving(Server) as url:
        yield url


def train(folder: Path, url: str, *more: str) -> None:
    """An overlapped GRPO run of STEPS steps (a checkpoint every 2)."""
    correction = {"level": "token", "mode": "truncate", "cap": 2.0}
    run_turbo(
        "train_grpo", "--experiment_settings_path", GRPO,
        "--set", f"log_path={folder}",
        "--set", f"trainer_settings.max_steps={STEPS}",
        "--set", "trainer_settings.save_steps=2",
        "--set", f"trainer_settings.rollout_correction={json.dumps(correction)}",
        "--set", f"rollout_settings.vllm_server={json.dumps({'url': url, 'timeout': 60})}",
        "--set", 'rollout_settings.async={"max_staleness": 1}',
        *more,
    )  # fmt: skip


@dataclass(frozen=True)
class Run:
    folder: Path
    events: list[tuple[str, dict]]  # what the server received, in order

    def routes(self, route: str) -> list[dict]:
        return [body for path, body in self.events if path == route]


@pytest.fixture(scope="module")
def run(fixture_models: Path, server: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One overlapped GRPO run; its folder and the server's log of it."""
    folder = tmp_path_factory.mktemp("grpo_async") / "run"
    start = len(Server.events)
    train(folder, server)
    return Run(folder, Server.events[start:])


def test_staleness_and_wait_are_logged_per_step(run: Run) -> None:
    rows = [row for row in read_jsonl(run.folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    assert [row["rollout/staleness"] for row in rows] == [0.0] + [1.0] * (STEPS - 1)
    assert all(row["rollout/wait_seconds"] >= 0 for row in rows)
    assert rows[0]["rollout/wait_seconds"] >= SAMPLE_SECONDS  # the first step samples its own answers
    assert all("rollout_correction/weight_mean" in row for row in rows)  # stale answers are corrected
    settings = json.loads((run.folder / "experiment_settings.json").read_text())
    assert settings["rollout_settings"]["async"] == {"max_staleness": 1}  # written as the file names it


def test_each_step_trains_answers_of_the_step_before(run: Run) -> None:
    completions = run.routes("/v1/completions")
    adapter_of_seed = {body["seed"]: body["model"] for body in completions}
    loads = [body["lora_name"] for body in run.routes("/v1/load_lora_adapter")]
    assert len(loads) == STEPS  # one adapter per step; loads[k] holds the policy after k steps
    # step 0 and step 1 are both sampled by the policy of step 0; step t by the policy of step t - 1
    expected = {SEED: loads[0], **{SEED + t: loads[t - 1] for t in range(1, STEPS)}}
    assert adapter_of_seed == expected
    assert len(completions) == STEPS  # nothing asked past max_steps
    # the batch of step t + 1 was asked before the adapter of step t + 1 was loaded (it overlapped step t)
    order = [body.get("seed", body.get("lora_name")) for route, body in run.events if route != "/v1/models"]
    for t in range(STEPS - 1):
        assert order.index(SEED + t + 1) < order.index(loads[t + 1])


def same(one: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> bool:
    return one.keys() == other.keys() and all(torch.equal(one[name], other[name]) for name in one)


def test_the_policy_trains_and_the_adapters_in_flight_stay_loaded(run: Run) -> None:
    loads = [body["lora_name"] for body in run.routes("/v1/load_lora_adapter")]
    policies = [Server.weights[name] for name in loads] + [
        load_file(run.folder / "final" / "adapter_model.safetensors")
    ]
    assert all(policies[0].keys() == policy.keys() and policy for policy in policies)
    for before, after in zip(policies, policies[1:], strict=False):
        assert not same(before, after)  # every step changed the adapter, the last one included
    unloaded = [body["lora_name"] for body in run.routes("/v1/unload_lora_adapter")]
    assert sorted(unloaded) == sorted(loads)  # every adapter unloaded by the end
    assert [p.name for p in (run.folder / "rollout_adapter").iterdir()] == [loads[-1]]


def test_a_resumed_run_samples_its_first_step_afresh(run: Run, server: str, tmp_path: Path) -> None:
    """The batch in flight at the checkpoint is not in it: the resumed run's first step samples its own
    answers with the restored policy (staleness 0), the next one overlaps again."""
    resumed = tmp_path / "resumed"
    shutil.copytree(run.folder, resumed)
    shutil.rmtree(resumed / "checkpoints" / f"checkpoint-{STEPS}")
    shutil.rmtree(resumed / "final")
    start = len(Server.events)
    train(resumed, server, "--set", "trainer_settings.resume_from_checkpoint=true")
    rows = [row for row in read_jsonl(resumed / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == list(range(1, STEPS + 1))
    assert [row["rollout/staleness"] for row in rows] == [0.0, 1.0, 0.0, 1.0]
    events = Server.events[start:]
    loads = [body["lora_name"] for path, body in events if path == "/v1/load_lora_adapter"]
    adapter_of_seed = {body["seed"]: body["model"] for path, body in events if path == "/v1/completions"}
    assert adapter_of_seed == {SEED + 2: loads[0], SEED + 3: loads[0]}  # both by the restored policy


def test_validate_refuses_async_without_a_server() -> None:
    result = run_turbo(
        "validate",
        GRPO,
        "--command",
        "train_grpo",
        "--set",
        'rollout_settings.async={"max_staleness": 1}',
        expect=2,
    )
    assert "Traceback" not in result.stderr
    assert "rollout_settings.async overlaps sampling on a vLLM server with training" in result.stderr
    assert "set rollout_settings.vllm_server" in result.stderr
