"""The three-step `greet` workflow as a Restate service, for the peer comparison.

Served by hypercorn from the benchmark's cached virtualenv (restate-sdk is not a project
dependency): `python -m hypercorn bench.restate_greeter:app`. Each node of our workflow is one
journaled step (`ctx.run_typed`), so Restate persists a result per step as our engine persists
events per node: START checks the inputs, TEMPLATE renders the greeting, END maps the outputs.
"""

from typing import Any

import restate  # type: ignore[import-not-found, unused-ignore]


def start_node(inputs: dict[str, Any]) -> dict[str, Any]:
    name = inputs.get("name")
    if not isinstance(name, str):
        raise restate.TerminalError("input `name` is required and must be a string")
    return {"name": name}


def template_node(inputs: dict[str, Any]) -> str:
    return f"Hello {inputs['name']}!"


def end_node(text: str) -> dict[str, Any]:
    return {"answer": text}


async def run(ctx: Any, request: dict[str, Any]) -> dict[str, Any]:
    options = restate.RunOptions()
    inputs = await ctx.run_typed("start", start_node, options, request.get("inputs", {}))
    text = await ctx.run_typed("greet", template_node, options, inputs)
    outputs: dict[str, Any] = await ctx.run_typed("end", end_node, options, text)
    return outputs


greet = restate.Service("Greet")
greet.handler("run")(run)
app = restate.app([greet])
