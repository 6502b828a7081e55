"""The processes of a stack the launcher started, and where its NATS server is monitored."""

from __future__ import annotations

import re
from pathlib import Path

from flowstream_launcher.child_stack import ChildStack

from bench.nats_monitor import NatsMonitor, local_ports
from bench.procs import service_pid

# nats-server logs this at start-up; the launcher relays its log into the stack's output.
_MONITOR_LINE = re.compile(r"Starting http monitor on [\d.]+:(\d+)")
SERVICES = ("gateway", "engine", "history")


def monitor_of(stack: ChildStack) -> NatsMonitor:
    for line in stack.output:
        found = _MONITOR_LINE.search(line)
        if found:
            return NatsMonitor([f"http://127.0.0.1:{found[1]}"])
    raise LookupError("the NATS monitoring port is not in the stack's output")


def nats_server_pid(port: int) -> int:
    """The nats-server process listening on `port`, found by its sockets (however it was told
    the port: flags or a configuration file)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            program = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            if program.endswith(b"nats-server") and port in local_ports(int(entry.name)):
                return int(entry.name)
        except OSError:  # gone, or not ours
            continue
    raise LookupError(f"no nats-server listening on port {port}")


def processes(stack: ChildStack, embedded_nats: bool = True) -> dict[str, int]:
    """Name → pid of the stack's processes: the services, the launcher and its nats-server."""
    found = {
        name: service_pid(
            f"flowstream_{name}", f"FLOWSTREAM_{name.upper()}_PORT", stack.ports[name]
        )
        for name in SERVICES
    }
    found["launcher"] = service_pid(
        "flowstream_launcher", "FLOWSTREAM_GATEWAY_PORT", stack.ports["gateway"]
    )
    if embedded_nats:
        found["nats-server"] = nats_server_pid(stack.ports["nats"])
    return found
