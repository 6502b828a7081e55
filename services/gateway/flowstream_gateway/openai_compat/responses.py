"""Responses answers: the typed event stream (`response.created` … `response.completed`), or
one `response` object. The answer is one assistant message with one `output_text` part."""

from __future__ import annotations

import json
import time
from typing import Any

from flowstream_gateway.hub import StreamedEvent
from flowstream_gateway.openai_compat.reading import RunReading


class ResponseWriter:
    """Builds the `response` object and its message item at each stage of a run."""

    def __init__(self, reading: RunReading, model: str, instructions: str | None) -> None:
        self.reading = reading
        compact = reading.run_id.replace("-", "")
        self.id = f"resp_{compact}"
        self.message_id = f"msg_{compact}"
        self.created_at = int(time.time())
        self.model = model
        self.instructions = instructions

    def message(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [self.part(text)]
        return {
            "id": self.message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    @staticmethod
    def part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        usage = None
        if status == "completed":
            prompt, completion, total = self.reading.usage()
            usage = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": total,
            }
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": None,
            "instructions": self.instructions,
            "max_output_tokens": None,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": False,
            "previous_response_id": None,
            "temperature": None,
            "tool_choice": "none",
            "tools": [],
            "top_p": None,
            "usage": usage,
            "metadata": {},
        }


def response_object(reading: RunReading, model: str, instructions: str | None) -> dict[str, Any]:
    """The blocking answer: the run's answer text as the one output message."""
    writer = ResponseWriter(reading, model, instructions)
    return writer.response("completed", [writer.message("completed", reading.answer)])


class ResponseEvents:
    """Writes a run's events as a Responses event stream."""

    def __init__(self, reading: RunReading, model: str, instructions: str | None) -> None:
        self.reading = reading
        self.writer = ResponseWriter(reading, model, instructions)
        self.sequence = 0

    def _event(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        data = json.dumps(body, ensure_ascii=False).encode()
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.writer.message_id, "output_index": 0, "content_index": 0}

    def opening(self) -> bytes:
        w = self.writer
        return (
            self._event("response.created", response=w.response("in_progress", []))
            + self._event("response.in_progress", response=w.response("in_progress", []))
            + self._event(
                "response.output_item.added", output_index=0, item=w.message("in_progress", None)
            )
            + self._event("response.content_part.added", **self._where(), part=w.part(""))
        )

    def on_event(self, item: StreamedEvent) -> bytes:
        out = b"".join(
            self._event("response.output_text.delta", **self._where(), delta=delta, logprobs=[])
            for delta in self.reading.take(item.event, item.payload)
        )
        if not item.is_final:
            return out
        if not self.reading.succeeded:
            code, message = self.reading.failure()
            return out + self._failed(code, message)
        w, text = self.writer, self.reading.streamed_text
        done = w.message("completed", text)
        return (
            out
            + self._event("response.output_text.done", **self._where(), text=text, logprobs=[])
            + self._event("response.content_part.done", **self._where(), part=w.part(text))
            + self._event("response.output_item.done", output_index=0, item=done)
            + self._event("response.completed", response=w.response("completed", [done]))
        )

    def lost(self, message: str) -> bytes:
        return self._failed("timeout", message)

    def _failed(self, code: str, message: str) -> bytes:
        error = {"code": code, "message": message}
        return self._event("response.failed", response=self.writer.response("failed", [], error))
