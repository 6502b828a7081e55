"""API_CALL and LLM nodes through the engine's egress-checked client, against real listeners on
loopback: SSRF attempts, redirects, stored credentials and what the events show of them.

Loopback is allowed here as `make run` allows it, with one listener declared a flowstream
endpoint: it must stay unreachable by every spelling and every path.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from flowstream_engine.egress import EgressPolicy
from flowstream_engine.http import egress_client, quiet_http_logs
from flowstream_shared.events import NodeFinishedData, RunEvent
from flowstream_shared.workflow import WorkflowDefinition

from tests.credentials_support import MemoryCredentials
from tests.e2e.peers import Peer, http_peer
from tests.unit.builders import Spec, api_call, chain, definition, end, field, llm, start
from tests.unit.runs import Run, finished_nodes, run_of

SECRET = "tok-5a1f0c9e7d3b"


@pytest.fixture(scope="module")
async def peer() -> AsyncIterator[Peer]:
    async with http_peer() as serving:
        yield serving


@pytest.fixture(scope="module")
async def endpoint() -> AsyncIterator[Peer]:
    """Plays a flowstream port (the gateway, say): nothing may ever reach it."""
    async with http_peer() as serving:
        yield serving


@pytest.fixture(scope="module")
async def elsewhere() -> AsyncIterator[Peer]:
    """Another origin, on another loopback address."""
    async with http_peer("127.0.0.2") as serving:
        yield serving


def port_of(peer: Peer) -> int:
    return int(peer.url.rsplit(":", 1)[1])


def dev_policy(endpoint: Peer, **extra: Any) -> EgressPolicy:
    return EgressPolicy.build(
        allow=["127.0.0.0/8", "::1"], protected=[f"127.0.0.1:{port_of(endpoint)}"], **extra
    )


@pytest.fixture
async def dev_http(endpoint: Peer) -> AsyncIterator[httpx.AsyncClient]:
    async with egress_client(dev_policy(endpoint)) as client:
        yield client


def calling(call: Spec) -> WorkflowDefinition:
    return definition(
        [start(field("name")), call, end(answer="{{call.status_code}}")],
        chain("start", call["id"], "end"),
    )


async def run_call(
    call: Spec,
    http: httpx.AsyncClient,
    credentials: MemoryCredentials | None = None,
) -> Run:
    resolver = credentials.resolver() if credentials else None
    run = run_of(calling(call), {"name": "Ada"}, http=http, credentials=resolver)
    await run.execute()
    return run


def call_of(run: Run, node_id: str = "call") -> NodeFinishedData:
    return finished_nodes(run.log.events)[node_id]


def events_text(events: list[RunEvent]) -> str:
    return json.dumps([event.model_dump(mode="json") for event in events])


# SSRF


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",  # decimal
        "0x7f.1",  # hex, short form
        "017700000001",  # octal
        "127.0.0.2",  # elsewhere in 127/8
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "[::1]",
        "0.0.0.0",
    ],
)
async def test_a_flowstream_endpoint_is_refused_by_every_spelling(
    host: str, endpoint: Peer, dev_http: httpx.AsyncClient
) -> None:
    before = len(endpoint.requests)
    run = await run_call(api_call("call", f"http://{host}:{port_of(endpoint)}/echo/x"), dev_http)

    node = call_of(run)
    assert node.status == "failed"
    assert node.error is not None
    assert "egress denied: " in node.error
    assert node.error.endswith(f":{port_of(endpoint)} is a flowstream endpoint"), node.error
    assert len(endpoint.requests) == before


async def test_the_error_names_the_policy(endpoint: Peer, dev_http: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{port_of(endpoint)}/echo/x"
    run = await run_call(api_call("call", url), dev_http)

    assert call_of(run).error == (
        f"GET {url}: egress denied: 127.0.0.1:{port_of(endpoint)} is a flowstream endpoint"
    )


async def test_a_redirect_chain_into_a_flowstream_port_is_refused(
    peer: Peer, endpoint: Peer, dev_http: httpx.AsyncClient
) -> None:
    target = f"http://localhost:{port_of(endpoint)}/echo/stolen"
    hop2 = f"{peer.url}/redirect/hop2?to={target}"
    before = len(endpoint.requests)

    run = await run_call(
        api_call("call", f"{peer.url}/redirect/hop1", query={"to": hop2}), dev_http
    )

    assert "is a flowstream endpoint" in (call_of(run).error or "")
    assert len(endpoint.requests) == before
    assert [r.path for r in peer.received("/redirect")][-2:] == ["/redirect/hop1", "/redirect/hop2"]


async def test_loopback_is_refused_by_default(peer: Peer) -> None:
    before = len(peer.requests)
    async with egress_client(EgressPolicy()) as strict:
        run = await run_call(api_call("call", f"{peer.url}/echo/x"), strict)

    assert (call_of(run).error or "").endswith(
        f"egress denied: 127.0.0.1:{port_of(peer)} is a loopback address "
        "(FLOWSTREAM_EGRESS_ALLOW can allow it)"
    )
    assert len(peer.requests) == before


async def test_the_deny_list_refuses_a_range_loopback_allows(
    elsewhere: Peer, endpoint: Peer
) -> None:
    before = len(elsewhere.requests)
    async with egress_client(dev_policy(endpoint, deny=["127.0.0.2/32"])) as client:
        run = await run_call(api_call("call", f"{elsewhere.url}/echo/x"), client)

    assert "matches FLOWSTREAM_EGRESS_DENY entry '127.0.0.2/32'" in (call_of(run).error or "")
    assert len(elsewhere.requests) == before


async def test_allowed_loopback_is_reached(peer: Peer, dev_http: httpx.AsyncClient) -> None:
    run = await run_call(api_call("call", f"{peer.url}/echo/ok"), dev_http)
    assert call_of(run).status == "succeeded"


# Credentials


@pytest.mark.parametrize(
    ("stored", "expect_header", "expect_query"),
    [
        ({"type": "bearer", "value": SECRET}, ("authorization", f"Bearer {SECRET}"), None),
        (
            {"type": "header", "header_name": "X-Api-Key", "value": SECRET},
            ("x-api-key", SECRET),
            None,
        ),
        ({"type": "query", "param_name": "api_key", "value": SECRET}, None, ("api_key", SECRET)),
        (
            {"type": "basic", "username": "crm-user", "password": SECRET},
            ("authorization", "Basic " + base64.b64encode(f"crm-user:{SECRET}".encode()).decode()),
            None,
        ),
    ],
)
async def test_a_credential_is_sent_and_never_shown(
    stored: dict[str, Any],
    expect_header: tuple[str, str] | None,
    expect_query: tuple[str, str] | None,
    peer: Peer,
    dev_http: httpx.AsyncClient,
) -> None:
    credentials = MemoryCredentials()
    credentials.add("user-1", "crm", **stored)
    key = f"cred-{stored['type']}"

    run = await run_call(
        api_call("call", f"{peer.url}/echo/{key}", query={"page": 2}, credential="crm"),
        dev_http,
        credentials,
    )

    node = call_of(run)
    assert node.status == "succeeded", node.error
    seen = peer.received(f"/echo/{key}")[-1]
    if expect_header is not None:
        assert seen.headers[expect_header[0]] == expect_header[1]
        assert node.inputs is not None
        shown = {k.lower(): v for k, v in node.inputs["headers"].items()}
        assert shown[expect_header[0]] == "***"
    if expect_query is not None:
        assert seen.query[expect_query[0]] == expect_query[1]
        assert node.inputs is not None
        assert node.inputs["query"] == {"page": "2", "api_key": "***"}
    # The peer echoed everything it got into the response: the outputs are masked by value.
    text = events_text(run.log.events)
    assert SECRET not in text
    encoded = base64.b64encode(f"crm-user:{SECRET}".encode()).decode()
    assert encoded not in text


async def test_a_credential_goes_only_to_its_allowed_hosts(
    peer: Peer, dev_http: httpx.AsyncClient
) -> None:
    credentials = MemoryCredentials()
    credentials.add("user-1", "crm", value=SECRET, allowed_hosts=["api.crm.test", "*.crm.test"])
    credentials.add("user-1", "local", value=SECRET, allowed_hosts=["127.0.0.1"])
    before = len(peer.requests)

    refused = await run_call(
        api_call("call", f"{peer.url}/echo/allowed", credential="crm"), dev_http, credentials
    )
    sent = await run_call(
        api_call("call", f"{peer.url}/echo/allowed", credential="local"), dev_http, credentials
    )

    assert call_of(refused).error == (
        "credential 'crm' may not be sent to 127.0.0.1 (allowed hosts: api.crm.test, *.crm.test)"
    )
    assert call_of(sent).status == "succeeded"
    assert len(peer.requests) == before + 1


async def test_another_users_credential_does_not_exist_for_me(
    peer: Peer, dev_http: httpx.AsyncClient
) -> None:
    credentials = MemoryCredentials()
    credentials.add("user-2", "crm", value=SECRET)  # the runs here belong to user-1

    run = await run_call(
        api_call("call", f"{peer.url}/echo/theirs", credential="crm"), dev_http, credentials
    )

    assert call_of(run).error == "credential 'crm' does not exist (POST /api/credentials)"
    assert peer.received("/echo/theirs") == []


async def test_a_tampered_record_does_not_open(peer: Peer, dev_http: httpx.AsyncClient) -> None:
    credentials = MemoryCredentials()
    record = credentials.add("user-1", "crm", value=SECRET, allowed_hosts=["api.crm.test"])
    widened = record.model_copy(update={"allowed_hosts": []})  # someone with write access
    key = next(iter(credentials.data))
    credentials.data[key] = widened.model_dump_json().encode()

    run = await run_call(
        api_call("call", f"{peer.url}/echo/tampered", credential="crm"), dev_http, credentials
    )

    assert call_of(run).error == "credential 'crm' cannot be opened with this engine's key"
    assert peer.received("/echo/tampered") == []


async def test_secret_headers_do_not_follow_a_redirect_to_another_origin(
    peer: Peer, elsewhere: Peer, dev_http: httpx.AsyncClient
) -> None:
    credentials = MemoryCredentials()
    credentials.add("user-1", "crm", type="header", header_name="X-Crm-Key", value=SECRET)
    away = f"{elsewhere.url}/echo/away"
    home = f"{peer.url}/echo/home"
    headers = {"X-Custom-Token": "literal-token-123", "Cookie": "sid=abc12345", "Accept": "*/*"}

    for target in (away, home):
        run = await run_call(
            api_call(
                "call", f"{peer.url}/redirect/r", query={"to": target}, headers=headers,
                credential="crm",
            ),
            dev_http,
            credentials,
        )  # fmt: skip
        assert call_of(run).status == "succeeded", call_of(run).error

    there = elsewhere.received("/echo/away")[-1].headers
    assert "x-crm-key" not in there and "x-custom-token" not in there and "cookie" not in there
    assert there["accept"] == "*/*"
    here = peer.received("/echo/home")[-1].headers
    assert here["x-crm-key"] == SECRET and here["x-custom-token"] == "literal-token-123"


async def test_literal_secrets_are_masked_in_inputs_and_outputs(
    peer: Peer, dev_http: httpx.AsyncClient
) -> None:
    call = api_call(
        "call",
        f"{peer.url}/echo/literal?api_key=url-secret-1&page=1",
        headers={"X-Service-Token": "header-secret-2", "Accept": "application/json"},
        query={"access_token": "query-secret-3", "q": "visible"},
    )

    run = await run_call(call, dev_http)

    node = call_of(run)
    assert node.status == "succeeded", node.error
    assert node.inputs is not None
    assert node.inputs["url"] == f"{peer.url}/echo/literal?api_key=***&page=1"
    assert node.inputs["headers"]["X-Service-Token"] == "***"
    assert node.inputs["query"]["access_token"] == "***"
    assert node.inputs["query"]["q"] == "visible"
    text = events_text(run.log.events)
    for secret in ("url-secret-1", "header-secret-2", "query-secret-3"):
        assert secret not in text


async def test_httpx_logs_no_url(
    peer: Peer, dev_http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_http_logs()
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING

    await run_call(api_call("call", f"{peer.url}/echo/logs?api_key=log-secret-4"), dev_http)

    assert "log-secret-4" not in caplog.text


# The environment is not a source of secrets


async def test_the_old_api_key_env_attack_fails_and_sends_nothing(
    peer: Peer, dev_http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWSTREAM_JWT_SECRET", "the-engine-must-never-send-this")
    # A definition stored before the change, or sent straight to NATS: node configs are only
    # parsed when the node runs.
    hostile = llm("call", f"{peer.url}/v1", api_key_env="FLOWSTREAM_JWT_SECRET", prompt="hi")
    before = len(peer.requests)

    run = await run_call(hostile, dev_http)

    error = call_of(run).error or ""
    assert "api_key_env is not supported" in error
    assert len(peer.requests) == before
    assert "the-engine-must-never-send-this" not in events_text(run.log.events)
