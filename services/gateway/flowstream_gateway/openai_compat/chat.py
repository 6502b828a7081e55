"""Chat Completions answers: `chat.completion.chunk` frames, or one `chat.completion`."""

from __future__ import annotations

import json
import time
from typing import Any

from flowstream_gateway.hub import StreamedEvent
from flowstream_gateway.openai_compat.reading import RunReading


def _frame(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def error_object(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"message": message, "type": kind, "param": None, "code": code}


def usage_object(reading: RunReading) -> dict[str, int]:
    prompt, completion, total = reading.usage()
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class ChatChunks:
    """Writes a run's events as a Chat Completions stream."""

    def __init__(self, reading: RunReading, model: str, include_usage: bool) -> None:
        self.reading = reading
        self.id = f"chatcmpl-{reading.run_id.replace('-', '')}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def opening(self) -> bytes:
        return _frame(self._chunk({"role": "assistant", "content": ""}))

    def on_event(self, item: StreamedEvent) -> bytes:
        out = b"".join(
            _frame(self._chunk({"content": delta}))
            for delta in self.reading.take(item.event, item.payload)
        )
        if not item.is_final:
            return out
        if not self.reading.succeeded:
            code, message = self.reading.failure()
            return out + _frame({"error": error_object(message, "server_error", code)}) + DONE
        out += _frame(self._chunk({}, "stop"))
        if self.include_usage:
            tail = self._chunk({})
            tail["choices"] = []
            tail["usage"] = usage_object(self.reading)
            out += _frame(tail)
        return out + DONE

    def lost(self, message: str) -> bytes:
        return _frame({"error": error_object(message, "server_error", "timeout")}) + DONE


def chat_completion(reading: RunReading, model: str) -> dict[str, Any]:
    """The blocking answer: the run's answer text as the assistant message."""
    return {
        "id": f"chatcmpl-{reading.run_id.replace('-', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reading.answer, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_object(reading),
    }
