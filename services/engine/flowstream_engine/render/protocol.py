"""Frames between the engine and its render processes: a 4-byte big-endian length, then JSON.

JSON rather than pickle: a render process runs tenants' templates, so what it sends back is
parsed as data, never executed. Requests carry the operation, the template (a source or, for
`structure`, a JSON value holding templates) and the variables it may reference; replies carry
`ok` (the result) or `error` (the message a node shows), and `restart` when the process must not
be used again.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from pydantic_core import from_json, to_json

Operation = Literal["text", "chunks", "value", "condition", "structure"]

HEADER_BYTES = 4
# Larger frames are refused: nothing legitimate comes near (outputs are capped well below).
MAX_FRAME = 64 << 20
READY = b"ready"


class Request(TypedDict):
    op: Operation
    template: Any
    variables: dict[str, Any]


class Reply(TypedDict, total=False):
    ok: Any
    error: str
    restart: bool


def encode(message: Any) -> bytes:
    payload = to_json(message, fallback=str)
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


def frame_length(header: bytes) -> int:
    length = int.from_bytes(header, "big")
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes is over {MAX_FRAME}")
    return length


def decode(payload: bytes) -> Any:
    return from_json(payload)
