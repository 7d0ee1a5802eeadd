"""Sampling from a separate vLLM server (`vllm serve`, OpenAI API) with the policy's LoRA adapter loaded at
run time: POST /v1/load_lora_adapter and /v1/unload_lora_adapter (the server runs with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora), and /v1/completions on token-id prompts with
the sampled token ids and their log-probs returned. Standard library only; imports no vllm.

A server elsewhere (not on localhost) may require an API key (`vllm serve --api-key`): it is read from
the environment variable that rollout_settings.vllm_server.api_key_env names and sent as
'Authorization: Bearer <key>' on every request; it is never logged nor kept in the settings. Before the
first step, check_server asks /v1/models and stops with one message (exit 2, naming the setting and the
URL) when the server refuses the key, does not answer in time, cannot be reached, or serves another base
model than the policy's."""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from turbo.errors import ModelError, SettingsError
from turbo.generators.rollout import Sample, no_media, samples

logger = logging.getLogger("turbo")


SETTING = "rollout_settings.vllm_server"


def request(
    url: str, route: str, body: dict[str, Any] | None, timeout: float, api_key: str | None = None
) -> Any:
    """POST `body` as JSON to the server (GET when None); its JSON answer (or text). ModelError naming
    the setting, the URL and the route on any failure: refused (401/403), too slow, unreachable, or
    another error with the server's message."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    where = f"{SETTING}.url: the vLLM server at {url}"
    call = urllib.request.Request(
        url.rstrip("/") + route,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise ModelError(f"{where} refused {route} ({exc.code}): {key_hint(api_key)}") from None
        detail = exc.read().decode(errors="replace")[:500]
        raise ModelError(f"{where}: {route} answered {exc.code}: {detail}") from None
    except TimeoutError:
        raise ModelError(too_slow(where, route, timeout)) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ModelError(too_slow(where, route, timeout)) from None
        raise ModelError(f"{where} is not reachable ({route}): {exc.reason}") from None
    except OSError as exc:
        raise ModelError(f"{where} is not reachable ({route}): {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_hint(api_key: str | None) -> str:
    if api_key is None:
        return (
            f"the server wants an API key; put it in an environment variable and name that variable in "
            f'{SETTING}.api_key_env (e.g. "api_key_env": "VLLM_API_KEY")'
        )
    return (
        f"it does not accept the key in the environment variable that {SETTING}.api_key_env names; "
        "set that variable to the key the server was started with (vllm serve --api-key)"
    )


def too_slow(where: str, route: str, timeout: float) -> str:
    return (
        f"{where} did not answer {route} within {timeout:g} s ({SETTING}.timeout); check that it is up "
        "and not overloaded, or raise the timeout"
    )


def post(url: str, route: str, body: dict[str, Any], timeout: float, api_key: str | None = None) -> Any:
    """POST JSON to the server; its JSON answer (or text). ModelError on any failure (request)."""
    return request(url, route, body, timeout, api_key)


def api_key_problem(server: Any) -> str | None:
    """What is wrong with the server's API key set-up (api_key_env names a variable that is not set), or
    None. Only the variable's presence is checked; the key never appears in a message."""
    if server is None or server.api_key_env is None or os.environ.get(server.api_key_env):
        return None
    return (
        f"{SETTING}.api_key_env: the environment variable {server.api_key_env} is not set; export it with "
        f"the key the server at {server.url} was started with (vllm serve --api-key)"
    )


def server_api_key(server: Any) -> str | None:
    """The key in the environment variable that api_key_env names; None when no key is set up."""
    problem = api_key_problem(server)
    if problem:
        raise SettingsError(problem)
    return os.environ[server.api_key_env] if server.api_key_env is not None else None


def same_model(expected: str, served: str) -> bool:
    """`served` (an id or root of /v1/models) names the model `expected` names: equal, the same folder
    once resolved, or the same last path component (the same model under another mount point)."""
    if expected == served:
        return True
    expected_path, served_path = Path(expected), Path(served)
    if expected_path.exists() and str(expected_path.resolve()) == served:
        return True
    return bool(expected_path.name) and expected_path.name == served_path.name


def check_server(
    url: str, model_path: str, served_model: str | None, timeout: float, api_key: str | None
) -> str:
    """Ask /v1/models before the first step; the served base model's id. ModelError when the server
    refuses, does not answer, or serves neither `served_model` nor the policy's base `model_path`."""
    answer = request(url, "/v1/models", None, timeout, api_key)
    entries = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise ModelError(f"{SETTING}.url: {url}/v1/models did not answer as a vLLM (OpenAI API) server does")
    bases = [entry for entry in entries if isinstance(entry, dict) and not entry.get("parent")]
    for entry in bases:
        names = [str(entry.get("id", "")), str(entry.get("root") or "")]
        if served_model is not None and served_model in names[:1]:
            return names[0]
        if served_model is None and any(same_model(model_path, name) for name in names if name):
            return names[0]
    served = ", ".join(str(entry.get("id")) for entry in bases) or "no model"
    wanted = (
        f"{served_model!r} ({SETTING}.served_model)"
        if served_model is not None
        else f"the policy's base model {model_path} (model_settings.model_path)"
    )
    raise ModelError(
        f"{SETTING}.url: the vLLM server at {url} serves {served}, not {wanted}; start it with that model, "
        f"or set {SETTING}.served_model to the name it serves the base model under (--served-model-name)"
    )


def load_adapter(url: str, name: str, path: str, timeout: float, api_key: str | None = None) -> None:
    """Load the adapter saved at `path` (as the server sees it) under `name`."""
    post(url, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, timeout, api_key)


def unload_adapter(url: str, name: str, timeout: float, api_key: str | None = None) -> None:
    post(url, "/v1/unload_lora_adapter", {"lora_name": name}, timeout, api_key)


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
    api_key: str | None = None,
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
    choices = post(url, "/v1/completions", body, timeout, api_key).get("choices", [])
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
    never mixes weights, and per run, so that several runs may share one server) and unloads the one
    before; `retain` older adapters stay loaded (and their folders kept) for answers still being sampled
    with them (rollout_settings.async); `close` unloads them all."""

    def __init__(
        self,
        tokenizer: Any,
        settings: Any,
        adapter_folder: Path,
        server_folder: str,
        api_key: str | None = None,
        retain: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.settings = settings  # RolloutSettings
        self.server = settings.vllm_server
        self.api_key = api_key  # from the environment (server_api_key); never logged
        self.adapter_folder = adapter_folder  # where this process saves (a Path)
        self.server_folder = server_folder  # the same folder as the server names it
        self.retain = retain
        self.synced_step: int | None = None
        self.adapters: list[str] = []  # loaded on the server, oldest first
        self.version = 0
        self.prefix = f"turbo-{uuid.uuid4().hex[:8]}"
        self.loads_adapters = True  # False on the ranks > 0 of a distributed run: rank 0 loads for all

    @property
    def loaded(self) -> str | None:
        """The adapter of the policy's current weights (the last synced), None before the first sync."""
        return self.adapters[-1] if self.adapters else None

    def sync(self, model: Any) -> None:
        self.version += 1
        name = f"{self.prefix}-{self.version}"
        getattr(model, "module", model).save_pretrained(str(self.adapter_folder / name))
        seen_as = f"{self.server_folder.rstrip('/')}/{name}"
        load_adapter(self.server.url, name, seen_as, self.server.timeout, self.api_key)
        self.adapters.append(name)
        while len(self.adapters) > self.retain + 1:
            self.unload(self.adapters.pop(0), keep_folder=False)

    def unload(self, name: str, keep_folder: bool) -> None:
        unload_adapter(self.server.url, name, self.server.timeout, self.api_key)
        if not keep_folder:
            shutil.rmtree(self.adapter_folder / name, ignore_errors=True)

    def close(self) -> None:
        """Unload the adapters from the server (the last one's folder stays: the policy of the last
        rollout). The ranks > 0 of a distributed run only forget them: rank 0 loaded them."""
        while self.adapters:
            name = self.adapters.pop(0)
            if self.loads_adapters:
                self.unload(name, keep_folder=not self.adapters)

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
        return self.sample_with(self.loaded or "", prompts, n, greedy, seed, stop)

    def sample_with(
        self,
        adapter: str,
        prompts: list[list[int]],
        n: int,
        greedy: bool,
        seed: int,
        stop: list[str] | None = None,
    ) -> list[Sample]:
        """`sample` with the adapter named `adapter` (one that is still loaded); safe from another thread."""
        answers, logps = sample_answer_ids_server(
            self.server.url,
            adapter,
            prompts,
            n=n,
            **self.settings.sampling(greedy),
            eos_token_id=self.tokenizer.eos_token_id,
            seed=seed,
            timeout=self.server.timeout,
            api_key=self.api_key,
            stop=stop,
        )
        return samples(prompts, n, answers, logps, self.tokenizer.eos_token_id)


@contextmanager
def open_server_engine(settings: Any, tokenizer: Any) -> Iterator[VllmServerEngine]:
    """The engine of an RL experiment's rollout_settings.vllm_server: adapters saved to adapter_path (None:
    <log_path>/rollout_adapter), named for the server as server_adapter_path; the last unloaded on exit.
    The server is checked first (check_server: the key, the answer, the base model). With
    rollout_settings.async, the engine samples ahead (generators/async_rollouts.py) and keeps the adapters
    of the answers in flight loaded."""
    server = settings.rollout_settings.vllm_server
    api_key = server_api_key(server)
    served = check_server(
        server.url, str(settings.model_settings.model_path), server.served_model, server.timeout, api_key
    )
    logger.info("vLLM server %s serves %s%s", server.url, served, " (API key accepted)" if api_key else "")
    folder = Path(server.adapter_path or Path(settings.log_path) / "rollout_adapter")
    # the ranks > 0 of a distributed run never save adapters, and must not write into log_path before
    # rank 0 has made it an experiment folder (its preflight would refuse the folder)
    if int(os.environ.get("RANK", "0")) == 0:
        folder.mkdir(parents=True, exist_ok=True)
    seen_as = server.server_adapter_path or str(folder.resolve())
    overlap = settings.rollout_settings.async_
    retain = 0 if overlap is None else overlap.max_staleness
    engine = VllmServerEngine(tokenizer, settings.rollout_settings, folder, seen_as, api_key, retain)
    try:
        if overlap is None:
            yield engine
        else:
            from turbo.generators.async_rollouts import AsyncEngine

            with AsyncEngine(engine, overlap.max_staleness) as ahead:
                yield ahead
    finally:
        engine.close()
