"""SIGINT and SIGTERM as asyncio events, so shutdown is ordinary code rather than an exception.

The first signal asks for a clean stop; a second one (an impatient Ctrl-C) asks to stop now.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.hurry = asyncio.Event()

    def on_signal(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            print(f"flowstream: {sig.name} again, stopping now", file=sys.stderr, flush=True)
            self.hurry.set()
        else:
            print(f"flowstream: {sig.name}, stopping", file=sys.stderr, flush=True)
            self.requested.set()


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    loop = asyncio.get_running_loop()
    signals = StopSignals()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, signals.on_signal, sig)
    try:
        yield signals
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
