"""A bare asyncio SSE client: one socket per stream, no pool, closed exactly when told.

Used where httpx would get in the way: holding ten thousand streams open at once (an httpx
connection costs several times the memory and CPU of a socket and a reader), and closing one at a
known instant to time what the server does about the disconnect. Response bodies are kept raw
(chunked framing included): callers look for byte patterns that a frame never splits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field

_RUN_ID = re.compile(rb'"workflow_run_id":\s*"([^"]+)"')


@dataclass
class RawStream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: bytearray = field(default_factory=bytearray)

    async def read_until(self, pattern: bytes, timeout_s: float) -> None:
        """Read until `pattern` has arrived (it may already have)."""
        async with asyncio.timeout(timeout_s):
            while pattern not in self.received:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError("the server closed the stream")
                self.received += chunk

    def run_id(self) -> str:
        found = _RUN_ID.search(self.received)
        if found is None:
            raise LookupError("no workflow_run_id seen yet")
        return found.group(1).decode()

    async def drain_forever(self) -> None:
        """Read and drop keep-alives and late frames until the server closes or we are cancelled."""
        with contextlib.suppress(ConnectionError, OSError):
            while await self.reader.read(65536):
                pass

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    host: str, port: int, path: str, body: dict[str, object], token: str, timeout_s: float = 60
) -> RawStream:
    """POST `body` to `path` and return once a 200 status line and headers have been read."""
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        except BaseException:
            writer.close()
            raise
    status = head.split(b" ", 2)[1]
    if status != b"200":
        writer.close()
        raise ConnectionError(f"HTTP {status.decode()}: {head[:200]!r}")
    return RawStream(reader, writer)
