"""Rollouts on a separate vLLM server, against a stand-in server speaking vLLM 0.32's routes: the adapter
is saved where the server reads it, loaded under a new name per step and the previous one unloaded;
completions are asked on token ids and read back prompt-major; server errors become ModelError."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from turbo.errors import ModelError
from turbo.generators.vllm_server import VllmServerEngine
from turbo.settings.rollout import RolloutSettings

EOS = 2


class StandIn(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((self.path, body))
        if (
            self.path == "/v1/load_lora_adapter"
            and not (Path(body["lora_path"]) / "adapter_config.json").is_file()
        ):
            return self.answer(404, {"error": {"message": f"no adapter at {body['lora_path']}"}})
        if self.path == "/v1/completions":
            if body["model"] != self.loaded():
                return self.answer(
                    404, {"error": {"message": f"The model `{body['model']}` does not exist."}}
                )
            choices = [
                {"index": p * body["n"] + j, "text": "", "token_ids": [prompt[-1] + j, EOS],
                 "logprobs": {"token_logprobs": [-0.5 - j, -0.1]}}
                for p, prompt in enumerate(body["prompt"]) for j in range(body["n"])
            ]  # fmt: skip
            return self.answer(200, {"choices": choices[::-1]})  # any order: `index` says which is which
        return self.answer(200, "Success")

    def loaded(self) -> str | None:
        names = [body["lora_name"] for path, body in self.calls if path.endswith("load_lora_adapter")]
        unloaded = {body["lora_name"] for path, body in self.calls if path.endswith("unload_lora_adapter")}
        alive = [name for name in names if name not in unloaded]
        return alive[-1] if alive else None

    def answer(self, code: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    StandIn.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class Policy:
    """What the engine needs of a PEFT model: save_pretrained writes the adapter folder."""

    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "adapter_config.json").write_text("{}")


def engine(url: str, folder: Path) -> VllmServerEngine:
    rollout = RolloutSettings(
        vllm_server={"url": url, "timeout": 10.0}, max_new_tokens=4, temperature=0.7, top_p=0.9, top_k=5
    )
    return VllmServerEngine(SimpleNamespace(eos_token_id=EOS), rollout, folder, str(folder))


def test_each_sync_loads_a_new_adapter_and_unloads_the_last(server: str, tmp_path: Path) -> None:
    rollouts = engine(server, tmp_path)
    rollouts.sync(Policy())
    rollouts.sync(Policy())
    run = rollouts.prefix
    assert run.startswith("turbo-") and run != engine(server, tmp_path).prefix  # runs may share a server
    assert [(path, body.get("lora_name")) for path, body in StandIn.calls] == [
        ("/v1/load_lora_adapter", f"{run}-1"),
        ("/v1/load_lora_adapter", f"{run}-2"),
        ("/v1/unload_lora_adapter", f"{run}-1"),
    ]
    assert StandIn.calls[1][1]["lora_path"] == str(tmp_path / f"{run}-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{run}-2"]  # the old adapter is deleted

    samples = rollouts.sample(Policy(), [[5, 6], [9]], n=2, greedy=False, seed=7)
    answers, logps = [s.answer_ids for s in samples], [s.logps for s in samples]
    assert answers == [[6, EOS], [7, EOS], [9, EOS], [10, EOS]]  # prompt-major, EOS kept
    assert logps == [[-0.5, -0.1], [-1.5, -0.1], [-0.5, -0.1], [-1.5, -0.1]]
    assert [s.prompt_ids for s in samples] == [[5, 6], [5, 6], [9], [9]]
    assert all(s.finished for s in samples)
    request = StandIn.calls[-1][1]
    assert request | {"prompt": None} == {
        "model": f"{run}-2", "prompt": None, "n": 2, "max_tokens": 4, "temperature": 0.7, "top_p": 0.9,
        "top_k": 5, "logprobs": 0, "return_token_ids": True, "skip_special_tokens": False,
        "stop_token_ids": [EOS], "seed": 7,
    }  # fmt: skip
    assert request["prompt"] == [[5, 6], [9]]
    rollouts.sample(Policy(), [[5]], n=1, greedy=True, seed=0)
    assert StandIn.calls[-1][1]["temperature"] == 0.0 and StandIn.calls[-1][1]["top_k"] == 0
    rollouts.close()
    assert StandIn.calls[-1] == ("/v1/unload_lora_adapter", {"lora_name": f"{run}-2"})


def test_server_errors_name_the_route_and_the_reason(server: str, tmp_path: Path) -> None:
    rollouts = engine(server, tmp_path)
    with pytest.raises(ModelError, match=r"/v1/completions answered 404: .*does not exist"):
        rollouts.sample(Policy(), [[1]], n=1, greedy=True, seed=0)  # no adapter loaded yet
    with pytest.raises(ModelError, match="is not reachable"):
        engine("http://127.0.0.1:9", tmp_path).sync(Policy())
