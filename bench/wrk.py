"""wrk, the load generator of every HTTP phase: one request is one whole run.

wrk (C, from Debian's packages; `make wrk` installs it) runs with `bench/lua/run.lua`, which POSTs
the run request and checks each response once it has been read to its end: for a streamed run,
after the `[DONE]` frame that closes it. wrk's latency runs from writing the request to reading the
response's last byte, so its distribution is that of whole runs. Every system is driven this way:
our gateway, the bare SSE ceiling, the Restate peer.

Two details that matter for the figures:
- wrk drops a latency above its `--timeout` from the distribution (it counts it as a timeout
  instead), so the timeout is far above any run here, and timeouts are reported as errors;
- one wrk thread: it handles thousands of requests a second, and on a two-core machine a second
  thread would take CPU from the stack it measures.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "lua" / "run.lua"
MARKER = "wrk-json "
STOPPED = "wrk-stopped"
DEFAULT_TIMEOUT_S = 60.0

# What the response of a successful streamed run contains, in this order.
SSE_RUN = ('"event":"workflow_finished"', '"status":"succeeded"', "data: [DONE]")


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class Target:
    """One run: POST `body` to `url`; a successful run's response contains `expect`, in order."""

    url: str
    body: bytes
    expect: Sequence[str]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadStats:
    connections: int
    runs: int  # whole, successful runs
    errors: int  # failed runs (status, incomplete body) and socket errors, timeouts included
    seconds: float
    runs_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    first_failure: str | None = None


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed: `make wrk` installs it (apt-get install wrk)")
    return found


def command(
    target: Target,
    body_file: Path,
    connections: int,
    seconds: float,
    max_runs: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[str]:
    argv = [
        binary(), "-t1", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s",
        f"--timeout={math.ceil(timeout_s)}s", "-s", str(SCRIPT), target.url,
        "--", f"body={body_file}",
    ]  # fmt: skip
    argv += [f"header={name}: {value}" for name, value in target.headers.items()]
    argv += [f"expect={text}" for text in target.expect]
    if max_runs is not None:
        argv.append(f"max_runs={max_runs}")
    return argv


def parse(output: str, connections: int) -> LoadStats:
    """The `wrk-json` line `run.lua` prints when wrk is done."""
    line = next((ln for ln in output.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise WrkError(f"wrk printed no result:\n{output[-2000:]}")
    raw: dict[str, Any] = json.loads(line[len(MARKER) :])
    seconds = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    percentiles: dict[str, int] = latency["percentiles"]
    socket_errors = sum(raw["errors"][k] for k in ("connect", "read", "write", "timeout"))

    def ms(microseconds: float | None) -> float:
        return round(microseconds / 1000, 3) if microseconds is not None else math.nan

    return LoadStats(
        connections=connections,
        runs=raw["runs_ok"],
        errors=raw["runs_failed"] + socket_errors,
        seconds=round(seconds, 3),
        runs_per_s=round(raw["runs_ok"] / seconds, 1) if seconds else 0.0,
        p50_ms=ms(percentiles.get("50")),
        p90_ms=ms(percentiles.get("90")),
        p99_ms=ms(percentiles.get("99")),
        p999_ms=ms(percentiles.get("99.9")),
        max_ms=ms(latency["max"]),
        mean_ms=ms(latency["mean"]),
        first_failure=raw["first_failure"] or None,
    )


async def run(
    target: Target,
    connections: int,
    seconds: float,
    max_runs: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> LoadStats:
    """`connections` connections, each starting its next run when the last one has ended, for
    `seconds`, or until `max_runs` responses (`seconds` is then the limit)."""
    with tempfile.TemporaryDirectory(prefix="flowstream-bench-wrk-") as tmp:
        body_file = Path(tmp) / "body"
        body_file.write_bytes(target.body)
        argv = command(target, body_file, connections, seconds, max_runs, timeout_s)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        lines: list[str] = []
        try:
            async for raw in process.stdout:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.startswith(STOPPED):  # max_runs reached: end wrk's sleep now
                    process.send_signal(signal.SIGINT)
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = "".join(lines)
    if process.returncode != 0:
        raise WrkError(f"wrk exited with status {process.returncode}:\n{text[-2000:]}")
    return parse(text, connections)
