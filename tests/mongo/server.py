"""Build and run FerretDB 1.x (SQLite backend) as a throw-away MongoDB-wire server for tests.

Why FerretDB: it speaks the MongoDB wire protocol, needs neither MongoDB binaries nor PostgreSQL,
and builds from the Go module proxy, the only network the test machines have. Its gaps (no
transactions, no TTL indexes, no `$lookup`/`$facet`, few `$group` accumulators) are why queries
stick to the subset both servers run.

Why our own `main.go` (in `ferretdb_main/`): FerretDB's `cmd/ferretdb` panics at start-up without
a generated `build/version/version.txt`, which a module-proxy build never has; the embeddable
package `github.com/FerretDB/FerretDB/ferretdb` does not need it.

The binary is cached under a hash of the Go sources and build flags: a cold build takes minutes,
so it happens once per source change, and a cached binary needs no Go toolchain at all.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

FERRETDB_VERSION = "v1.24.2"
SOURCE_DIR = Path(__file__).resolve().parent / "ferretdb_main"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "FLOWSTREAM_FERRETDB_CACHE"
BINARY_NAME = "ferretdb"

# Everything here changes the binary, so all of it is part of the cache key.
# -mod=readonly: the committed go.sum is the pin; a test run never rewrites the source tree.
# -v: one line per compiled package, the build's progress report.
# CGO_ENABLED=0: FerretDB's SQLite is modernc.org/sqlite (pure Go), so no C toolchain is needed.
# GOWORK=off: a go.work further up the tree must not change what gets built.
BUILD_ARGS = ("build", "-mod=readonly", "-trimpath", "-v")
BUILD_ENV = {"CGO_ENABLED": "0", "GOWORK": "off"}

# main.go prints this once the socket is bound; keep it in step with `readyPrefix` there.
READY_PREFIX = b"FERRETDB READY "

# A build can compile one huge package (modernc.org/libc) for a minute without a line of output;
# this often it says that it is still alive.
HEARTBEAT_SECONDS = 20.0


class FerretDBError(RuntimeError):
    """FerretDB could not be built or started; the message says why."""


def _log_to_stderr(line: str) -> None:
    sys.stderr.write(f"[ferretdb] {line}\n")
    sys.stderr.flush()


def cache_root() -> Path:
    """`$FLOWSTREAM_FERRETDB_CACHE`, else the user's cache dir (`$XDG_CACHE_HOME` or `~/.cache`).

    Outside the checkout, so fresh clones on one machine (CI's) share one build; the key below
    makes a changed main.go or go.sum build anew.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "flowstream" / "ferretdb"


def build_key() -> str:
    """A hash of what decides the binary, so an edit to main.go or go.sum means a rebuild.

    The Go version is left out on purpose: any Go that builds the pinned module gives an equivalent
    server, and leaving it out lets a CI cache of the binary work on a runner without Go.
    """
    digest = hashlib.sha256()
    digest.update(f"{FERRETDB_VERSION}\0{platform.system()}\0{platform.machine()}\0".encode())
    digest.update("\0".join(BUILD_ARGS).encode())
    digest.update(repr(sorted(BUILD_ENV.items())).encode())
    for name in SOURCE_FILES:
        digest.update(b"\0" + name.encode() + b"\0")
        digest.update((SOURCE_DIR / name).read_bytes())
    return f"{FERRETDB_VERSION}-{digest.hexdigest()[:16]}"


def binary_path() -> Path:
    return cache_root() / build_key() / BINARY_NAME


async def ensure_ferretdb_binary(
    log: Callable[[str], None] = _log_to_stderr,
    build_timeout: float = 1800.0,
) -> Path:
    """Return the cached FerretDB binary, building it first if these sources were never built.

    A cold build compiles modernc.org/sqlite and its Go translation of libc: about three minutes
    on two cores. The `go build -v` lines and a heartbeat go to `log`, so that a CI log shows a
    build in progress rather than what looks like a hang.
    """
    target = await asyncio.to_thread(binary_path)
    if await asyncio.to_thread(target.exists):
        return target
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    lock = await asyncio.to_thread(_acquire_lock, target.parent / "build.lock")
    try:
        if await asyncio.to_thread(target.exists):
            log(f"using {target}, built by another test session meanwhile")
            return target
        await _build(target, log, build_timeout)
    finally:
        await asyncio.to_thread(_release_lock, lock)
    return target


def _acquire_lock(path: Path) -> IO[str]:
    """An advisory lock, so that parallel test sessions build the binary once, not once each."""
    handle = path.open("a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _release_lock(handle: IO[str]) -> None:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


async def _build(target: Path, log: Callable[[str], None], build_timeout: float) -> None:
    go = shutil.which("go")
    if go is None:
        raise FerretDBError("FerretDB is not built yet and there is no `go` on PATH to build it")
    partial = target.with_name(f"{BINARY_NAME}.partial-{os.getpid()}")
    command = [go, *BUILD_ARGS, "-o", str(partial), "."]
    log(f"building FerretDB {FERRETDB_VERSION} into {target}")
    log("this happens once per source change and takes minutes on a small machine")
    log(f"in {SOURCE_DIR}: {' '.join(command)}")
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=SOURCE_DIR,
            env={**os.environ, **BUILD_ENV},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise FerretDBError(f"could not run {go}: {exc}") from exc
    assert process.stdout is not None
    output = process.stdout
    tail: list[str] = []

    async def relay() -> None:
        async for raw in output:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            del tail[:-40]
            log(f"go: {line}")

    relay_task = asyncio.create_task(relay())
    exited = asyncio.create_task(process.wait())
    try:
        while True:
            done, _ = await asyncio.wait({exited}, timeout=HEARTBEAT_SECONDS)
            elapsed = time.monotonic() - started
            if done:
                break
            if elapsed > build_timeout:
                raise FerretDBError(f"go build took longer than {build_timeout:.0f}s")
            log(f"still building ({elapsed:.0f}s elapsed)")
        await relay_task
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        relay_task.cancel()
        exited.cancel()
    if process.returncode != 0:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        detail = "\n".join(tail)
        raise FerretDBError(f"go build failed with exit code {process.returncode}:\n{detail}")
    # Atomic, so that no other session ever runs a half-written file.
    await asyncio.to_thread(os.replace, partial, target)
    log(f"built {target} in {time.monotonic() - started:.0f}s")


@dataclass
class FerretDB:
    """A running FerretDB process; `stop()` it when done."""

    process: asyncio.subprocess.Process
    port: int
    data_dir: Path
    _relays: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM, so FerretDB closes its SQLite files cleanly; SIGKILL if it does not exit."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=grace_seconds)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        # The process is gone, so its pipes are at end of file and the relays end on their own.
        await asyncio.gather(*self._relays, return_exceptions=True)


async def start_ferretdb(
    port: int,
    data_dir: Path,
    echo: bool = False,
    ready_timeout: float = 30.0,
) -> FerretDB:
    """Start FerretDB on 127.0.0.1:`port`, SQLite files in `data_dir`; return once it accepts.

    Readiness is the `FERRETDB READY` line main.go prints after binding the socket, not a poll.
    `port=0` lets the server pick a free port (no race between `free_port()` and the bind); the
    port it got is in `.port` and `.uri`. The server's stdin is a pipe and it exits when the pipe
    closes, so a test run that is killed outright leaves no orphan server behind.
    """
    binary = await ensure_ferretdb_binary()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    try:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "-host", "127.0.0.1",
            "-port", str(port),
            "-sqlite-dir", str(data_dir),
            "-log-level", "info" if echo else "warn",
            "-exit-on-stdin-eof",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except OSError as exc:
        raise FerretDBError(f"could not run {binary}: {exc}") from exc
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = process.stdout, process.stderr
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    tail: list[bytes] = []

    async def watch_stdout() -> None:
        async for line in stdout:
            if line.startswith(READY_PREFIX) and not ready.done():
                uri = line[len(READY_PREFIX) :].decode().strip()  # mongodb://127.0.0.1:PORT/
                ready.set_result(int(uri.rstrip("/").rsplit(":", 1)[1]))
        if not ready.done():
            ready.set_exception(FerretDBError("FerretDB exited before it was ready"))

    async def relay_stderr() -> None:
        async for line in stderr:
            tail.append(line)
            del tail[:-40]
            if echo:
                sys.stderr.write("ferretdb | " + line.decode(errors="replace"))

    relays = [asyncio.create_task(watch_stdout()), asyncio.create_task(relay_stderr())]
    try:
        bound_port = await asyncio.wait_for(ready, timeout=ready_timeout)
    except (TimeoutError, FerretDBError) as exc:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await asyncio.gather(*relays, return_exceptions=True)  # for the last stderr lines
        detail = b"".join(tail).decode(errors="replace")
        raise FerretDBError(
            f"FerretDB did not start on port {port} (exit code {process.returncode}): {detail}"
        ) from exc
    return FerretDB(process, bound_port, data_dir, relays)
