"""Sampling from a separate vLLM server (`vllm serve`, OpenAI API) with the policy's LoRA adapter loaded at
run time: POST /v1/load_lora_adapter and /v1/unload_lora_adapter (the server runs with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora), and /v1/completions on token-id prompts with
the sampled token ids and their log-probs returned. Standard library only; imports no vllm."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from turbo.errors import ModelError
from turbo.generators.rollout import Sample, no_media, samples


def post(url: str, route: str, body: dict[str, Any], timeout: float) -> Any:
    """POST JSON to the server; its JSON answer (or text). ModelError names the route and the server's
    message on any failure."""
    request = urllib.request.Request(
        url.rstrip("/") + route,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise ModelError(f"vLLM server {url}{route} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"vLLM server {url}{route} is not reachable: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_adapter(url: str, name: str, path: str, timeout: float) -> None:
    """Load the adapter saved at `path` (as the server sees it) under `name`."""
    post(url, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, timeout)


def unload_adapter(url: str, name: str, timeout: float) -> None:
    post(url, "/v1/unload_lora_adapter", {"lora_name": name}, timeout)


def sample_answer_ids_server(
    url: str,
    model: str,
    prompts: list[list[int]],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float | None,
    top_p: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | None = None,
    seed: int | None = None,
    timeout: float = 600.0,
    stop: list[str] | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """n answers per prompt as token ids (prompt-major), EOS kept, and the server's log-prob of each answer
    token; as sample_answer_ids_vllm, over HTTP. temperature None decodes greedily."""
    if not prompts:
        return [], []
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompts,
        "n": n,
        "max_tokens": max_new_tokens,
        "temperature": temperature or 0.0,
        "top_p": top_p if temperature else 1.0,
        "top_k": (top_k or 0) if temperature else 0,
        "logprobs": 0,
        "return_token_ids": True,
        "skip_special_tokens": False,
    }
    if eos_token_id is not None:
        body["stop_token_ids"] = [eos_token_id]
    if seed is not None:
        body["seed"] = seed
    if stop:  # the tool loop's closing tags, kept in the answer
        body["stop"] = stop
        body["include_stop_str_in_output"] = True
    choices = post(url, "/v1/completions", body, timeout).get("choices", [])
    if len(choices) != len(prompts) * n:
        raise ModelError(f"vLLM server {url} returned {len(choices)} answers for {len(prompts)} x {n} asked")
    answers: list[list[int]] = []
    logps: list[list[float]] = []
    for choice in sorted(choices, key=lambda c: c["index"]):  # index = prompt * n + answer
        ids = list(choice.get("token_ids") or [])
        values = (choice.get("logprobs") or {}).get("token_logprobs") or []
        if len(values) != len(ids):
            raise ModelError(f"vLLM server {url}: {len(values)} log-probs for {len(ids)} tokens")
        answers.append(ids)
        logps.append([float(value) for value in values])
    return answers, logps


class VllmServerEngine:
    """Rollouts on a separate vLLM server: `sync` saves the policy's LoRA adapter to a folder the server
    reads, loads it under a new name (turbo-<run>-<k>: a new name per step, so the server's prefix cache
    never mixes weights, and per run, so that several runs may share one server) and unloads the previous
    one; `close` unloads the last."""

    def __init__(self, tokenizer: Any, settings: Any, adapter_folder: Path, server_folder: str) -> None:
        self.tokenizer = tokenizer
        self.settings = settings  # RolloutSettings
        self.server = settings.vllm_server
        self.adapter_folder = adapter_folder  # where this process saves (a Path)
        self.server_folder = server_folder  # the same folder as the server names it
        self.synced_step: int | None = None
        self.loaded: str | None = None
        self.version = 0
        self.prefix = f"turbo-{uuid.uuid4().hex[:8]}"

    def sync(self, model: Any) -> None:
        self.version += 1
        name = f"{self.prefix}-{self.version}"
        getattr(model, "module", model).save_pretrained(str(self.adapter_folder / name))
        load_adapter(self.server.url, name, f"{self.server_folder.rstrip('/')}/{name}", self.server.timeout)
        if self.loaded is not None:
            unload_adapter(self.server.url, self.loaded, self.server.timeout)
            shutil.rmtree(self.adapter_folder / self.loaded, ignore_errors=True)
        self.loaded = name

    def close(self) -> None:
        """Unload the last adapter from the server (its folder stays: the policy of the last rollout)."""
        if self.loaded is not None:
            unload_adapter(self.server.url, self.loaded, self.server.timeout)
            self.loaded = None

    def sample(
        self,
        model: Any,
        prompts: list[list[int]],
        n: int,
        greedy: bool,
        seed: int,
        media: list[list[tuple[str, Any]]] | None = None,
        stop: list[str] | None = None,
    ) -> list[Sample]:
        no_media(media, "vLLM server")
        answers, logps = sample_answer_ids_server(
            self.server.url,
            self.loaded or "",
            prompts,
            n=n,
            **self.settings.sampling(greedy),
            eos_token_id=self.tokenizer.eos_token_id,
            seed=seed,
            timeout=self.server.timeout,
            stop=stop,
        )
        return samples(prompts, n, answers, logps, self.tokenizer.eos_token_id)


@contextmanager
def open_server_engine(settings: Any, tokenizer: Any) -> Iterator[VllmServerEngine]:
    """The engine of an RL experiment's rollout_settings.vllm_server: adapters saved to adapter_path (None:
    <log_path>/rollout_adapter), named for the server as server_adapter_path; the last unloaded on exit."""
    server = settings.rollout_settings.vllm_server
    folder = Path(server.adapter_path or Path(settings.log_path) / "rollout_adapter")
    folder.mkdir(parents=True, exist_ok=True)
    seen_as = server.server_adapter_path or str(folder.resolve())
    engine = VllmServerEngine(tokenizer, settings.rollout_settings, folder, seen_as)
    try:
        yield engine
    finally:
        engine.close()
