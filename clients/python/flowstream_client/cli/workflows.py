"""`flowstream workflows list|push|pull`: definitions to and from JSON or YAML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from flowstream_client.cli.context import REQUEST_FAILED, client_for

app = typer.Typer(help="List, push and pull workflow definitions.", no_args_is_help=True)


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    loaded = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(loaded, dict):
        raise typer.BadParameter(f"{path} does not hold a workflow definition (an object)")
    return loaded


@app.command("list")
def list_workflows(
    ctx: typer.Context, q: Annotated[str | None, typer.Option(help="Name or description.")] = None
) -> None:
    with client_for(ctx) as client:
        listing = client.list_workflows(q=q)
    table = Table("id", "name", "version", "tags", "description")
    for item in listing["items"]:
        tags = ", ".join(item["tags"])
        table.add_row(item["id"], item["name"], str(item["version"]), tags, item["description"])
    Console().print(table)


@app.command()
def push(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Create each file's workflow, or store it as a new version of the one with its name."""
    console = Console()
    with client_for(ctx) as client:
        for path in files:
            definition = _load(path)
            name = definition.get("name")
            existing = client.workflows_named(name) if isinstance(name, str) else []
            if len(existing) > 1:
                console.print(f"[red]error:[/red] {len(existing)} workflows are named {name!r}")
                raise typer.Exit(REQUEST_FAILED)
            if existing:
                stored = client.update_workflow(existing[0]["id"], definition)
                # Storing the same definition again makes no new version.
                verb = "updated" if stored["version"] != existing[0]["version"] else "unchanged"
            else:
                stored = client.create_workflow(definition)
                verb = "created"
            console.print(
                f"{verb} {stored['name']} {stored['id']} version {stored['version']}",
                highlight=False,
            )


@app.command()
def pull(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="The workflow's id or name.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (.json, .yaml or .yml); else print."),
    ] = None,
    version: Annotated[int | None, typer.Option(help="This version; the latest if absent.")] = None,
) -> None:
    """Write a workflow's definition, exactly as exported, to a file or the terminal."""
    with client_for(ctx) as client:
        definition = client.export_workflow(client.find_workflow(workflow)["id"], version)
    as_yaml = output is not None and output.suffix in (".yaml", ".yml")
    text = (
        yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)
        if as_yaml
        else json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
    )
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        Console(stderr=True).print(f"wrote {output}")
