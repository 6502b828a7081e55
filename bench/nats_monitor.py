"""What the benchmark reads from nats-server's HTTP monitoring port: no NATS connection needed.

- `/connz`: per client connection, `in_msgs` (messages the client published) and `out_msgs`
  (messages the server delivered to it). A connection is attributed to a process by its socket:
  connz names the client's port, and /proc says which process owns the socket on that port.
- `/jsz`: streams and consumers, for waiting until the stack is idle (bench/settle.py). In a
  cluster each stream and consumer is read from the server that leads it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CONNZ_LIMIT = 100_000


@dataclass(frozen=True)
class Messages:
    received: int  # delivered by the server to the process (connz `out_msgs`)
    published: int  # sent by the process (connz `in_msgs`)


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (IPv4 and IPv6)."""
    inodes = _socket_inodes(pid)
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[9]) in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class NatsMonitor:
    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)  # one per server: http://127.0.0.1:<monitoring port>

    async def _get(self, client: httpx.AsyncClient, url: str, **params: str) -> dict[str, Any]:
        response = await client.get(url, params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def connections(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            found: list[dict[str, Any]] = []
            for url in self.urls:
                body = await self._get(client, f"{url}/connz", limit=str(CONNZ_LIMIT))
                found += body.get("connections") or []
            return found

    async def messages(self, processes: Mapping[str, int]) -> dict[str, Messages]:
        """Messages in and out of each named process, over all its NATS connections so far."""
        owner = {port: name for name, pid in processes.items() for port in local_ports(pid)}
        totals = {name: Messages(0, 0) for name in processes}
        for conn in await self.connections():
            name = owner.get(int(conn.get("port", 0)))
            if name is not None:
                before = totals[name]
                totals[name] = Messages(
                    before.received + int(conn.get("out_msgs", 0)),
                    before.published + int(conn.get("in_msgs", 0)),
                )
        return totals

    async def jetstream(self) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], Any]]:
        """Streams by name and consumers by (stream, name), each as its leader reports it."""
        streams: dict[str, dict[str, Any]] = {}
        consumers: dict[tuple[str, str], Any] = {}
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            for url in self.urls:
                server = (await self._get(client, f"{url}/varz")).get("server_name")
                body = await self._get(
                    client, f"{url}/jsz", accounts="true", streams="true", consumers="true"
                )
                for account in body.get("account_details") or []:
                    for stream in account.get("stream_detail") or []:
                        if _leads(stream, server):
                            streams[stream["name"]] = stream
                        for consumer in stream.get("consumer_detail") or []:
                            if _leads(consumer, server):
                                consumers[(stream["name"], consumer["name"])] = consumer
        return streams, consumers


def _leads(asset: dict[str, Any], server: str | None) -> bool:
    """In a cluster the leader's copy is the current one (a follower's may lag); a single server
    names itself leader (its name is its id unless configured)."""
    cluster = asset.get("cluster") or {}
    leader = cluster.get("leader")
    return leader is None or leader == server


@dataclass(frozen=True)
class _Snapshot:
    runs: float
    messages: dict[str, Messages]


class MessageCounter:
    """NATS messages per run for each process over a phase; runs are counted by the stack
    (`runs_so_far`, e.g. the gateway's counter), so runs cut off at the end count too."""

    def __init__(
        self,
        monitor: NatsMonitor,
        processes: Mapping[str, int],
        runs_so_far: Callable[[], Awaitable[float]],
    ) -> None:
        self.monitor, self.processes, self.runs_so_far = monitor, processes, runs_so_far

    async def snapshot(self) -> _Snapshot:
        return _Snapshot(await self.runs_so_far(), await self.monitor.messages(self.processes))

    @staticmethod
    def per_run(before: _Snapshot, after: _Snapshot) -> dict[str, Any]:
        runs = after.runs - before.runs
        if runs <= 0:
            return {"runs": 0}
        result: dict[str, Any] = {"runs": int(runs)}
        for name, now in after.messages.items():
            then = before.messages[name]
            if now.received or now.published:  # a process with no NATS connection is left out
                result[name] = {
                    "received": round((now.received - then.received) / runs, 2),
                    "published": round((now.published - then.published) / runs, 2),
                }
        return result
