"""A node type installed as a distribution with a `flowstream.nodes` entry point runs unchanged.

The test installs a real (if tiny) distribution: a module and a `*.dist-info` directory with
`entry_points.txt` on `sys.path`, exactly what `pip install` leaves behind, so importlib.metadata
finds it the way it finds any installed plugin.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from flowstream_engine.nodes.builtin import StartNode
from flowstream_engine.nodes.registry import (
    ENTRY_POINT_GROUP,
    node_kind,
    node_types,
    reload_plugins,
)
from flowstream_shared.events import NodeStatus, RunStatus
from flowstream_shared.validation import validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import chain, definition, end, field, node, start
from tests.unit.runs import finished_nodes, run_of

PLUGIN = """
from flowstream_shared.expressions import compile_template

from flowstream_engine.nodes.base import NodeError, NodeResult


class ShoutNode:
    name = "SHOUT"
    interruptible = False

    def parse_config(self, config):
        if "text" not in config:
            raise ValueError("SHOUT needs text")
        return dict(config)

    async def run(self, ctx):
        text = compile_template(ctx.config["text"]).render(ctx.variables)
        if not text:
            raise NodeError("nothing to shout")
        await ctx.emit_text(text.upper())
        return NodeResult(outputs={"text": text.upper() + "!"}, tokens=len(text))


class Broken:
    def __init__(self):
        raise RuntimeError("this plugin cannot load")
"""

ENTRY_POINTS = """
[flowstream.nodes]
SHOUT = flowstream_test_shout:ShoutNode
BROKEN = flowstream_test_shout:Broken
START = flowstream_test_shout:ShoutNode
"""


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[None]:
    (tmp_path / "flowstream_test_shout.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "flowstream_test_shout-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flowstream-test-shout\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    reload_plugins()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("flowstream_test_shout", None)
        importlib.invalidate_caches()
        reload_plugins()


def shouting() -> WorkflowDefinition:
    return definition(
        [
            start(field("name")),
            node("shout", "SHOUT", {"text": "hi {{input.name}}"}),
            end(answer="{{shout.text}}"),
        ],
        chain("start", "shout", "end"),
    )


@pytest.mark.usefixtures("installed_plugin")
async def test_a_plugin_node_type_validates_and_runs() -> None:
    workflow = shouting()
    # What the gateway does: only the names of the entry points.
    names = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    validate_definition(workflow, names)

    run = run_of(workflow, {"name": "ada"})
    finished = await run.execute()

    assert finished.status == RunStatus.SUCCEEDED
    assert finished.outputs == {"answer": "HI ADA!"}
    assert finished.total_tokens == len("hi ada")
    assert finished_nodes(run.log.events)["shout"].status == NodeStatus.SUCCEEDED


@pytest.mark.usefixtures("installed_plugin")
def test_a_broken_plugin_or_one_naming_a_builtin_is_left_out() -> None:
    types = node_types()

    assert "SHOUT" in types
    assert "BROKEN" not in types
    assert isinstance(node_kind("START"), StartNode)


def test_without_the_plugin_the_type_is_unknown() -> None:
    assert "SHOUT" not in node_types()


def test_a_plugin_installed_after_start_up_is_found_on_first_use(tmp_path: Path) -> None:
    assert "SHOUT" not in node_types()  # the engine has looked its plugins up already
    (tmp_path / "flowstream_test_shout.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "flowstream_test_shout-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flowstream-test-shout\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[flowstream.nodes]\nSHOUT = flowstream_test_shout:ShoutNode\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        # No reload asked for: meeting an unknown type makes the engine look again, once.
        assert node_kind("SHOUT").name == "SHOUT"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("flowstream_test_shout", None)
        importlib.invalidate_caches()
        reload_plugins()
