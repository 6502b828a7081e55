"""A render process: renders the templates the engine sends, one at a time, under hard limits.

Started by `RenderPool` as `python -m flowstream_engine.render.child <limits JSON> <memory>`. It
caps its own address space (`RLIMIT_AS`), lowers its scheduling priority, answers `ready`, then
serves requests from stdin until stdin closes. Every render runs under one budget (steps, depth,
sizes, CPU time); the engine kills a process that does not answer in time, so a render that
escapes every check still ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
from typing import Any, BinaryIO

from flowstream_shared.expressions import (
    ExpressionError,
    compile_condition,
    compile_template,
    render_value,
)
from flowstream_shared.sandbox import TemplateLimits, budget_scope, set_default_limits

from flowstream_engine.render import protocol

RENDER_NICENESS = 10
# Coalesce a streamed render's pieces: a loop of tiny pieces must not become as many events.
CHUNK_CHARS = 4096


def _chunks(pieces: list[str]) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) + len(piece) <= CHUNK_CHARS:
            merged[-1] += piece
        elif piece:
            merged.append(piece)
    return merged


def handle(request: protocol.Request) -> Any:
    op, template, variables = request["op"], request["template"], request["variables"]
    if op == "text":
        return compile_template(template).render(variables)
    if op == "chunks":
        return _chunks(list(compile_template(template).chunks(variables)))
    if op == "value":
        return compile_template(template).value(variables)
    if op == "condition":
        return compile_condition(template).evaluate(variables)
    return render_value(template, variables)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(limits: TemplateLimits, stdin: BinaryIO, stdout: BinaryIO) -> None:
    stdout.write(protocol.encode(protocol.READY.decode()))
    stdout.flush()
    while True:
        header = _read(stdin, protocol.HEADER_BYTES)
        if header is None:
            return  # the engine closed the pipe: it is stopping or replaced this process
        payload = _read(stdin, protocol.frame_length(header))
        if payload is None:
            return
        restart = False
        try:
            with budget_scope(limits):
                reply: protocol.Reply = {"ok": handle(protocol.decode(payload))}
        except ExpressionError as exc:
            reply = {"error": str(exc)}
        except MemoryError:
            reply, restart = {"error": "template exceeded its memory budget", "restart": True}, True
        except RecursionError:
            reply = {"error": f"template recursion too deep (the limit is {limits.max_depth})"}
        stdout.write(protocol.encode(reply))
        stdout.flush()
        if restart:
            return


def main() -> None:
    limits = TemplateLimits(**json.loads(sys.argv[1]))
    memory = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    with contextlib.suppress(OSError):
        # Below the engine: when a tenant's render and other runs compete for a core, the runs
        # go first.
        os.nice(RENDER_NICENESS)
    set_default_limits(limits)
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing printed by accident may corrupt a frame
    serve(limits, sys.stdin.buffer, stdout)


if __name__ == "__main__":
    main()
