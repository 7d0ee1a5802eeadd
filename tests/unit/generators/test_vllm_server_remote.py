"""A vLLM server elsewhere, against a stand-in on 127.0.0.1 that answers as `vllm serve --api-key` does
(401 without the key, /v1/models with the served model, one deliberately slow route): the real client
sends the key from the environment variable the settings name, checks the served model, and stops with
one message naming the setting and the URL when refused, too slow, unreachable or serving another model.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from turbo.errors import ModelError, SettingsError
from turbo.generators.vllm_server import check_server, post, server_api_key
from turbo.pipelines.preflight.rl import server_api_key as preflight_key
from turbo.settings.rollout import VllmServerSettings

KEY = "s3cret-key-0123456789"


class Vllm(BaseHTTPRequestHandler):
    """/v1/models lists `served` (root: its path) and one LoRA (parent: served); /slow answers late."""

    served = "/models/llama_tiny"
    key: str | None = KEY
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self.authorized():
            return
        models = [
            {"id": self.served, "object": "model", "root": self.served, "parent": None},
            {"id": "turbo-x-1", "object": "model", "root": "/adapters/x-1", "parent": self.served},
        ]
        self.answer(200, {"object": "list", "data": models})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        if not self.authorized():
            return
        if self.path == "/slow":
            time.sleep(2)
        self.answer(200, "Success")

    def authorized(self) -> bool:
        self.seen.append(self.headers.get("Authorization"))
        if self.key is not None and self.headers.get("Authorization") != f"Bearer {self.key}":
            self.answer(401, {"error": "Unauthorized"})  # what vLLM's middleware answers
            return False
        return True

    def answer(self, code: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up waiting (the slow route)
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Vllm.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Vllm)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_key_is_sent_and_the_model_checked(server: str) -> None:
    assert check_server(server, "tests/fixtures/models/llama_tiny", None, 5, KEY) == Vllm.served
    assert check_server(server, "/elsewhere/llama_tiny", None, 5, KEY) == Vllm.served  # another mount
    assert check_server(server, "anything", "/models/llama_tiny", 5, KEY) == Vllm.served  # served_model
    assert post(server, "/v1/load_lora_adapter", {"lora_name": "a"}, 5, KEY) == "Success"
    assert Vllm.seen == [f"Bearer {KEY}"] * 4


def test_without_the_key_the_message_says_where_to_put_one(server: str) -> None:
    with pytest.raises(ModelError) as caught:
        check_server(server, "llama_tiny", None, 5, None)
    message = str(caught.value)
    assert message.startswith(f"rollout_settings.vllm_server.url: the vLLM server at {server} refused")
    assert "(401)" in message and "rollout_settings.vllm_server.api_key_env" in message
    assert Vllm.seen == [None]


def test_a_wrong_key_is_refused_and_never_repeated(server: str) -> None:
    with pytest.raises(ModelError) as caught:
        post(server, "/v1/completions", {"model": "m"}, 5, "wrong-key-987")
    message = str(caught.value)
    assert f"the vLLM server at {server} refused /v1/completions (401)" in message
    assert "does not accept the key" in message and "vllm serve --api-key" in message
    assert "wrong-key-987" not in message


def test_another_model_is_refused(server: str) -> None:
    with pytest.raises(ModelError) as caught:
        check_server(server, "tests/fixtures/models/qwen_tiny", None, 5, KEY)
    assert str(caught.value) == (
        f"rollout_settings.vllm_server.url: the vLLM server at {server} serves /models/llama_tiny, not the "
        "policy's base model tests/fixtures/models/qwen_tiny (model_settings.model_path); start it with that "
        "model, or set rollout_settings.vllm_server.served_model to the name it serves the base model under "
        "(--served-model-name)"
    )
    with pytest.raises(ModelError, match=r"not 'turbo-x-1' \(rollout_settings.vllm_server.served_model\)"):
        check_server(server, "llama_tiny", "turbo-x-1", 5, KEY)  # an adapter is no base model


def test_a_slow_server_and_an_unreachable_one(server: str) -> None:
    with pytest.raises(ModelError) as caught:
        post(server, "/slow", {}, 0.5, KEY)
    assert str(caught.value).startswith(
        f"rollout_settings.vllm_server.url: the vLLM server at {server} did not answer /slow within 0.5 s "
        "(rollout_settings.vllm_server.timeout)"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once the probe closes
    with pytest.raises(ModelError, match=rf"the vLLM server at {closed} is not reachable \(/v1/models\)"):
        check_server(closed, "llama_tiny", None, 5, None)


def test_the_key_comes_from_the_variable_the_settings_name(monkeypatch: pytest.MonkeyPatch) -> None:
    server = VllmServerSettings(url="http://gpu-node:8000", api_key_env="TURBO_TEST_VLLM_KEY")
    settings = SimpleNamespace(rollout_settings=SimpleNamespace(vllm_server=server))
    monkeypatch.delenv("TURBO_TEST_VLLM_KEY", raising=False)
    with pytest.raises(
        SettingsError, match="api_key_env: the environment variable TURBO_TEST_VLLM_KEY is not set"
    ):
        server_api_key(server)
    assert preflight_key(settings) == [
        "rollout_settings.vllm_server.api_key_env: the environment variable TURBO_TEST_VLLM_KEY is not set; "
        "export it with the key the server at http://gpu-node:8000 was started with (vllm serve --api-key)"
    ]
    monkeypatch.setenv("TURBO_TEST_VLLM_KEY", KEY)
    assert server_api_key(server) == KEY and preflight_key(settings) == []
    assert KEY not in server.model_dump_json()  # experiment_settings.json holds the name only


@pytest.mark.parametrize("value", [KEY, "sk-abc123", "0123456789abcdef0123456789abcdef", "token with spaces"])
def test_a_key_written_where_its_variable_name_goes_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VllmServerSettings(url="http://gpu-node:8000", api_key_env=value)
    assert "never the key itself" in str(caught.value)
    assert value not in str(caught.value).split("input_value")[0]  # the message does not repeat it


@pytest.mark.parametrize("name", ["VLLM_API_KEY", "my_key", "REMOTE_VLLM_KEY_2"])
def test_variable_names_are_accepted(name: str) -> None:
    assert VllmServerSettings(url="http://gpu-node:8000", api_key_env=name).api_key_env == name
