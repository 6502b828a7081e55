"""OpenAI Responses (`POST <base_url>/responses`).

A stream is typed events (`response.created`, `response.output_item.added`,
`response.output_text.delta`, `response.function_call_arguments.delta`, …) ending with
`response.completed` (`response.done` on some servers), `response.incomplete` or
`response.failed`; there is no `[DONE]`. Function calls are output items whose arguments arrive
as deltas keyed by item; the `*.done` events and the final response carry the whole value, which
wins over the deltas. An incomplete response stopped by `max_output_tokens` or a content filter
is an answer (`length`, `content_filter`), as in the other protocols; any other reason fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flowstream_shared.workflow import LlmConfig, NamedToolChoice

from flowstream_engine.nodes.base import NodeError
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

_FINAL = frozenset({"response.completed", "response.done"})
_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


class Responses:
    path = "/responses"
    terminal_event = "response.completed"

    def request(self, config: LlmConfig, prompt: Prompt, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": config.model,
            "input": [{"role": t["role"], "content": t["content"]} for t in prompt.turns],
            "stream": stream,
        }
        body |= optional(
            instructions=prompt.system,
            temperature=config.temperature,
            max_output_tokens=config.max_tokens,
            top_p=config.top_p,
        )
        if config.tools:
            # `strict` would demand schemas the author did not write for it: off.
            body["tools"] = [
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    "strict": False,
                }
                for tool in config.tools
            ]
        choice = config.tool_choice
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = {"type": "function", "name": choice.name}
        elif choice is not None:
            body["tool_choice"] = choice
        return body

    def read_event(self, event: str, data: str, answer: Answer) -> list[str]:
        payload = json_object(data)
        kind = payload.get("type") if isinstance(payload.get("type"), str) else event
        if kind == "error":
            error = mapping(payload.get("error")) or payload
            raise ProviderError(error.get("message"), error.get("code"))
        if kind in ("response.created", "response.in_progress", "response.queued"):
            self._take_envelope(mapping(payload.get("response")), answer)
        elif kind == "response.output_text.delta":
            return answer.add_text(payload.get("delta"))
        elif kind == "response.refusal.delta":
            answer.refusal += str(payload.get("delta") or "")
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = mapping(payload.get("item"))
            if item.get("type") == "function_call":
                self._take_call(
                    item, payload.get("output_index"), answer, whole=kind.endswith("done")
                )
            elif item.get("type") == "message" and kind.endswith("done") and not answer.pieces:
                # A server that sends the message only whole: its text is the answer.
                return self._take_message(item, answer)
        elif kind == "response.function_call_arguments.delta":
            draft = self._draft(payload, answer)
            answer.add_arguments(draft, payload.get("delta"))
        elif kind == "response.function_call_arguments.done":
            draft = self._draft(payload, answer)
            if isinstance(payload.get("arguments"), str):
                draft.arguments = payload["arguments"]
        elif kind in _FINAL or kind in ("response.incomplete", "response.failed"):
            return self._take_final(mapping(payload.get("response")), answer, streamed=True)
        return []

    def read_whole(self, payload: Mapping[str, Any], answer: Answer) -> None:
        if payload.get("object") != "response" and not isinstance(payload.get("output"), list):
            error = mapping(payload.get("error"))
            if error:
                raise ProviderError(error.get("message"), error.get("code"))
            raise unreadable("a Responses answer needs `output`")
        self._take_final(payload, answer, streamed=False)

    def rebuild(self, answer: Answer) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if answer.pieces or answer.refusal:
            content: list[dict[str, Any]] = []
            if answer.pieces:
                content.append({"type": "output_text", "text": answer.text, "annotations": []})
            if answer.refusal:
                content.append({"type": "refusal", "refusal": answer.refusal})
            output.append(
                {
                    "type": "message",
                    "id": answer.envelope.get("message_id", ""),
                    "status": "completed",
                    "role": "assistant",
                    "content": content,
                }
            )
        for draft in answer.tool_calls.values():
            output.append(
                {
                    "type": "function_call",
                    "id": draft.item_id,
                    "call_id": draft.id,
                    "name": draft.name,
                    "arguments": draft.arguments or "{}",
                    "status": "completed",
                }
            )
        incomplete = answer.finish_reason in ("length", "content_filter") and not answer.refusal
        response = {k: v for k, v in answer.envelope.items() if k != "message_id"}
        response.update(
            {
                "id": response.get("id", ""),
                "object": "response",
                "created_at": response.get("created_at", int(time.time())),
                "status": "incomplete" if incomplete else "completed",
                "error": None,
                "incomplete_details": {"reason": answer.native_finish} if incomplete else None,
                "model": answer.model,
                "output": output,
                "usage": answer.raw_usage,
            }
        )
        return response

    # Folding helpers

    @staticmethod
    def _take_envelope(response: Mapping[str, Any], answer: Answer) -> None:
        for key, value in response.items():
            if key not in ("output", "usage", "status", "error", "incomplete_details"):
                answer.envelope[key] = value
        answer.take_model(response.get("model"))

    @staticmethod
    def _draft(payload: Mapping[str, Any], answer: Answer) -> Any:
        index = payload.get("output_index")
        key = index if isinstance(index, int) else str(payload.get("item_id"))
        return answer.tool_call(key)

    @staticmethod
    def _take_call(item: Mapping[str, Any], index: object, answer: Answer, whole: bool) -> None:
        key = index if isinstance(index, int) else str(item.get("id") or item.get("call_id"))
        draft = answer.tool_call(key)
        draft.take(call_id=item.get("call_id") or item.get("id"), name=item.get("name"))
        draft.take(item_id=item.get("id"))
        arguments = arguments_text(item.get("arguments"))
        if whole and arguments:
            draft.arguments = arguments
        elif not draft.arguments:
            answer.add_arguments(draft, arguments)

    @staticmethod
    def _take_message(item: Mapping[str, Any], answer: Answer) -> list[str]:
        if isinstance(item.get("id"), str):
            answer.envelope.setdefault("message_id", item["id"])
        pieces: list[str] = []
        for part in item.get("content") or []:
            part = mapping(part)
            if part.get("type") == "output_text":
                pieces += answer.add_text(part.get("text"))
            elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                answer.refusal += part["refusal"]
        return pieces

    def _take_final(self, response: Mapping[str, Any], answer: Answer, streamed: bool) -> list[str]:
        status = response.get("status")
        if status == "failed" or (status is None and response.get("error")):
            error = mapping(response.get("error"))
            raise ProviderError(error.get("message", "the response failed"), error.get("code"))
        self._take_envelope(response, answer)
        pieces: list[str] = []
        text_before = bool(answer.pieces)
        for position, item in enumerate(response.get("output") or []):
            item = mapping(item)
            if item.get("type") == "message":
                if isinstance(item.get("id"), str):
                    answer.envelope.setdefault("message_id", item["id"])
                if not text_before:  # deltas already gave the text
                    pieces += self._take_message(item, answer)
            elif item.get("type") == "function_call":
                self._take_call(item, position, answer, whole=True)
        usage = response.get("usage")
        if isinstance(usage, Mapping):
            answer.take_usage(
                usage, integer(usage.get("input_tokens")), integer(usage.get("output_tokens"))
            )
        if status == "incomplete":
            reason = mapping(response.get("incomplete_details")).get("reason")
            normalised = _INCOMPLETE.get(str(reason))
            if normalised is None:
                raise NodeError(f"the LLM endpoint left the response incomplete: {reason}")
            answer.finish(str(reason), normalised)
        elif answer.refusal and not answer.pieces:
            answer.finish("refusal", "content_filter")
        else:
            answer.finish(
                "tool_calls" if answer.tool_calls else "stop",
                "tool_calls" if answer.tool_calls else "stop",
            )
        answer.complete = True
        return pieces if streamed else []
