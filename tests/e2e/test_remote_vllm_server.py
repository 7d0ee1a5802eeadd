"""train_grpo with rollouts on a vLLM server that wants an API key, through the real CLI, against a
stand-in on 127.0.0.1 that answers as `vllm serve --api-key KEY --enable-lora` does (401 without the key,
/v1/models, run-time LoRA loading, completions on token ids). The key comes from the environment variable
that rollout_settings.vllm_server.api_key_env names, reaches every request, and is written nowhere; an
unset variable, a wrong key or another served model stop the run with exit 2 and one message.
(tests/e2e/test_rl_vllm_server.py runs a real `vllm serve` on localhost.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import CONFIGS, REPO, read_jsonl, run_turbo
from ..standin import JsonHandler, serving

GRPO = CONFIGS / "train" / "grpo" / "lora.json"
BASE = str((REPO / "tests" / "fixtures" / "models" / "llama_tiny").resolve())  # as `vllm serve` names it
KEY = "remote-test-key-4f1c9a"
VARIABLE = "TURBO_E2E_VLLM_KEY"


class Vllm(JsonHandler):
    served = BASE
    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.authorized():
            self.answer(
                200, {"object": "list", "data": [{"id": self.served, "root": self.served, "parent": None}]}
            )

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.authorized():
            return
        if (
            self.path == "/v1/load_lora_adapter"
            and not (Path(body["lora_path"]) / "adapter_config.json").is_file()
        ):
            return self.answer(404, {"error": {"message": f"no adapter at {body['lora_path']}"}})
        if self.path == "/v1/completions":
            eos = body["stop_token_ids"][0]
            choices = [
                {
                    "index": p * body["n"] + j,
                    "token_ids": [5 + j, eos],
                    "logprobs": {"token_logprobs": [-1.0, -0.5]},
                }
                for p in range(len(body["prompt"]))
                for j in range(body["n"])
            ]
            return self.answer(200, {"choices": choices})
        return self.answer(200, "Success")

    def authorized(self) -> bool:
        header = self.headers.get("Authorization")
        self.requests.append((self.path, header))
        if header != f"Bearer {KEY}":
            self.answer(401, {"error": "Unauthorized"})
            return False
        return True


@pytest.fixture
def server() -> Iterator[str]:
    Vllm.requests, Vllm.served = [], BASE
    with serving(Vllm) as url:
        yield url


def grpo(folder: Path, url: str, expect: int, command: str = "train_grpo"):
    server = {"url": url, "api_key_env": VARIABLE, "timeout": 30}
    sets = [
        f"log_path={folder}",
        "trainer_settings.max_steps=2",
        f"rollout_settings.vllm_server={json.dumps(server)}",
    ]
    args = (
        ["validate", GRPO, "--command", "train_grpo"]
        if command == "validate"
        else [command, "--experiment_settings_path", GRPO]
    )
    return run_turbo(*args, *[x for s in sets for x in ("--set", s)], expect=expect)


def test_the_key_reaches_every_request_and_is_written_nowhere(
    fixture_models, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, KEY)
    folder = tmp_path / "run"
    result = grpo(folder, server, expect=0)
    rows = [row for row in read_jsonl(folder / "metrics.jsonl") if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2]
    routes = [path for path, _ in Vllm.requests]
    assert routes[0] == "/v1/models"  # checked before the first step
    assert routes.count("/v1/load_lora_adapter") == 2 and routes.count("/v1/completions") == 2
    assert {header for _, header in Vllm.requests} == {f"Bearer {KEY}"}
    assert f"vLLM server {server} serves {BASE} (API key accepted)" in result.stderr
    settings = json.loads((folder / "experiment_settings.json").read_text())
    assert settings["rollout_settings"]["vllm_server"]["api_key_env"] == VARIABLE
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert written and not [p for p in written if KEY.encode() in p.read_bytes()]
    assert KEY not in result.stdout + result.stderr


def test_an_unset_variable_is_reported_by_validate_and_the_run(
    fixture_models, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    for command in ("validate", "train_grpo"):
        result = grpo(tmp_path / "run", server, expect=2, command=command)
        assert "Traceback" not in result.stderr
        assert (
            f"rollout_settings.vllm_server.api_key_env: the environment variable {VARIABLE} is not set; "
            f"export it with the key the server at {server} was started with (vllm serve --api-key)"
        ) in result.stderr
    assert Vllm.requests == [] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("problem", ["wrong key", "another model"])
def test_a_refusal_or_another_model_stops_before_the_first_step(
    problem: str, fixture_models, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, "not-the-key" if problem == "wrong key" else KEY)
    if problem == "another model":
        Vllm.served = "/models/qwen_7b"
    result = grpo(tmp_path / "run", server, expect=2)
    assert "Traceback" not in result.stderr
    expected = (
        f"rollout_settings.vllm_server.url: the vLLM server at {server} refused /v1/models (401): it does "
        "not accept the key in the environment variable that rollout_settings.vllm_server.api_key_env names"
        if problem == "wrong key"
        else f"rollout_settings.vllm_server.url: the vLLM server at {server} serves /models/qwen_7b, not the "
        "policy's base model tests/fixtures/models/llama_tiny (model_settings.model_path)"
    )
    assert expected in result.stderr
    assert [path for path, _ in Vllm.requests] == ["/v1/models"]  # nothing loaded, nothing sampled
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not read_jsonl(
        tmp_path / "run" / "metrics.jsonl"
    )
