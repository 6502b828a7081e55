"""What `make run` prints once the stack is up: the API, the console, a token and a request to try.

The first line is a marker: tests and scripts wait for it before using the stack.
"""

from __future__ import annotations

READY_MARKER = "flowstream is ready"


def nats_line(nats_url: str, subject_prefix: str) -> str:
    return f"  NATS:   {nats_url}   (connect with the token; subscribe to {subject_prefix}.>)"


def render_banner(
    api_url: str, token: str, greet_id: str | None, egress: str = "", nats: str = ""
) -> str:
    auth = f'-H "Authorization: Bearer {token}"'
    if greet_id is None:  # someone removed the example: still show a request that works
        try_line = f"curl {api_url}/api/workflows {auth}"
    else:
        try_line = (
            f"curl -N -X POST {api_url}/api/workflow/{greet_id}/execute {auth} "
            f'-H "Content-Type: application/json" '
            f'-d \'{{"inputs": {{"name": "Ada"}}}}\''
        )
    return "\n".join(
        [
            READY_MARKER,
            f"  API:    {api_url}   (docs: {api_url}/docs)",
            f"  Console: {api_url}/   (sign in with the token below)",
            f"  Token:  {token}",
            *([nats] if nats else []),
            *([egress] if egress else []),
            f"  Try:    {try_line}",  # the last line: scripts read the banner up to it
        ]
    )
