"""How nodes render their templates: light ones inline, the rest in a render process.

A light template (`Template.light`: references, comparisons, a few filters) costs time in
proportion to its size and its values, so it renders on the event loop as it always did: the
plain-reference path stays as fast as before. Anything else goes to the `RenderPool`. Errors are
`ExpressionError`s with the message a node shows, whichever way the template rendered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from flowstream_shared.expressions import (
    compile_condition,
    compile_template,
    render_value,
    value_is_light,
)

from flowstream_engine.limits import RunLimits, run_limits
from flowstream_engine.render import protocol
from flowstream_engine.render.pool import RenderPool


def _only(roots: frozenset[str], variables: Mapping[str, Any]) -> dict[str, Any]:
    return {root: variables[root] for root in roots if root in variables}


def _roots(value: Any) -> frozenset[str]:
    """Every name the templates inside a JSON-like value may reference."""
    if isinstance(value, str):
        return compile_template(value).roots
    if isinstance(value, Mapping):
        return frozenset().union(*(_roots(v) for v in value.values()))
    if isinstance(value, list):
        return frozenset().union(*(_roots(v) for v in value))
    return frozenset()


class Renderer:
    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self.pool = RenderPool(limits)

    async def text(self, source: str, variables: Mapping[str, Any]) -> str:
        template = compile_template(source)
        if template.light:
            return template.render(variables)
        result: str = await self._remote("text", source, template.roots, variables)
        return result

    async def chunks(self, source: str, variables: Mapping[str, Any]) -> list[str]:
        """The text in the pieces a stream emits, each a `text_chunk`."""
        template = compile_template(source)
        if template.light:
            return [piece for piece in template.chunks(variables) if piece]
        result: list[str] = await self._remote("chunks", source, template.roots, variables)
        return result

    async def value(self, source: str, variables: Mapping[str, Any]) -> Any:
        """A template's value: typed when the template is a single reference."""
        template = compile_template(source)
        if template.light:
            return template.value(variables)
        return await self._remote("value", source, template.roots, variables)

    async def condition(self, source: str, variables: Mapping[str, Any]) -> bool:
        condition = compile_condition(source)
        if condition.light:
            return condition.evaluate(variables)
        return bool(await self._remote("condition", source, condition.roots, variables))

    async def structure(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """Every template string inside a JSON-like value rendered (an API_CALL body)."""
        if value_is_light(value):
            return render_value(value, variables)
        return await self._remote("structure", value, _roots(value), variables)

    async def _remote(
        self,
        op: protocol.Operation,
        template: Any,
        roots: frozenset[str],
        variables: Mapping[str, Any],
    ) -> Any:
        request: protocol.Request = {
            "op": op,
            "template": template,
            "variables": _only(roots, variables),
        }
        return await self.pool.render(request)

    async def close(self) -> None:
        await self.pool.close()


_shared: Renderer | None = None
_shared_loop: asyncio.AbstractEventLoop | None = None


def shared_renderer() -> Renderer:
    """The process's renderer (its processes belong to the running event loop)."""
    global _shared, _shared_loop
    loop = asyncio.get_running_loop()
    if _shared is None or _shared_loop is not loop:
        _shared, _shared_loop = Renderer(run_limits()), loop
    return _shared


async def close_shared_renderer() -> None:
    global _shared, _shared_loop
    renderer, _shared, _shared_loop = _shared, None, None
    if renderer is not None:
        await renderer.close()
