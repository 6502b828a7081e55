"""A fake LLM provider that replays recorded answers of the three wire protocols.

The answers live in `tests/fixtures/llm/<protocol>/<scenario>.sse|.json`, written from the
providers' public API references. The route names the protocol (`/v1/chat/completions`,
`/v1/responses`, `/v1/messages`) and the request's `model` names the scenario: `text`,
`tool_calls`, `error`, `truncated`, … A request asking for a stream gets the `.sse` recording,
one event per write, else the `.json` one; when a scenario has only one of them, that one is
sent whatever was asked (as a server that ignores `stream` would). `http_error` answers 429
with the provider's error body. A model `<protocol>/<scenario>` replays another protocol's
recording (a node pointed at the wrong API). Every request is recorded on the `Peer`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.e2e.peers import Peer, _serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm"
ROUTES = {
    "/v1/chat/completions": "chat_completions",
    "/v1/responses": "responses",
    "/v1/messages": "anthropic_messages",
}
# The answer every `text` recording carries, and its usage in every protocol.
TEXT = "The capital of France is Paris."
TEXT_DELTAS = ["The", " capital", " of", " France", " is", " Paris", "."]
TEXT_USAGE = {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}
TOOL_USAGE = {"prompt_tokens": 82, "completion_tokens": 47, "total_tokens": 129}
TOOL_ARGUMENTS = [{"city": "Paris", "unit": "celsius"}, {"city": "Tokyo"}]


def recording(protocol: str, scenario: str, stream: bool) -> Path:
    wanted, other = (".sse", ".json") if stream else (".json", ".sse")
    for suffix in (wanted, other):
        path = FIXTURES / protocol / f"{scenario}{suffix}"
        if path.is_file():
            return path
    raise LookupError(f"no recording {protocol}/{scenario}")


def sse_events(path: Path) -> list[str]:
    """The recording's events, each with its blank-line terminator."""
    return [block + "\n\n" for block in path.read_text().split("\n\n") if block.strip()]


def _app(peer: Peer) -> Starlette:
    async def answer(request: Request) -> Response:
        seen = await peer.record(request)
        body = seen.json()
        protocol, scenario = ROUTES[request.url.path], str(body["model"])
        if "/" in scenario:
            protocol, scenario = scenario.split("/", 1)
        try:
            path = recording(protocol, scenario, bool(body.get("stream")))
        except LookupError as exc:
            return Response(json.dumps({"error": {"message": str(exc)}}), status_code=404)
        if path.suffix == ".json":
            status = 429 if scenario == "http_error" else 200
            return Response(path.read_bytes(), status_code=status, media_type="application/json")

        async def replay() -> AsyncIterator[str]:
            for event in sse_events(path):
                yield event

        return StreamingResponse(replay(), media_type="text/event-stream")

    return Starlette(routes=[Route(path, answer, methods=["POST"]) for path in ROUTES])


@contextlib.asynccontextmanager
async def llm_peer() -> AsyncIterator[Peer]:
    """The replaying provider; its `base_url` for an LLM node is `<url>/v1`."""
    peer = Peer()
    async with _serving(_app(peer), peer) as serving:
        yield serving
