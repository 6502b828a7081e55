"""Local HTTP peers for end-to-end tests: a small REST API and an OpenAI-compatible chat server.

Each peer is an async context manager that serves a Starlette app with uvicorn on a free port of
127.0.0.1, in the test's event loop. The engine is another process and reaches them over real
TCP. A peer records every request it receives (method, path, query, headers, body, arrival time)
and signals what it sees as events a test can await: a request arriving, a client going away.
Readiness is uvicorn's `started` flag, announced by an event set right after startup: no polling.

Tests share a peer; each passes its own `key` in the paths it calls, so they never meet.

REST peer (`http_peer`):

| route | answers |
|---|---|
| `/users/{uid}` | JSON user; `nickname` is null and `roles` empty for uids starting `anon` |
| `/data/{key}` (any method; `key` may hold `/`) | `{"data": {"id", "status", "received"}}` |
| `/echo/{key}` (any method) | JSON of what it got: `method`, `query`, `headers`, `text`, `json` |
| `/text/{key}` | `plain words` as text/plain |
| `/status/{code}/{key}` | that status with a long text body |
| `/recovers/{key}?after=N` | 503 to the first N calls, then JSON `{"attempt": n}` |
| `/job/{key}?done_after=N` | `{"state": "running"}` until the Nth call, then `"done"` |
| `/fails/{key}/{i}?at=A` | 500 when `i` is `A`, else JSON `{"i": i}` |
| `/hold/{key}` | never answers: signals `arrived[key]`, then `gone[key]` when the client leaves |
| `/when/{key}` | answers once `/hold/{key}` has arrived |
| `/meet/{key}?size=N` | a barrier: holds each call until N calls of `key` are in flight together |
| `/redirect/{key}?to=URL` | `302` to `URL` |

`/data/{key}`: `status` is `failure` for keys starting `fail`, else `success`; `received` is the
JSON body it got; each call signals `arrived["data/<key>"]`.

OpenAI-compatible peer (`chat_peer`): `POST /v1/chat/completions` streams `You said: <last
message>` in 4-character deltas, then `usage` when asked. Model `refuse` answers 401; model
`gated-<key>` streams the first delta, then waits for `release[key]` before the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

# How long a peer waits for something a test arranges (a barrier partner, a release) before it
# answers with an error that fails the test clearly instead of hanging it.
PATIENCE = 15.0
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class Signals:
    """One `asyncio.Event` per key, made on first use by whichever side asks first."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def __getitem__(self, key: str) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    async def wait(self, key: str, within: float = PATIENCE) -> None:
        try:
            async with asyncio.timeout(within):
                await self[key].wait()
        except TimeoutError:
            raise AssertionError(f"the peer did not see {key!r} within {within}s") from None


@dataclass
class _Meeting:
    in_flight: int = 0
    peak: int = 0
    waiting: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Peer:
    """What a peer received and saw. `url` is its origin, `http://127.0.0.1:<port>`."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    arrived: Signals = field(default_factory=Signals)
    gone: Signals = field(default_factory=Signals)
    release: Signals = field(default_factory=Signals)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    meetings: dict[str, _Meeting] = field(default_factory=lambda: defaultdict(_Meeting))

    def received(self, path: str) -> list[Received]:
        """The requests whose path is `path` or lies under it, in arrival order."""
        return [r for r in self.requests if r.path == path or r.path.startswith(path + "/")]

    def peak_in_flight(self, key: str) -> int:
        return self.meetings[key].peak

    async def record(self, request: Request) -> Received:
        seen = Received(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers),
            body=await request.body(),
            at=time.monotonic(),
        )
        self.requests.append(seen)
        return seen

    async def until_disconnect(self, request: Request) -> bool:
        """Wait until the client goes away (True) or the peer shuts down (False).

        Once the body is read, the next ASGI `receive` is `http.disconnect`, when it happens.
        """
        receive = asyncio.ensure_future(request.receive())
        closing = asyncio.ensure_future(self.closing.wait())
        done, pending = await asyncio.wait({receive, closing}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return receive in done and receive.result()["type"] == "http.disconnect"


class _Server(uvicorn.Server):
    """uvicorn, announcing `started` by an event and leaving signal handlers to pytest."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def _serving(app: Starlette, peer: Peer, host: str = "127.0.0.1") -> AsyncIterator[Peer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    peer.url = f"http://{host}:{sock.getsockname()[1]}"
    server = _Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    done, _ = await asyncio.wait(
        {serving, ready}, timeout=PATIENCE, return_when=asyncio.FIRST_COMPLETED
    )
    if ready not in done:
        ready.cancel()
        server.should_exit = True
        await serving  # raises what kept it from starting, if anything did
        raise RuntimeError("the peer did not start")
    try:
        yield peer
    finally:
        peer.closing.set()  # held requests answer, so shutdown need not wait for them
        server.should_exit = True
        await serving
        sock.close()


# The REST peer


Handler = Callable[[Request], Awaitable[Response]]


def _rest_app(peer: Peer) -> Starlette:
    async def user(request: Request) -> Response:
        await peer.record(request)
        uid = request.path_params["uid"]
        anonymous = uid.startswith("anon")
        return JSONResponse(
            {
                "user": {
                    "id": uid,
                    "name": "Ada Lovelace",
                    "nickname": None if anonymous else "ada",
                    "roles": [] if anonymous else ["admin"],
                }
            }
        )

    async def echo(request: Request) -> Response:
        seen = await peer.record(request)
        try:
            parsed = seen.json() if seen.body else None
        except ValueError:
            parsed = None
        return JSONResponse(
            {
                "method": seen.method,
                "query": seen.query,
                "headers": seen.headers,
                "text": seen.text,
                "json": parsed,
            }
        )

    async def text(request: Request) -> Response:
        await peer.record(request)
        return PlainTextResponse("plain words")

    async def status(request: Request) -> Response:
        await peer.record(request)
        code = int(request.path_params["code"])
        return PlainTextResponse(f"status {code}: " + "detail " * 100, status_code=code)

    async def recovers(request: Request) -> Response:
        await peer.record(request)
        key = f"recovers/{request.path_params['key']}"
        peer.calls[key] += 1
        attempt = peer.calls[key]
        if attempt <= int(request.query_params["after"]):
            return PlainTextResponse(f"not yet (attempt {attempt})", status_code=503)
        return JSONResponse({"attempt": attempt})

    async def job(request: Request) -> Response:
        await peer.record(request)
        key = f"job/{request.path_params['key']}"
        peer.calls[key] += 1
        polls = peer.calls[key]
        done = polls >= int(request.query_params["done_after"])
        return JSONResponse({"state": "done" if done else "running", "polls": polls})

    async def fails(request: Request) -> Response:
        await peer.record(request)
        index = int(request.path_params["i"])
        if index == int(request.query_params["at"]):
            return PlainTextResponse(f"iteration {index} broke", status_code=500)
        return JSONResponse({"i": index})

    async def hold(request: Request) -> Response:
        await peer.record(request)
        key = request.path_params["key"]
        peer.arrived[key].set()
        if await peer.until_disconnect(request):
            peer.gone[key].set()
        return PlainTextResponse("too late")

    async def when(request: Request) -> Response:
        await peer.record(request)
        key = request.path_params["key"]
        try:
            async with asyncio.timeout(PATIENCE):
                await peer.arrived[key].wait()
        except TimeoutError:
            return PlainTextResponse(f"/hold/{key} never arrived", status_code=504)
        return JSONResponse({"after": key})

    async def meet(request: Request) -> Response:
        await peer.record(request)
        meeting = peer.meetings[request.path_params["key"]]
        meeting.in_flight += 1
        meeting.peak = max(meeting.peak, meeting.in_flight)
        try:
            gate = meeting.gate
            meeting.waiting += 1
            if meeting.waiting == int(request.query_params["size"]):
                meeting.waiting, meeting.gate = 0, asyncio.Event()
                gate.set()
            try:
                async with asyncio.timeout(PATIENCE):
                    await gate.wait()
            except TimeoutError:
                return PlainTextResponse("nobody came to meet", status_code=504)
            return JSONResponse({"met": True})
        finally:
            meeting.in_flight -= 1

    async def data(request: Request) -> Response:
        seen = await peer.record(request)
        key = request.path_params["key"]
        peer.arrived[f"data/{key}"].set()
        return JSONResponse(
            {
                "data": {
                    "id": key,
                    "status": "failure" if key.startswith("fail") else "success",
                    "received": seen.json() if seen.body else None,
                }
            }
        )

    async def redirect(request: Request) -> Response:
        await peer.record(request)
        return RedirectResponse(request.query_params["to"], status_code=302)

    routes: list[tuple[str, Handler, list[str]]] = [
        ("/users/{uid}", user, ["GET"]),
        ("/data/{key:path}", data, ALL_METHODS),
        ("/echo/{key}", echo, ALL_METHODS),
        ("/text/{key}", text, ALL_METHODS),
        ("/status/{code:int}/{key}", status, ALL_METHODS),
        ("/recovers/{key}", recovers, ALL_METHODS),
        ("/job/{key}", job, ["GET"]),
        ("/fails/{key}/{i:int}", fails, ["GET"]),
        ("/hold/{key}", hold, ALL_METHODS),
        ("/when/{key}", when, ["GET"]),
        ("/meet/{key}", meet, ["GET"]),
        ("/redirect/{key}", redirect, ALL_METHODS),
    ]
    return Starlette(routes=[Route(path, h, methods=m) for path, h, m in routes])


@contextlib.asynccontextmanager
async def http_peer(host: str = "127.0.0.1") -> AsyncIterator[Peer]:
    """The REST peer (see the module docstring for its routes), on a loopback address."""
    peer = Peer()
    async with _serving(_rest_app(peer), peer, host) as serving:
        yield serving


# The OpenAI-compatible peer

PIECE = 4


def answer_pieces(said: str) -> list[str]:
    """The deltas the chat peer streams for a last message `said`."""
    answer = f"You said: {said}"
    return [answer[i : i + PIECE] for i in range(0, len(answer), PIECE)]


def usage_for(said: str) -> dict[str, int]:
    pieces = len(answer_pieces(said))
    return {"prompt_tokens": 11, "completion_tokens": pieces, "total_tokens": 11 + pieces}


def _chat_app(peer: Peer) -> Starlette:
    async def chat(request: Request) -> Response:
        seen = await peer.record(request)
        payload = seen.json()
        model: str = payload["model"]
        if model == "refuse":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        said = payload["messages"][-1]["content"]
        pieces = answer_pieces(said)
        include_usage = (payload.get("stream_options") or {}).get("include_usage")
        gate = model.removeprefix("gated-") if model.startswith("gated-") else None

        def frame(body: dict[str, Any]) -> str:
            return f"data: {json.dumps({'id': 'c1', 'model': model, **body})}\n\n"

        async def stream() -> AsyncIterator[str]:
            yield ": keep-alive comment\n\n"
            for number, piece in enumerate(pieces):
                if number == 1 and gate is not None:
                    async with asyncio.timeout(PATIENCE):
                        await peer.release[gate].wait()
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                yield frame({"object": "chat.completion.chunk", "choices": [delta]})
            yield frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if include_usage:
                yield frame({"choices": [], "usage": usage_for(said)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@contextlib.asynccontextmanager
async def chat_peer() -> AsyncIterator[Peer]:
    """The OpenAI-compatible peer; its `base_url` for an LLM node is `<url>/v1`."""
    peer = Peer()
    async with _serving(_chat_app(peer), peer) as serving:
        yield serving
