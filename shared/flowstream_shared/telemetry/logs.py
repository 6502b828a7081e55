"""One JSON object per line, the same fields in every process, and the run a line is about.

A run's identity lives in context variables (:func:`log_context`): set where a run's work starts,
they follow its tasks (asyncio copies them into every task it creates), so every line written
while a run is being worked on carries `run_id`, `workflow_id` and, inside a node, `node_id`,
without threading them through every call. `trace_id` and `span_id` come from the active span
when tracing is on.

FastStream and uvicorn install their own (coloured) handlers; :func:`configure_logging` takes
them off so their records reach the one handler here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Literal

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

RUN_FIELDS = ("run_id", "workflow_id", "node_id")
_fields: ContextVar[dict[str, str]] = ContextVar("flowstream_log_fields", default={})  # noqa: B039

# Loggers that come with handlers of their own; their records go to ours instead.
FOREIGN_LOGGERS = (
    "faststream",
    "faststream.access.nats",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)
# Chatty below WARNING, and httpx's lines carry full URLs (query strings, keys in them).
QUIET_LOGGERS = ("httpx", "httpcore", "uvicorn.access", "uvicorn.error")


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Every line logged inside (and in tasks started inside) carries these fields."""
    merged = {**_fields.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def set_log_fields(**fields: str | None) -> None:
    """Like :func:`log_context`, for the rest of the current task (a run's own task)."""
    _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})


def current_log_fields() -> dict[str, str]:
    return dict(_fields.get())


class ContextFields(logging.Filter):
    """Adds the run's fields and the active trace to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class LineFormatter(JsonFormatter):
    """JSON lines; a traceback another filter already rewrote (`exc_text`) is kept as it is."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_text:
            exc_info, record.exc_info = record.exc_info, None
            try:
                return super().format(record)
            finally:
                record.exc_info = exc_info
        return super().format(record)


def json_formatter(service: str) -> logging.Formatter:
    return LineFormatter(
        ["asctime", "levelname", "name", "message"],
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )


def configure_logging(
    service: str, level: LogLevel | str = "INFO", filters: Sequence[logging.Filter] = ()
) -> logging.Handler:
    """Make the root logger write JSON lines to stderr at `level`; call once, at start-up.

    `filters` run on every record before it is written (the engine's secret redaction)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter(service))
    handler.addFilter(ContextFields())
    for extra in filters:
        handler.addFilter(extra)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(str(level).upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    for name in FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
        foreign.setLevel(logging.NOTSET)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler
