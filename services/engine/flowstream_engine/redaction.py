"""Secrets a run uses never reach its events or the engine's log.

Each run keeps a :class:`RunSecrets`: every credential value it resolves and every value it
sends under a secret name (an `Authorization` header, an `api_key` parameter) is added to it,
and the run's events are masked by value before they are published. The values of all running
runs are also known to :data:`LIVE_SECRETS`, which the log filter uses, so a traceback or a
message quoting a request cannot print one either.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from typing import TypeVar

from flowstream_shared.masking import MASK, ValueMasker
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class LiveSecrets:
    """The secret values of every run in this process, counted (two runs may share one)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()  # log records can come from any thread

    def acquire(self, values: frozenset[str]) -> None:
        with self._lock:
            self._counts.update(values)
            self._rebuild()

    def release(self, values: frozenset[str]) -> None:
        with self._lock:
            self._counts.subtract(values)
            self._counts = +self._counts  # drops the ones no run holds any more
            self._rebuild()

    def _rebuild(self) -> None:
        ordered = sorted(self._counts, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    def __bool__(self) -> bool:
        return self._pattern is not None


LIVE_SECRETS = LiveSecrets()


class RunSecrets(ValueMasker):
    """A run's secret values; also registered with :data:`LIVE_SECRETS` until :meth:`release`."""

    def __init__(self, live: LiveSecrets = LIVE_SECRETS) -> None:
        super().__init__()
        self._live = live

    def add(self, *values: str) -> None:
        before = self.values
        super().add(*values)
        new = self.values - before
        if new:
            self._live.acquire(new)

    def release(self) -> None:
        self._live.release(self.values)

    def model(self, data: M) -> M:
        """A copy of an event's data with every secret value masked."""
        if not self:
            return data
        masked = self.mask(data.model_dump(mode="json"))
        return type(data).model_validate(masked)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and traceback) without any live secret value."""

    def __init__(self, live: LiveSecrets = LIVE_SECRETS) -> None:
        super().__init__()
        self._live = live

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._live:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: logging reports it as it would without us
        redacted = self._live.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._live.redact(record.exc_text)
        return True


def install_log_redaction() -> None:
    """Filter every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())
