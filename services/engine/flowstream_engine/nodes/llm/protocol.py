"""What each wire protocol provides to the node: its request, its reading of events and of a
whole response, and the rebuilt response in its own non-streaming shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flowstream_shared.workflow import LlmConfig

from flowstream_engine.nodes.llm.answer import Answer, unreadable


@dataclass(frozen=True)
class Prompt:
    """The rendered conversation: `system` from the config, then `turns` in order (a turn may
    itself have the `system` role)."""

    system: str | None
    turns: list[dict[str, str]]

    def as_messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.turns


class WireProtocol(Protocol):
    @property
    def path(self) -> str:
        """Appended to `base_url`."""
        ...

    @property
    def terminal_event(self) -> str:
        """Named in the error when a stream ends without it."""
        ...

    def request(self, config: LlmConfig, prompt: Prompt, stream: bool) -> dict[str, Any]: ...

    def read_event(self, event: str, data: str, answer: Answer) -> list[str]:
        """Fold one Server-Sent Event into `answer`; return the new text pieces."""
        ...

    def read_whole(self, payload: Mapping[str, Any], answer: Answer) -> None: ...

    def rebuild(self, answer: Answer) -> dict[str, Any]: ...


def json_object(data: str | bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError:
        shown = data[:200] if isinstance(data, str) else data[:200].decode(errors="replace")
        raise unreadable(f"not JSON: {shown!r}") from None
    if not isinstance(payload, Mapping):
        raise unreadable("JSON that is not an object")
    return payload


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def integer(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def optional(**fields: Any) -> dict[str, Any]:
    """The fields that are set (not None)."""
    return {key: value for key, value in fields.items() if value is not None}
