"""`python -m bench.nats_auth_cost`: what NATS authorization costs on the event path.

The same work against two servers started side by side: one as `make run` starts it
(authorization on, each service its own user and permissions, users through the gateway's auth
callout) and one without any authorization. Measured:

- the engine's event publish: JetStream publishes to `flowstream.ingest.…` with the claim fence
  header, 64 in flight, as the engine's identity (its permissions checked on every message);
- a gateway-like core subscriber receiving the republished events;
- connecting: a service's static user, and a user's token through the auth callout (a real
  stack, since the gateway answers the callout).

Python's client costs the same on both sides, so the difference is the server's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from flowstream_launcher.child_stack import child_stack
from flowstream_launcher.dev_auth import issue_token
from flowstream_launcher.nats_server import free_port, nats_server_binary, start_nats_server
from flowstream_shared.nats_access import Identity, inbox_prefix
from flowstream_shared.settings import NatsSettings
from flowstream_shared.subjects import RunAddress
from flowstream_shared.topology import ensure_topology

from bench.settings import ROOT

EVENTS = 20_000
IN_FLIGHT = 64
CONNECTS = 50
ROUNDS = 3
PAYLOAD = json.dumps({"event": "node_finished", "data": {"outputs": {"text": "x" * 200}}}).encode()


async def _publish_events(url: str, admin_url: str, inbox: str) -> dict[str, float]:
    admin = await nats.connect(admin_url)
    await ensure_topology(admin.jetstream(), NatsSettings(nats_url=admin_url))
    run = RunAddress.of("bench", "wf", f"run-{time.time_ns()}")
    received = 0
    done = asyncio.Event()

    async def count(_: Any) -> None:
        nonlocal received
        received += 1
        if received == EVENTS:
            done.set()

    await admin.subscribe(run.events_filter, cb=count)
    await admin.flush()
    nc = await nats.connect(url, inbox_prefix=inbox)
    js = nc.jetstream()
    claim = await js.publish(
        run.claim_subject, b"{}", headers={"Nats-Expected-Last-Subject-Sequence": "0"}
    )
    fence = {
        "Nats-Expected-Last-Subject-Sequence": str(claim.seq),
        "Nats-Expected-Last-Subject-Sequence-Subject": run.claim_subject,
    }
    subject = run.ingest_subject("node_finished")
    started = time.perf_counter()
    for first in range(0, EVENTS, IN_FLIGHT):
        await asyncio.gather(
            *(
                js.publish(subject, PAYLOAD, headers={**fence, "Nats-Msg-Id": f"{run.run_id}:{i}"})
                for i in range(first, min(first + IN_FLIGHT, EVENTS))
            )
        )
    stored = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), 60)
    delivered = time.perf_counter() - started
    await nc.close()
    await admin.close()
    return {
        "events_per_s_stored": round(EVENTS / stored),
        "events_per_s_delivered": round(EVENTS / delivered),
        "us_per_event": round(stored / EVENTS * 1e6, 1),
    }


async def _connect_ms(url: str, **options: Any) -> float:
    times = []
    for _ in range(CONNECTS):
        started = time.perf_counter()
        nc = await nats.connect(url, **options)
        await nc.flush()
        times.append(time.perf_counter() - started)
        await nc.close()
    return round(statistics.median(times) * 1000, 2)


async def _plain_server(store: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    config = store / "plain.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{store / "plain"}" }}\n'
    )
    process = await asyncio.create_subprocess_exec(
        nats_server_binary(), "-c", str(config), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    async for line in process.stderr:
        if b"Server is ready" in line:
            break
    return process, f"nats://127.0.0.1:{port}"


async def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flowstream-auth-cost-") as tmp:
        store = Path(tmp)
        secured = await start_nats_server(free_port(), store / "secured")
        plain, plain_url = await _plain_server(store)
        try:
            engine_url = secured.auth.url_for(Identity.ENGINE, secured.address)
            engine_inbox = inbox_prefix(Identity.ENGINE.value)  # the only replies it may get
            # Alternated, best of ROUNDS each: the machine's noise lands on both sides.
            on: list[dict[str, float]] = []
            off: list[dict[str, float]] = []
            for _ in range(ROUNDS):
                on.append(await _publish_events(engine_url, secured.url, engine_inbox))
                off.append(await _publish_events(plain_url, plain_url, engine_inbox))
            results: dict[str, Any] = {
                "authorization_on": min(on, key=lambda r: r["us_per_event"]),
                "authorization_off": min(off, key=lambda r: r["us_per_event"]),
                "connect_ms": {
                    "static_user": await _connect_ms(engine_url, inbox_prefix=engine_inbox),
                    "no_authorization": await _connect_ms(plain_url),
                },
            }
        finally:
            await secured.stop()
            plain.terminate()
            await plain.wait()
        async with child_stack(store / "stack", cwd=ROOT) as stack:
            token = issue_token(stack.secret, "bench")
            results["connect_ms"]["user_token_via_callout"] = await _connect_ms(
                stack.nats_address, token=token
            )
    with_auth, without = results["authorization_on"], results["authorization_off"]
    results["publish_cost_ratio"] = round(with_auth["us_per_event"] / without["us_per_event"], 3)
    return results


def main() -> None:
    json.dump(asyncio.run(measure()), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
