"""`flowstream runs list|show|attach|cancel`."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from flowstream_client.cli.context import RUN_FAILED, client_for
from flowstream_client.cli.render import RunView, elapsed_text, follow

app = typer.Typer(help="Find, inspect, follow and stop runs.", no_args_is_help=True)


def _when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: Any) -> str:
    return elapsed_text(value / 1000) if isinstance(value, int | float) else "-"


@app.command("list")
def list_runs(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow (id or name).")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    page: int = 1,
    size: int = 20,
) -> None:
    """The newest runs first."""
    with client_for(ctx) as client:
        workflow_id = client.find_workflow(workflow)["id"] if workflow else None
        listing = client.list_runs(workflow_id=workflow_id, status=status, page=page, size=size)
    # Run ids are for copying into other commands: never cut.
    table = Table(Column("run", no_wrap=True), "workflow", "status", "created", "duration", "steps")
    for item in listing["items"]:
        table.add_row(
            item["id"],
            item["workflow_id"],
            item["status"],
            _when(item.get("created_at")),
            _ms(item.get("elapsed_ms")),
            str(item.get("total_steps") or "-"),
        )
    console = Console()
    console.print(table)
    console.print(f"page {listing['page']} of {max(listing['pages'], 1)}, {listing['total']} runs")


@app.command()
def show(ctx: typer.Context, run_id: str) -> None:
    """A run with its node executions."""
    with client_for(ctx) as client:
        detail = client.get_run(run_id)
    console = Console()
    console.print(
        f"[bold]{detail['id']}[/bold]  {detail['status']}  {_ms(detail.get('elapsed_ms'))}  "
        f"workflow {detail['workflow_id']} v{detail.get('workflow_version')}",
        highlight=False,
    )
    if detail.get("error"):
        console.print(f"[red]{detail['error']}[/red]", highlight=False)
    table = Table("node", "type", "status", "duration", "error")
    for node in detail.get("nodes", []):
        table.add_row(
            node.get("title") or node["node_id"],
            node["node_type"],
            node["status"],
            _ms(node.get("elapsed_ms")),
            node.get("error") or "",
        )
    console.print(table)
    console.print("inputs:", detail.get("inputs"), "\noutputs:", detail.get("outputs"))


@app.command()
def attach(
    ctx: typer.Context,
    run_id: str,
    last_event_id: Annotated[
        str | None, typer.Option(help="Continue after this event cursor (an SSE id).")
    ] = None,
) -> None:
    """Follow a run live (from its start, or after a cursor); leaving never stops it."""
    view = RunView(run_id=run_id)
    with client_for(ctx) as client:
        follow(client.attach(run_id, last_event_id), Console(), view)
    if not view.succeeded:
        raise typer.Exit(RUN_FAILED)


@app.command()
def cancel(ctx: typer.Context, run_id: str) -> None:
    """Stop a run (at its next node boundary; a DELAY at once)."""
    with client_for(ctx) as client:
        client.cancel(run_id)
    Console().print(f"cancelling {run_id}")
