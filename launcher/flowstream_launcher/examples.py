"""The example workflows: read from a directory, loaded into a running gateway once.

Each `*.json` file is a workflow definition. It is created only if no workflow has exactly its
name, so restarting the stack does not pile up copies, and ids printed earlier stay valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


class ExampleError(RuntimeError):
    """An example could not be read or the gateway refused it; the message names the file."""


@dataclass(frozen=True)
class Example:
    path: Path
    definition: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.definition["name"])


def read_examples(directory: Path) -> list[Example]:
    """Read every example up front, so a broken file is reported before anything starts."""
    return [_read(path) for path in sorted(directory.glob("*.json"))]


async def load_examples(client: httpx.AsyncClient, examples: list[Example]) -> dict[str, str]:
    """Make sure every example exists; return the workflow id of each, by name.

    `client` points at the gateway (base_url) and carries the token.
    """
    ids: dict[str, str] = {}
    for example in examples:
        ids[example.name] = await _find_by_name(client, example.name) or await _create(
            client, example
        )
    return ids


def _read(path: Path) -> Example:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExampleError(f"{path}: {exc}") from exc
    if not isinstance(definition, dict) or not isinstance(definition.get("name"), str):
        raise ExampleError(f"{path}: not a workflow definition (a JSON object with a `name`)")
    return Example(path, definition)


async def _find_by_name(client: httpx.AsyncClient, name: str) -> str | None:
    # `q` is a search, not an exact match: filter on the name here.
    doing = f"listing workflows named {name!r}"
    response = await client.get("/api/workflows", params={"q": name, "size": 100})
    items = _json(response, doing)["items"]
    return next((str(item["id"]) for item in items if item.get("name") == name), None)


async def _create(client: httpx.AsyncClient, example: Example) -> str:
    response = await client.post("/api/workflows", json=example.definition)
    return str(_json(response, f"creating the workflow in {example.path}")["id"])


def _json(response: httpx.Response, doing: str) -> Any:
    if not response.is_success:
        raise ExampleError(f"{doing}: HTTP {response.status_code} {response.text}")
    try:
        return response.json()
    except ValueError as exc:
        raise ExampleError(f"{doing}: the gateway answered something other than JSON") from exc
