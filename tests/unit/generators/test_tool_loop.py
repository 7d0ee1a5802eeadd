"""The tool loop over a rollout engine (turbo.generators.tools.loop), on the tiny llama's tokenizer with a
scripted engine: the policy's tokens are kept exactly as sampled up to the closing tag, the result is
tokenised once and appended, generation resumes; limits stop runaway trajectories; a tool that raises,
times out, returns no text or gets bad arguments answers with its error; the loss mask of a collected
rollout covers exactly the policy's tokens."""

from __future__ import annotations

import json
import sys
import threading
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from turbo.errors import SettingsError
from turbo.generators.rollout import Sample, segment_rows
from turbo.generators.tools import TOOLS
from turbo.generators.tools.formats import ChatTemplateFormat, call_format
from turbo.generators.tools.loop import ToolEngine
from turbo.settings.tools import PythonToolSettings, ToolLoopSettings

TOOLS_FOLDER = Path(__file__).resolve().parents[2] / "fixtures" / "tools"
TINY = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "llama_tiny"


@pytest.fixture(scope="module")
def tokenizer(fixture_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TINY)


@pytest.fixture(autouse=True)
def tools_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS_FOLDER))


class ScriptedEngine:
    """Answers by how many results the trajectory holds: script[k] after k results; its log-probs are
    -(position + 1) so that kept log-probs can be traced; an answer ending with EOS is finished."""

    def __init__(self, tokenizer, script: list[str]) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.calls: list[list[list[int]]] = []

    def sample(self, model, prompts, n, greedy, seed, media=None, stop=None):
        self.calls.append(prompts)
        self.stops = stop
        out = []
        for prompt in prompts:
            text = self.tokenizer.decode(prompt)
            turn = min(text.count("<result>") + text.count("<|tool|>"), len(self.script) - 1)
            ids = self.tokenizer(self.script[turn], add_special_tokens=False)["input_ids"]
            if self.script[turn].endswith("!"):
                ids = [*ids, self.tokenizer.eos_token_id]
            for _ in range(n):
                logps = [-(i + 1.0) for i in range(len(ids))]
                out.append(Sample(list(prompt), ids, logps, ids[-1] == self.tokenizer.eos_token_id))
        return out


def run(tokenizer, script, function="agentic_tools:calc", n=1, timeout=2.0, **limits):
    engine = ScriptedEngine(tokenizer, script)
    settings = PythonToolSettings(type="python", name="calc", function=function, timeout=timeout)
    with ExitStack() as stack:
        tool = stack.enter_context(TOOLS["python"](settings, tokenizer))
        looped = ToolEngine(engine, {"calc": tool}, ToolLoopSettings(**limits))
        prompt = tokenizer("What is 2+3?", add_special_tokens=False)["input_ids"]
        return looped.sample(None, [prompt], n, True, 0), engine, prompt


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_call_result_and_resumed_answer_are_kept_as_tokens(tokenizer) -> None:
    samples, engine, prompt = run(tokenizer, ["<calc>2+3</calc> and more", "It is 5!"], n=2)
    assert len(samples) == 2
    sample = samples[0]
    call, result = ids(tokenizer, "<calc>2+3</calc>"), ids(tokenizer, "<result>5</result>")
    final = [*ids(tokenizer, "It is 5!"), tokenizer.eos_token_id]
    # the policy's tokens as sampled up to the closing tag (the rest of that turn dropped), the result
    # tokenised once, then the resumed turn
    assert sample.answer_ids == call + result + final
    assert sample.policy_mask == [True] * len(call) + [False] * len(result) + [True] * len(final)
    assert sample.logps[: len(call)] == [-(i + 1.0) for i in range(len(call))]
    assert sample.logps[len(call) : len(call) + len(result)] == [0.0] * len(result)
    assert sample.finished and sample.final_start == len(call) + len(result)
    # generation resumed on prompt + trajectory so far (token in, token out), stopping at a closing tag
    assert engine.calls[1][0] == prompt + call + result
    assert engine.stops == ["</calc>"]
    rows = segment_rows(sample, tokenizer)
    assert [(row["role"], row["trained"], row.get("tool")) for row in rows] == [
        ("policy", True, None),
        ("tool", False, "calc"),
        ("policy", True, None),
    ]
    assert rows[1]["text"] == "<result>5</result>" and rows[2]["text"] == "It is 5!"


def test_limits_stop_a_runaway_trajectory(tokenizer) -> None:
    always = ["<calc>1+1</calc>"]
    (sample,), _, _ = run(tokenizer, always, max_tool_calls=2, max_turns=10)
    roles = [segment.role for segment in sample.segments]
    assert roles == ["policy", "tool", "policy", "tool", "policy"] and not sample.finished
    (sample,), _, _ = run(tokenizer, always, max_tool_calls=10, max_turns=2)
    assert [segment.role for segment in sample.segments] == ["policy", "tool", "policy"]
    (sample,), _, _ = run(tokenizer, always, max_tool_calls=10, max_turns=10, max_total_tokens=40)
    assert len(sample.answer_ids) <= 40 and not sample.finished
    assert len(sample.logps) == len(sample.answer_ids) == sum(s.end - s.start for s in sample.segments)
    # a long final turn without its end token is cut as well
    (sample,), _, _ = run(tokenizer, ["<calc>1+1</calc>", "a long answer " * 10], max_total_tokens=40)
    assert len(sample.answer_ids) == 40 and not sample.finished
    assert [segment.role for segment in sample.segments] == ["policy", "tool", "policy"]


@pytest.mark.parametrize(
    ("function", "script", "expected"),
    [
        ("agentic_tools:broken", "<calc>2+3</calc>", "error: calc: RuntimeError: broken on '2+3'"),
        ("agentic_tools:calc", "<calc>two</calc>", "error: calc: ValueError"),
        ("agentic_tools:slow", "<calc>2+3</calc>", "error: calc: timed out after 0.2 s"),
        ("agentic_tools:not_text", "<calc>2+3</calc>", "error: calc: returned int, not text"),
        ("agentic_tools:calc", "2+3</calc>", "error: calc: no <calc> before </calc>"),
    ],
)
def test_a_failing_call_answers_with_its_error(tokenizer, function, script, expected) -> None:
    (sample,), _, _ = run(tokenizer, [script, "done!"], function=function, timeout=0.2)
    tool = sample.segments[1]
    assert tool.role == "tool" and tool.error and tool.tool == "calc"
    text = tokenizer.decode(sample.answer_ids[tool.start : tool.end])
    assert text.startswith(f"<result>{expected}")
    assert sample.finished  # the trajectory went on to its answer


def test_chat_template_format(tokenizer) -> None:
    with pytest.raises(SettingsError, match="chat template with `tool` messages"):
        call_format("chat_template", ["calc"], tokenizer)
    template = ChatTemplateFormat(("calc",), "<tool>", "</tool><assistant>")
    call = template.call('<tool_call>{"name": "calc", "arguments": {"expression": "2+3"}}</tool_call>')
    assert (call.name, call.argument, call.problem) == ("calc", "2+3", None)
    assert template.call('<tool_call>{"name": "web"}</tool_call>').problem.startswith("no tool named 'web'")
    assert template.call("<tool_call>{oops</tool_call>").problem.startswith("not a JSON tool call")
    assert template.call("no call") is None


def test_the_loss_mask_of_a_collected_rollout_covers_exactly_the_policy_tokens(tokenizer) -> None:
    """collect() on the tiny model with the loop: trained_mask is True on the policy's tokens only, the
    rewards read the final answer, the metrics count calls, turns and result tokens."""
    from transformers import AutoModelForCausalLM

    from turbo.trainers.rewards import build_rewards
    from turbo.trainers.rollout import collect, rollout_metrics, trained_mask

    model = AutoModelForCausalLM.from_pretrained(TINY)
    engine = ScriptedEngine(tokenizer, ["<calc>2+3</calc>", "It is 5!"])
    settings = PythonToolSettings(type="python", name="calc", function="agentic_tools:calc")
    from turbo.settings.rewards import ExactMatchRewardSettings, ToolCallRewardSettings

    rewards = build_rewards(
        [
            ExactMatchRewardSettings(type="exact_match"),
            ToolCallRewardSettings(type="tool_call", tool="calc"),
        ],
        tokenizer,
    )
    with TOOLS["python"](settings, tokenizer) as tool:
        looped = ToolEngine(engine, {"calc": tool}, ToolLoopSettings())
        prompt = ids(tokenizer, "What is 2+3?")
        feature = {"prompt_ids": prompt, "prompt": "What is 2+3?", "reference": "It is 5!", "id": "0"}
        rollout = collect(looped, model, tokenizer, [feature], rewards, n=2)
    call, result = ids(tokenizer, "<calc>2+3</calc>"), ids(tokenizer, "<result>5</result>")
    final = [*ids(tokenizer, "It is 5!"), tokenizer.eos_token_id]
    expected = [True] * len(call) + [False] * len(result) + [True] * len(final)
    mask = trained_mask(rollout)
    assert mask.tolist() == [expected, expected]
    assert rollout.answers == ["It is 5!", "It is 5!"]  # the final answer after the last result
    assert rollout.per_function == {"exact_match": [1.0, 1.0], "tool_call": [1.0, 1.0]}
    metrics = rollout_metrics(rollout, None)
    assert metrics["tools/calls_per_answer"] == 1.0 and metrics["turns"] == 2.0
    assert metrics["tools/result_tokens"] == len(result) and metrics["tools/errors"] == 0.0
    assert [row["trained"] for row in rollout.trajectories[0]] == [True, False, True]


def test_python_rewards_get_trajectories_only_when_they_take_them(tokenizer) -> None:
    from turbo.settings.rewards import PythonRewardSettings
    from turbo.trainers.rewards import build_rewards, score

    sys.modules.pop("agentic_tools", None)
    rewards = build_rewards(
        [PythonRewardSettings(type="python", function="agentic_tools:saw_trajectory")], tokenizer
    )
    trajectories = [[{"role": "policy", "text": "a"}, {"role": "tool", "text": "r"}], [{"role": "policy"}]]
    totals, _ = score(rewards, ["p", "p"], ["a", "b"], [None, None], [1, 1], trajectories)
    assert totals == [1.0, 0.0]


class ScriptedServer(BaseHTTPRequestHandler):
    """A stand-in vLLM server (the routes of tests/unit/generators/test_vllm_server.py) whose completions
    follow ScriptedEngine's script on the token ids it is sent."""

    tokenizer = None
    script: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        choices = []
        if self.path == "/v1/completions":
            engine = ScriptedEngine(self.tokenizer, self.script)
            for p, sample in enumerate(engine.sample(None, body["prompt"], body["n"], True, 0)):
                logprobs = {"token_logprobs": sample.logps}
                choices.append({"index": p, "token_ids": sample.answer_ids, "logprobs": logprobs})
        data = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_the_loop_runs_on_the_vllm_server_engine_token_for_token(tokenizer, tmp_path: Path) -> None:
    """The server engine (HTTP, token ids in and out) under the loop gives the trajectory the scripted
    in-process engine gives."""
    from turbo.generators.vllm_server import VllmServerEngine
    from turbo.settings.rollout import RolloutSettings

    script = ["<calc>2+3</calc> and more", "It is 5!"]
    ScriptedServer.tokenizer, ScriptedServer.script = tokenizer, script
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        rollout = RolloutSettings(vllm_server={"url": url, "timeout": 10.0})
        server = VllmServerEngine(tokenizer, rollout, tmp_path, str(tmp_path))
        settings = PythonToolSettings(type="python", name="calc", function="agentic_tools:calc")
        with TOOLS["python"](settings, tokenizer) as tool:
            looped = ToolEngine(server, {"calc": tool}, ToolLoopSettings())
            prompt = ids(tokenizer, "What is 2+3?")
            over_http = looped.sample(None, [prompt], 2, True, 0)
    finally:
        httpd.shutdown()
    in_process, _, _ = run(tokenizer, script, n=2)
    assert [s.answer_ids for s in over_http] == [s.answer_ids for s in in_process]
    assert [s.segments for s in over_http] == [s.segments for s in in_process]
    assert [s.logps for s in over_http] == [s.logps for s in in_process]


def test_the_chat_template_format_appends_a_tool_message(tokenizer) -> None:
    """A template with tool messages: the JSON call is parsed, the result rendered as the template renders
    a tool turn (after the end of the assistant turn the call stopped in), then the next assistant header."""
    import copy

    templated = copy.deepcopy(tokenizer)
    templated.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'tool' %}<|tool|>\n{{ m['content'] }}</s>\n"
        "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    call = '<tool_call>{"name": "calc", "arguments": {"expression": "2+3"}}</tool_call>'
    engine = ScriptedEngine(templated, [call + " more", "It is 5!"])
    settings = PythonToolSettings(type="python", name="calc", function="agentic_tools:calc")
    with TOOLS["python"](settings, templated) as tool:
        looped = ToolEngine(engine, {"calc": tool}, ToolLoopSettings(tool_call_format="chat_template"))
        (sample,) = looped.sample(None, [ids(templated, "What is 2+3?")], 1, True, 0)
    result = ids(templated, "</s>\n<|tool|>\n5</s>\n<|assistant|>\n")
    final = [*ids(templated, "It is 5!"), templated.eos_token_id]
    assert sample.answer_ids == ids(templated, call) + result + final
    assert engine.stops == ["</tool_call>"]
    assert [segment.role for segment in sample.segments] == ["policy", "tool", "policy"]
