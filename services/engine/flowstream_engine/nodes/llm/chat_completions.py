"""OpenAI Chat Completions (`POST <base_url>/chat/completions`), spoken by most local servers.

A stream is `data:` chunks (`chat.completion.chunk`) ending with `data: [DONE]`; tool calls
arrive as `delta.tool_calls` fragments keyed by `index`, usage in a last chunk with no choices
(asked for with `stream_options.include_usage`). Only the first choice is read (`n` is not sent).
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

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Fields of the response object kept as the provider sent them.
_ENVELOPE = ("id", "created", "model", "system_fingerprint", "service_tier")


class ChatCompletions:
    path = "/chat/completions"
    terminal_event = "data: [DONE]"

    def request(self, config: LlmConfig, prompt: Prompt, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": config.model,
            "messages": prompt.as_messages(),
            "stream": stream,
        }
        if stream and config.include_usage:
            body["stream_options"] = {"include_usage": True}
        body |= optional(
            temperature=config.temperature, max_tokens=config.max_tokens, top_p=config.top_p
        )
        if config.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in config.tools
            ]
        choice = config.tool_choice
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            body["tool_choice"] = choice
        return body

    def read_event(self, event: str, data: str, answer: Answer) -> list[str]:
        if data.strip() == "[DONE]":
            answer.complete = True
            return []
        chunk = json_object(data)
        _raise_error(chunk)
        self._take_envelope(chunk, answer)
        pieces: list[str] = []
        for choice in chunk.get("choices") or []:
            if integer(mapping(choice).get("index")) != 0:
                continue
            delta = mapping(choice.get("delta"))
            pieces += answer.add_text(delta.get("content"))
            if isinstance(delta.get("refusal"), str):
                answer.refusal += delta["refusal"]
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                fragment = mapping(fragment)
                index = fragment.get("index")
                draft = answer.tool_call(index if isinstance(index, int) else position)
                function = mapping(fragment.get("function"))
                draft.take(call_id=fragment.get("id"), name=function.get("name"))
                answer.add_arguments(draft, arguments_text(function.get("arguments")))
            _take_finish(choice.get("finish_reason"), answer)
        return pieces

    def read_whole(self, payload: Mapping[str, Any], answer: Answer) -> None:
        _raise_error(payload)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise unreadable("a chat completion needs `choices`")
        self._take_envelope(payload, answer)
        first = mapping(choices[0])
        message = mapping(first.get("message"))
        if not message:
            raise unreadable("the first choice has no `message`")
        content = message.get("content")
        if isinstance(content, list):  # content parts, as some servers answer
            content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
        answer.add_text(content)
        if isinstance(message.get("refusal"), str):
            answer.refusal = message["refusal"]
        for position, call in enumerate(message.get("tool_calls") or []):
            call = mapping(call)
            function = mapping(call.get("function"))
            draft = answer.tool_call(position)
            draft.take(call_id=call.get("id"), name=function.get("name"))
            answer.add_arguments(draft, arguments_text(function.get("arguments")))
        _take_finish(first.get("finish_reason"), answer)
        answer.complete = True

    def rebuild(self, answer: Answer) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text if answer.text or not answer.tool_calls else None,
            "refusal": answer.refusal or None,
        }
        if answer.tool_calls:
            message["tool_calls"] = [
                {
                    "id": draft.id,
                    "type": "function",
                    "function": {"name": draft.name, "arguments": draft.arguments or "{}"},
                }
                for draft in answer.tool_calls.values()
            ]
        envelope = answer.envelope
        return {
            "id": envelope.get("id", ""),
            "object": "chat.completion",
            "created": envelope.get("created", int(time.time())),
            "model": answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": answer.native_finish or answer.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": answer.raw_usage,
            **{k: envelope[k] for k in ("system_fingerprint", "service_tier") if k in envelope},
        }

    @staticmethod
    def _take_envelope(chunk: Mapping[str, Any], answer: Answer) -> None:
        for key in _ENVELOPE:
            if chunk.get(key) is not None:
                answer.envelope.setdefault(key, chunk[key])
        answer.take_model(chunk.get("model"))
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            answer.take_usage(
                usage, integer(usage.get("prompt_tokens")), integer(usage.get("completion_tokens"))
            )


def _take_finish(native: object, answer: Answer) -> None:
    if isinstance(native, str):
        answer.finish(native, FINISH_REASONS.get(native, "stop"))
        if answer.refusal and native == "stop":
            answer.finish_reason = "content_filter"


def _raise_error(payload: Mapping[str, Any]) -> None:
    error = payload.get("error")
    if error:
        details = mapping(error)
        raise ProviderError(details.get("message", error), details.get("code"))
