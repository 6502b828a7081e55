"""A run's events folded into what an OpenAI answer needs: text deltas, the answer, usage.

Text deltas are the run's `text_chunk`s, whichever node streamed them. A run that streamed
none gives its answer text in one delta when it finishes. The answer text of a finished run is
its END output `answer`, else `text`, else its only output, else all outputs as JSON; a
non-string value is written as JSON. Usage: `total_tokens` is the run's; `prompt_tokens` adds up
the prompt tokens its LLM nodes reported; `completion_tokens` is the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def answer_text(outputs: dict[str, Any] | None) -> str:
    if not outputs:
        return ""
    if "answer" in outputs:
        value = outputs["answer"]
    elif "text" in outputs:
        value = outputs["text"]
    elif len(outputs) == 1:
        (value,) = outputs.values()
    else:
        value = outputs
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


@dataclass
class RunReading:
    run_id: str
    # Every delta handed out so far: the run's `text_chunk`s, or its answer in one piece.
    deltas: list[str] = field(default_factory=list)
    chunks_seen: bool = False
    prompt_tokens: int = 0
    finished: dict[str, Any] | None = None

    def take(self, event: str, payload: bytes) -> list[str]:
        """Fold one event; return the text deltas it adds to the answer."""
        if event == "text_chunk":
            text = json.loads(payload)["data"].get("text")
            if isinstance(text, str) and text:
                self.chunks_seen = True
                self.deltas.append(text)
                return [text]
        elif event == "node_finished":
            data = json.loads(payload)["data"]
            usage = (data.get("outputs") or {}).get("usage")
            if data.get("node_type") == "LLM" and isinstance(usage, dict):
                prompt = usage.get("prompt_tokens")
                self.prompt_tokens += prompt if isinstance(prompt, int) else 0
        elif event == "workflow_finished":
            self.finished = json.loads(payload)["data"]
            if self.succeeded and not self.chunks_seen and self.answer:
                self.deltas.append(self.answer)
                return [self.answer]
        return []

    @property
    def succeeded(self) -> bool:
        return self.finished is not None and self.finished.get("status") == "succeeded"

    @property
    def streamed_text(self) -> str:
        return "".join(self.deltas)

    @property
    def answer(self) -> str:
        """The finished run's answer text, from its outputs (the blocking answer)."""
        return answer_text(self.finished.get("outputs") if self.finished else None)

    def usage(self) -> tuple[int, int, int]:
        """(prompt, completion, total) tokens."""
        total = int((self.finished or {}).get("total_tokens") or 0)
        prompt = min(self.prompt_tokens, total)
        return prompt, total - prompt, total

    def failure(self) -> tuple[str, str]:
        """(code, message) of a run that did not succeed."""
        data = self.finished or {}
        status = data.get("status", "failed")
        message = data.get("error") or f"the workflow run {self.run_id} ended {status}"
        return ("workflow_stopped" if status == "stopped" else "workflow_failed"), str(message)
