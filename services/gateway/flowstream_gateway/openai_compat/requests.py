"""The request bodies of the two OpenAI APIs, read into one conversation.

Bodies ignore fields they do not use (SDKs send many); `inputs` is a flowstream extension for
the workflow's other START inputs (`extra_body` in the SDKs). Only text content is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowstream_gateway.errors import invalid_param


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessageIn(_Body):
    role: str = Field(min_length=1, max_length=64)
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class _RunOptions(_Body):
    """flowstream extensions (`extra_body` in the SDKs): the run's queue priority and whether
    the result cache may answer it."""

    priority: int | None = Field(
        default=None, ge=0, le=9, description="0 (lowest) to 9 (highest) (extension)"
    )
    cache: bool = Field(default=True, description="false: bypass the result cache (extension)")


class ChatCompletionRequest(_RunOptions):
    model: str = Field(min_length=1, max_length=256, description="A workflow id or name")
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=1_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The workflow's other START inputs (extension)"
    )


class ResponsesRequest(_RunOptions):
    model: str = Field(min_length=1, max_length=256, description="A workflow id or name")
    input: str | list[dict[str, Any]] = Field(description="A text, or a list of input items")
    instructions: str | None = None
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The workflow's other START inputs (extension)"
    )


@dataclass(frozen=True)
class Conversation:
    messages: list[dict[str, str]]  # {role, content}, in order
    last_user: str


def _text(content: object) -> str:
    """A message's text: a string, or the text of its content parts (others are skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _conversation(messages: list[dict[str, str]], field: str) -> Conversation:
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise invalid_param(f"{field}: there is no user message")
    return Conversation(messages=messages, last_user=users[-1])


def chat_conversation(body: ChatCompletionRequest) -> Conversation:
    messages = [{"role": m.role, "content": _text(m.content)} for m in body.messages]
    return _conversation(messages, "messages")


def responses_conversation(body: ResponsesRequest) -> Conversation:
    messages = [{"role": "system", "content": body.instructions}] if body.instructions else []
    if isinstance(body.input, str):
        messages.append({"role": "user", "content": body.input})
    else:
        for item in body.input:
            # Messages only: tool outputs and other items have no place in a workflow's inputs.
            if item.get("type", "message") == "message" and isinstance(item.get("role"), str):
                messages.append({"role": item["role"], "content": _text(item.get("content"))})
    return _conversation(messages, "input")
