"""`flowstream`: the root command, `run`, and the `runs` and `workflows` groups."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from flowstream_client.cli import runs, workflows
from flowstream_client.cli.context import REQUEST_FAILED, RUN_FAILED, Settings, client_for
from flowstream_client.cli.inputs import InputParseError, parse_inputs
from flowstream_client.cli.render import RunView, follow
from flowstream_client.client import DEFAULT_URL

app = typer.Typer(
    help="Run flowstream workflows and watch them live.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(runs.app, name="runs")
app.add_typer(workflows.app, name="workflows")


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", envvar="FLOWSTREAM_URL", help="The gateway's address.")
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="FLOWSTREAM_TOKEN", help="A user JWT or an app key."),
    ] = None,
) -> None:
    ctx.obj = Settings(url=url, token=token)


@app.command()
def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="The workflow's id or name.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as name=value; repeat for more."),
    ] = None,
    version: Annotated[int | None, typer.Option(help="Run this version.")] = None,
) -> None:
    """Run a workflow and show its progress live; exits 1 unless it succeeds."""
    console = Console()
    with client_for(ctx) as client:
        found = client.find_workflow(workflow)
        try:
            values = parse_inputs(inputs or [], found["definition"])
        except InputParseError as exc:
            Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(REQUEST_FAILED) from None
        view = RunView()
        try:
            follow(client.stream(found["id"], values, version=version), console, view)
        except KeyboardInterrupt:
            # The stream keeps runs alive across dropped connections; leaving on purpose stops it.
            if view.run_id and view.final is None:
                client.cancel(view.run_id)
                console.print(f"stopped run {view.run_id}")
            raise typer.Exit(130) from None
    if not view.succeeded:
        raise typer.Exit(RUN_FAILED)


def main() -> None:
    app()
