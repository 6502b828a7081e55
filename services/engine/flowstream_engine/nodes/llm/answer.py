"""What a model answered, whichever protocol carried it and however it arrived.

Each protocol folds its stream events (or its one JSON response) into an :class:`Answer`: text
pieces, tool calls rebuilt from argument fragments, usage, the finish reason in the provider's
own words, and the response object's other fields (`envelope`) so the whole response can be
rebuilt in the protocol's non-streaming shape. The same answer then gives the node's outputs, so
a streamed and a whole response of the same content produce the same outputs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flowstream_engine.nodes.base import NodeError

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
# An answer this large would not fit in the events that carry the node's outputs.
MAX_ANSWER_CHARS = 1_000_000
# A whole (non-streamed) answer is re-cut into at most this many `text_chunk`s.
MAX_SPLIT_CHUNKS = 32
_WORDS = re.compile(r"\s*\S+\s*|\s+")


class ProviderError(NodeError):
    """The provider said the request failed, in a stream event or an error body."""

    def __init__(self, message: object, code: object = None) -> None:
        text = message if isinstance(message, str) and message else "unknown error"
        suffix = f" ({code})" if isinstance(code, str) and code else ""
        super().__init__(f"the LLM endpoint reported an error: {text}{suffix}")


def unreadable(what: str) -> NodeError:
    return NodeError(f"the LLM endpoint sent an answer this node cannot read: {what}")


@dataclass
class ToolCallDraft:
    """One tool call as its fragments arrive; `arguments` is the JSON text so far."""

    id: str = ""
    name: str = ""
    arguments: str = ""
    item_id: str = ""  # the provider's own item id, where it has one (Responses `fc_…`)

    def take(self, call_id: object = None, name: object = None, item_id: object = None) -> None:
        # Some servers repeat the id and name in every fragment: the first one wins.
        if isinstance(call_id, str) and call_id and not self.id:
            self.id = call_id
        if isinstance(name, str) and name and not self.name:
            self.name = name
        if isinstance(item_id, str) and item_id and not self.item_id:
            self.item_id = item_id

    def parsed_arguments(self) -> dict[str, Any]:
        if not self.arguments.strip():
            return {}
        try:
            value = json.loads(self.arguments)
        except ValueError as exc:
            raise unreadable(
                f"the arguments of tool call {self.name or self.id!r} are not JSON: "
                f"{self.arguments[:200]!r}"
            ) from exc
        if not isinstance(value, dict):
            raise unreadable(f"the arguments of tool call {self.name!r} are not a JSON object")
        return value


def arguments_text(value: Any) -> str:
    """Arguments as JSON text: most servers send a string, a few an object."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Answer:
    pieces: list[str] = field(default_factory=list)
    refusal: str = ""
    tool_calls: dict[int | str, ToolCallDraft] = field(default_factory=dict)
    raw_usage: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    native_finish: str | None = None
    finish_reason: FinishReason | None = None
    model: str | None = None
    envelope: dict[str, Any] = field(default_factory=dict)
    # Set by the protocol when its terminal event arrived (or a whole response was read).
    complete: bool = False
    _chars: int = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add_text(self, piece: object) -> list[str]:
        """Record a text delta; returns it as a list of new pieces (empty when it is empty)."""
        if not isinstance(piece, str) or not piece:
            return []
        self._grow(len(piece))
        self.pieces.append(piece)
        return [piece]

    def add_arguments(self, draft: ToolCallDraft, fragment: object) -> None:
        if isinstance(fragment, str) and fragment:
            self._grow(len(fragment))
            draft.arguments += fragment

    def tool_call(self, key: int | str) -> ToolCallDraft:
        return self.tool_calls.setdefault(key, ToolCallDraft())

    def take_model(self, model: object) -> None:
        if isinstance(model, str) and model:
            self.model = model

    def finish(self, native: object, normalised: FinishReason | None) -> None:
        if isinstance(native, str) and native:
            self.native_finish = native
            self.finish_reason = normalised

    def take_usage(self, raw: Mapping[str, Any], prompt: int, completion: int) -> None:
        self.raw_usage = dict(raw)
        total = raw.get("total_tokens")
        self.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": total if isinstance(total, int) else prompt + completion,
        }

    def _grow(self, chars: int) -> None:
        self._chars += chars
        if self._chars > MAX_ANSWER_CHARS:
            raise NodeError(f"the LLM answer is longer than {MAX_ANSWER_CHARS} characters")

    def outputs(self) -> tuple[dict[str, Any], int]:
        """The node's outputs but `response`, and the tokens it used."""
        calls = [
            {"id": d.id, "name": d.name, "arguments": d.parsed_arguments()}
            for d in self.tool_calls.values()
        ]
        for call in calls:
            if not call["name"]:
                raise unreadable(f"tool call {call['id']!r} has no name")
        text = self.text
        finish = self.finish_reason or "stop"
        if calls and finish == "stop":
            # OpenAI says `stop` when `tool_choice` forced a function; a tool call is a tool call.
            finish = "tool_calls"
        if not text and not calls and finish != "content_filter":
            raise NodeError(f"the LLM endpoint returned an empty answer (finish reason: {finish})")
        usage: dict[str, Any]
        if self.usage is not None:
            usage = dict(self.usage)
        else:
            # No count from the server: about four characters per token, flagged as a guess.
            produced = len(text) + sum(len(d.arguments) for d in self.tool_calls.values())
            guess = max(1, math.ceil(produced / 4))
            usage = {"completion_tokens": guess, "total_tokens": guess, "estimated": True}
        outputs = {
            "text": text,
            "tool_calls": calls,
            "usage": usage,
            "finish_reason": finish,
            "model": self.model,
        }
        return outputs, int(usage["total_tokens"])


def split_text(text: str, max_chunks: int = MAX_SPLIT_CHUNKS) -> list[str]:
    """Cut a whole answer into `text_chunk`s on word boundaries: at most `max_chunks` pieces of
    about equal word counts, which join back to exactly `text`."""
    words = _WORDS.findall(text)
    if not words:
        return []
    per_chunk = math.ceil(len(words) / max_chunks)
    return ["".join(words[i : i + per_chunk]) for i in range(0, len(words), per_chunk)]
