"""Shows a run as it happens: a live table of nodes, a progress bar and the streamed text on a
terminal; plain lines (the text streamed as it comes) when the output is a pipe or a file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from flowstream_client.events import RunEvent

ICONS = {
    "pending": "·",
    "running": "▸",
    "succeeded": "✓",
    "failed": "✗",
    "exception": "!",
    "stopped": "■",
    "retry": "↻",
}
STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "stopped": "yellow"}


def elapsed_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


@dataclass
class NodeLine:
    title: str
    node_type: str
    status: str = "running"
    elapsed: float | None = None
    error: str | None = None


@dataclass
class RunView:
    """What the run looks like after the events so far."""

    run_id: str | None = None
    status: str = "pending"
    percent: float = 0
    nodes: dict[str, NodeLine] = field(default_factory=dict)
    text: str = ""
    final: dict[str, Any] | None = None
    error: str | None = None

    def apply(self, event: RunEvent) -> None:
        data = event.data
        if event.event == "workflow_started":
            self.run_id, self.status = event.workflow_run_id, "running"
        elif event.event == "node_started":
            self.nodes[data["node_id"]] = NodeLine(
                data.get("title") or data["node_id"], data.get("node_type", "")
            )
        elif event.event in ("node_finished", "node_retry"):
            line = self.nodes.setdefault(
                data["node_id"],
                NodeLine(data.get("title") or data["node_id"], data.get("node_type", "")),
            )
            line.status, line.elapsed, line.error = (
                data.get("status", "?"),
                data.get("elapsed_time"),
                data.get("error"),
            )
        elif event.event == "text_chunk":
            self.text += str(data.get("text", ""))
        elif event.event == "workflow_progress":
            self.percent = float(data.get("percent", self.percent))
        elif event.event in ("workflow_paused", "workflow_resumed"):
            self.status = str(data.get("status", self.status))
        elif event.event == "workflow_finished":
            self.final, self.status = data, str(data.get("status"))
            self.error = data.get("error")
            if self.status == "succeeded":
                self.percent = 100
        elif event.event == "error":
            self.status, self.error = "failed", str(data.get("message"))

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def renderable(self) -> RenderableType:
        table = Table.grid(padding=(0, 2))
        for line in self.nodes.values():
            style = STYLES.get(line.status, "")
            table.add_row(
                Text(ICONS.get(line.status, "?"), style=style),
                Text(line.title, style="bold"),
                Text(line.node_type, style="dim"),
                Text(line.status, style=style),
                Text(elapsed_text(line.elapsed), style="dim"),
                Text(line.error or "", style="red"),
            )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=100, completed=self.percent, width=40),
            f"{self.percent:.0f}%",
            self.status,
        )
        parts: list[RenderableType] = [bar, table]
        if self.text:
            parts.append(Panel(Text(self.text), title="streamed text", title_align="left"))
        return Group(*parts)


class PlainPrinter:
    """One line per step; streamed text is written as it arrives, so a pipe sees it live."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._mid_text = False

    def _line(self, text: str) -> None:
        if self._mid_text:
            self._console.out("")
            self._mid_text = False
        self._console.out(text, highlight=False)

    def show(self, event: RunEvent, view: RunView) -> None:
        data = event.data
        if event.event == "workflow_started":
            self._line(f"run {event.workflow_run_id} started")
        elif event.event == "node_started":
            title = data.get("title") or data.get("node_id")
            self._line(f"{ICONS['running']} {title} ({data.get('node_type')})")
        elif event.event == "text_chunk":
            self._console.out(str(data.get("text", "")), end="", highlight=False)
            self._mid_text = True
        elif event.event in ("node_finished", "node_retry"):
            status = str(data.get("status"))
            took = elapsed_text(data.get("elapsed_time"))
            error = f": {data['error']}" if data.get("error") else ""
            title = data.get("title") or data.get("node_id")
            self._line(f"{ICONS.get(status, '?')} {title} {status} {took}{error}")
        elif event.event == "workflow_progress":
            filled = int(view.percent / 5)
            self._line(f"[{'#' * filled}{'.' * (20 - filled)}] {view.percent:.0f}%")
        elif event.event in ("workflow_paused", "workflow_resumed"):
            self._line(f"run {data.get('status')}")
        elif event.event == "error":
            self._line(f"error: {data.get('message')}")


def follow(events: Iterable[RunEvent], console: Console, view: RunView) -> RunView:
    """Shows `events` until the run ends; returns what it looked like at the end."""
    if console.is_terminal:
        with Live(view.renderable(), console=console, refresh_per_second=12) as live:
            for event in events:
                view.apply(event)
                live.update(view.renderable())
    else:
        printer = PlainPrinter(console)
        for event in events:
            view.apply(event)
            printer.show(event, view)
    summarize(view, console)
    return view


def summarize(view: RunView, console: Console) -> None:
    final = view.final or {}
    took = elapsed_text(final.get("elapsed_time"))
    style = "green" if view.succeeded else "red"
    console.print(Text(f"{view.status} {took}".strip(), style=f"bold {style}"))
    if view.error:
        console.print(Text(view.error, style="red"))
    if final.get("outputs"):
        console.print_json(json.dumps(final["outputs"]))
