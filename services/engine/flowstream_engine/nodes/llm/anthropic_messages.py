"""Anthropic Messages (`POST <base_url>/messages`).

A stream is `message_start`, then per content block `content_block_start` / `_delta` / `_stop`
(text as `text_delta`, tool input as `input_json_delta` fragments of a `tool_use` block), then
`message_delta` (stop reason, output usage) and `message_stop`; `ping` keeps it alive and
`error` ends it. Blocks are keyed by `index`. `max_tokens` is required by the API: the node sends
4096 unless the config sets it. Thinking blocks are not read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flowstream_shared.workflow import LlmConfig, NamedToolChoice

from flowstream_engine.nodes.llm.answer import (
    Answer,
    FinishReason,
    ProviderError,
    arguments_text,
    unreadable,
)
from flowstream_engine.nodes.llm.protocol import (
    Prompt,
    integer,
    json_object,
    mapping,
    optional,
)

DEFAULT_MAX_TOKENS = 4096
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


class AnthropicMessages:
    path = "/messages"
    terminal_event = "message_stop"

    def request(self, config: LlmConfig, prompt: Prompt, stream: bool) -> dict[str, Any]:
        # Anthropic takes the system prompt apart from the turns.
        system = [prompt.system] if prompt.system else []
        system += [t["content"] for t in prompt.turns if t["role"] == "system"]
        body: dict[str, Any] = {
            "model": config.model,
            "max_tokens": config.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [
                {"role": t["role"], "content": t["content"]}
                for t in prompt.turns
                if t["role"] != "system"
            ],
            "stream": stream,
        }
        body |= optional(
            system="\n\n".join(system) if system else None,
            temperature=config.temperature,
            top_p=config.top_p,
        )
        if config.tools:
            body["tools"] = [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                }
                for tool in config.tools
            ]
        choice = config.tool_choice
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = {"type": "tool", "name": choice.name}
        elif choice is not None:
            body["tool_choice"] = {"type": _TOOL_CHOICES[choice]}
        return body

    def read_event(self, event: str, data: str, answer: Answer) -> list[str]:
        payload = json_object(data)
        kind = payload.get("type") if isinstance(payload.get("type"), str) else event
        if kind == "error":
            error = mapping(payload.get("error"))
            raise ProviderError(error.get("message"), error.get("type"))
        if kind == "message_start":
            self._take_message(mapping(payload.get("message")), answer)
        elif kind == "content_block_start":
            return self._take_block(
                payload.get("index"), mapping(payload.get("content_block")), answer
            )
        elif kind == "content_block_delta":
            delta = mapping(payload.get("delta"))
            if delta.get("type") == "text_delta":
                return answer.add_text(delta.get("text"))
            if delta.get("type") == "input_json_delta":
                answer.add_arguments(
                    _draft(payload.get("index"), answer), delta.get("partial_json")
                )
        elif kind == "message_delta":
            delta = mapping(payload.get("delta"))
            _take_stop(delta.get("stop_reason"), answer)
            if delta.get("stop_sequence") is not None:
                answer.envelope["stop_sequence"] = delta["stop_sequence"]
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                # Output counts are cumulative; some gateways send input counts only here.
                _take_usage({**(answer.raw_usage or {}), **usage}, answer)
        elif kind == "message_stop":
            answer.complete = True
        return []

    def read_whole(self, payload: Mapping[str, Any], answer: Answer) -> None:
        if payload.get("type") == "error":
            error = mapping(payload.get("error"))
            raise ProviderError(error.get("message"), error.get("type"))
        if payload.get("type") != "message" or not isinstance(payload.get("content"), list):
            raise unreadable("an Anthropic answer is a `message` with `content`")
        self._take_message(payload, answer)
        for index, block in enumerate(payload["content"]):
            self._take_block(index, mapping(block), answer)
        _take_stop(payload.get("stop_reason"), answer)
        answer.complete = True

    def rebuild(self, answer: Answer) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if answer.pieces:
            content.append({"type": "text", "text": answer.text})
        for draft in answer.tool_calls.values():
            content.append(
                {
                    "type": "tool_use",
                    "id": draft.id,
                    "name": draft.name,
                    "input": draft.parsed_arguments(),
                }
            )
        envelope = answer.envelope
        return {
            "id": envelope.get("id", f"msg_{int(time.time())}"),
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": content,
            "stop_reason": answer.native_finish,
            "stop_sequence": envelope.get("stop_sequence"),
            "usage": answer.raw_usage,
        }

    @staticmethod
    def _take_message(message: Mapping[str, Any], answer: Answer) -> None:
        for key in ("id", "stop_sequence"):
            if message.get(key) is not None:
                answer.envelope[key] = message[key]
        answer.take_model(message.get("model"))
        usage = message.get("usage")
        if isinstance(usage, Mapping):
            _take_usage(usage, answer)

    @staticmethod
    def _take_block(index: object, block: Mapping[str, Any], answer: Answer) -> list[str]:
        if block.get("type") == "text":
            return answer.add_text(block.get("text"))
        if block.get("type") == "tool_use":
            draft = _draft(index, answer)
            draft.take(call_id=block.get("id"), name=block.get("name"))
            tool_input = block.get("input")
            # A stream starts the block with `input: {}` and sends the JSON as deltas.
            if tool_input:
                answer.add_arguments(draft, arguments_text(tool_input))
        return []


def _draft(index: object, answer: Answer) -> Any:
    return answer.tool_call(index if isinstance(index, int) else str(index))


def _take_stop(native: object, answer: Answer) -> None:
    if isinstance(native, str):
        answer.finish(native, STOP_REASONS.get(native, "stop"))


def _take_usage(usage: Mapping[str, Any], answer: Answer) -> None:
    # Cached prompt tokens are prompt tokens too; Anthropic counts them apart.
    prompt = sum(
        integer(usage.get(key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    answer.take_usage(usage, prompt, integer(usage.get("output_tokens")))
