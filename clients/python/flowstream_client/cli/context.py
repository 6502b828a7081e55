"""What every command shares: the client built from the global options, and error reporting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from rich.console import Console

from flowstream_client.client import FlowstreamClient
from flowstream_client.errors import FlowstreamError

# Exit codes: 1 = the run did not succeed, 2 = the request was refused or could not be made.
RUN_FAILED = 1
REQUEST_FAILED = 2


@dataclass
class Settings:
    url: str
    token: str | None


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


@contextmanager
def client_for(ctx: typer.Context) -> Iterator[FlowstreamClient]:
    """A client for the command; an API error ends the command with its message, not a trace."""
    config = settings(ctx)
    err = Console(stderr=True)
    try:
        with FlowstreamClient(config.url, config.token) as client:
            yield client
    except FlowstreamError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        if exc.status == 401 and not config.token:
            err.print("set FLOWSTREAM_TOKEN or pass --token (make run prints one)")
        raise typer.Exit(REQUEST_FAILED) from None
