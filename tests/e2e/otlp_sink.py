"""An OTLP/HTTP trace receiver on loopback: what the services export, decoded, for tests.

It answers `POST /v1/traces` (protobuf, optionally gzip) as a collector would and keeps every
span. A test awaits :meth:`OtlpSink.spans_until` with a condition; each export wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any] = field(hash=False)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return spans


class OtlpSink:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.spans: list[ReceivedSpan] = []
        self.bodies: list[bytes] = []
        self._loop = loop
        self._arrived = asyncio.Event()
        self._lock = threading.Lock()
        self.url = ""

    def receive(self, body: bytes) -> None:
        with self._lock:
            self.bodies.append(body)
            self.spans.extend(decode(body))
        self._loop.call_soon_threadsafe(self._arrived.set)

    async def spans_until(
        self, done: Callable[[list[ReceivedSpan]], bool], within_s: float = 20.0
    ) -> list[ReceivedSpan]:
        """The spans received once `done` holds for them (each export re-checks it)."""
        async with asyncio.timeout(within_s):
            while True:
                with self._lock:
                    spans = list(self.spans)
                if done(spans):
                    return spans
                self._arrived.clear()
                await self._arrived.wait()


@contextlib.contextmanager
def otlp_sink(loop: asyncio.AbstractEventLoop) -> Iterator[OtlpSink]:
    sink = OtlpSink(loop)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            sink.receive(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
