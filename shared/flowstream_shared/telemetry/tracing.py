"""OpenTelemetry tracing, configured by the standard `OTEL_*` variables and off unless asked for.

Tracing is on when an exporter is named: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, or `OTEL_TRACES_EXPORTER` is `otlp` or `console`.
`OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` turns it off again. Off, nothing is
installed: no provider, no instrumentation, no header on any message, so the cost is one boolean
test per message. The exporter (OTLP over HTTP/protobuf), the batch processor and the sampler read
their own variables (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER`, ...).

Across NATS the context travels as W3C `traceparent`/`tracestate` headers: the gateway puts it on
each run command, the engine on each event, so one run is one trace from the HTTP request to the
history write.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
_enabled = False
# Span attributes that may hold a URL with its query string (API keys are often sent there).
URL_ATTRIBUTES = ("url.full", "http.url", "http.target")
DROPPED_ATTRIBUTES = ("url.query",)


def wanted(environ: Mapping[str, str] = os.environ) -> str | None:
    """The exporter the environment asks for (`otlp` or `console`), or None: tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("otlp", "console"):
        return exporter
    if exporter:  # `none`, or one this build does not ship
        if exporter != "none":
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console); off", exporter)
        return None
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return "otlp" if any(environ.get(name) for name in endpoints) else None


class ScrubUrls(SpanProcessor):
    """Drops query strings from URL attributes (and masks what `redact` knows) as a span starts,
    before anything can export it: HTTP instrumentations record full URLs."""

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        self._redact = redact

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attributes = span.attributes or {}
        for key in URL_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, str):
                span.set_attribute(key, self.scrub(value))
        for key in DROPPED_ATTRIBUTES:
            if key in attributes:
                span.set_attribute(key, "")

    def scrub(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]  # never user:password
        cleaned = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return self._redact(cleaned) if self._redact else cleaned

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def configure_tracing(
    service: str,
    redact: Callable[[str], str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> bool:
    """Install the SDK if the environment asks for tracing; say whether it did."""
    global _enabled
    exporter_name = wanted(environ)
    if exporter_name is None:
        return False
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter(service_name=f"flowstream-{service}")
    else:
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning("OTLP protocol %s is not supported; using http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {SERVICE_NAME: f"flowstream-{service}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(ScrubUrls(redact))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("tracing on: %s exporter", exporter_name)
    return True


def tracing_enabled() -> bool:
    return _enabled


def shutdown_tracing() -> None:
    """Export what is buffered (also done at interpreter exit)."""
    provider = trace.get_tracer_provider()
    if _enabled and isinstance(provider, TracerProvider):
        provider.shutdown()


def span(
    name: str,
    scope: str,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> contextlib.AbstractContextManager[trace.Span | None]:
    """A span made current for the block, named by `scope` (the module making it); while
    tracing is off, nothing at all (None)."""
    if not _enabled:
        return contextlib.nullcontext()
    return trace.get_tracer(scope).start_as_current_span(name, kind=kind, attributes=attributes)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to a message's headers (nothing while tracing is off)."""
    if _enabled:
        _PROPAGATOR.inject(headers)
    return headers


def trace_headers() -> dict[str, str]:
    """The current trace context as headers; empty while tracing is off or outside a span."""
    return inject({}) if _enabled else {}


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a message carries, or None."""
    if not _enabled or not headers or "traceparent" not in headers:
        return None
    return _PROPAGATOR.extract(headers)


@contextlib.contextmanager
def continued_from(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Make the context a message carries the current one, for the block."""
    carried = extract(headers)
    if carried is None:
        yield
        return
    token = context.attach(carried)
    try:
        yield
    finally:
        context.detach(token)
