"""Tools the policy may call in the middle of its answer (train_grpo, train_ppo, inference_chat): a search
over an index that build_index wrote, or the user's own Python function. The call format and the limits
of a trajectory are in ToolLoopSettings. Implementations: turbo/generators/tools (TOOLS)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from turbo.settings.base import StrictModel
from turbo.settings.rag import EncoderModelSettings, Pooling, RagIndexSettings, RetrievalSettings


class BaseToolSettings(StrictModel):
    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$",
        description="What the policy writes to call it: <NAME>argument</NAME> (tags format), or the "
        "function name of a chat-template tool call.",
    )
    timeout: float = Field(
        30.0, gt=0, description="Seconds one call may take; a slower call returns an error as its result."
    )


class RetrieverToolSettings(BaseToolSettings):
    """A search over an index written by build_index (a faiss file and its passages folder): the call's
    argument is the query, encoded as the index was (its turbo_encoding.json); the result is the n_docs
    nearest passages, formatted as the RAG pipeline formats them (title / text, joined by doc_sep)."""

    type: Literal["retriever"]
    index_settings: RagIndexSettings
    encoder_settings: EncoderModelSettings = Field(description="The question encoder of the index.")
    n_docs: int = Field(3, gt=0, description="Passages per call.")
    max_doc_length: int = Field(300, gt=0, description="Policy tokens kept of each passage (title + text).")
    title_sep: str = Field(" / ", description="Between a passage's title and its text.")
    doc_sep: str = Field(" // ", description="Between passages.")
    prefix: str = Field("", description='Put before every query for the encoder, e.g. "query: " (e5).')
    query_encoder_max_length: int = Field(512, gt=0, description="Query tokens kept for the encoder.")
    pooling: Pooling | None = Field(None, description="How queries are pooled. None: as build_index did.")
    normalize: bool | None = Field(None, description="L2-normalise query vectors. None: as build_index did.")
    batch: int = Field(32, gt=0, description="Queries per encoder forward.")

    def retrieval(self, width: int) -> RetrievalSettings:
        """The RAG pipeline's retrieval settings of this tool (queries `width` wide)."""
        return RetrievalSettings(
            n_docs=self.n_docs,
            title_sep=self.title_sep,
            doc_sep=self.doc_sep,
            prefix=self.prefix,
            max_doc_length=self.max_doc_length,
            retrieval_vector_size=width,
            retrieval_batch_size=self.batch,
            query_encoder_max_length=self.query_encoder_max_length,
            pooling=self.pooling,
            normalize=self.normalize,
        )


class PythonToolSettings(BaseToolSettings):
    """Your own function, imported and RUN AS YOUR CODE: `function(argument: str) -> str`, called with the
    call's argument text. The module must be importable (on PYTHONPATH or in the working folder)."""

    type: Literal["python"]
    function: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="'module:function', e.g. 'my_tools:lookup'."
    )


ToolSettings = Annotated[RetrieverToolSettings | PythonToolSettings, Field(discriminator="type")]


class ToolLoopSettings(StrictModel):
    """How tool calls are written and how long a trajectory may grow. A trajectory is kept as token ids:
    the policy's tokens exactly as sampled, each tool result tokenised once and appended; only the policy's
    tokens are trained."""

    tool_call_format: Literal["tags", "chat_template"] = Field(
        "tags",
        description="tags: the policy writes <NAME>argument</NAME>; generation stops at the closing tag and "
        "the result is appended as <result>...</result>. chat_template: the tokenizer's own tool calls "
        '(<tool_call>{"name": ..., "arguments": ...}</tool_call>, parsed as JSON) and the result as a '
        "`tool` message rendered by its chat template (templates that have one).",
    )
    max_turns: int = Field(4, ge=1, description="Policy turns per trajectory (a turn ends at a call).")
    max_tool_calls: int = Field(3, ge=0, description="Tool calls per trajectory.")
    max_total_tokens: int = Field(
        1024, gt=0, description="Tokens after the prompt per trajectory (policy and tool results)."
    )


def tool_problems(tools: list[Any], rewards: list[Any]) -> list[tuple[str, str]]:
    """Tool names are unique; a reward that names a tool names one of tool_settings."""
    problems: list[tuple[str, str]] = []
    names = [tool.name for tool in tools]
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.append((f"tool_settings.{index}.name", f"{name!r} is used twice; tool names are unique"))
    for index, reward in enumerate(rewards):
        tool = getattr(reward, "tool", None)
        if tool is not None and tool not in names:
            known = ", ".join(names) or "none (tool_settings is empty)"
            problems.append((f"reward_settings.{index}.tool", f"no tool named {tool!r}; tools: {known}"))
    return problems
