"""Heavy templates render in real render processes: they fail with the render's own message,
never hold the event loop, and a process that does not answer is killed and replaced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flowstream_engine.limits import RunLimits
from flowstream_engine.render.renderer import Renderer
from flowstream_shared.sandbox import ExpressionError, TemplateLimits

NESTED_LOOPS = (
    "{% for a in 'x' * 1000 %}{% for b in 'x' * 90 %}{{ ('y' * 100000)|upper|length }}"
    "{% endfor %}{% endfor %}"
)
# Long C-level work between two checks of the budget: only the hard deadline stops it.
UNCHECKED = "{{ ('x' * 999999)|list|map('upper')|map('lower')|map('upper')|list|length }}"


@pytest.fixture
async def renderer() -> AsyncIterator[Renderer]:
    rendering = Renderer(RunLimits())
    await rendering.pool.start()
    yield rendering
    await rendering.close()


async def _loop_stall_while(work: asyncio.Future[Any]) -> float:
    """The longest the event loop went without running a 5 ms timer while `work` ran."""
    worst = 0.0
    while not work.done():
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        worst = max(worst, time.perf_counter() - started - 0.005)
    return worst


async def test_a_heavy_template_renders_in_a_process(renderer: Renderer) -> None:
    source = "{% for i in input.items %}{{ i }};{% endfor %}"
    assert not renderer.limits.template.max_output < 100
    assert await renderer.text(source, {"input": {"items": [1, 2]}, "other": "x"}) == "1;2;"
    assert await renderer.chunks(source, {"input": {"items": [1, 2]}}) == ["1;2;"]
    assert await renderer.value("{{ input.n * 2 }}", {"input": {"n": 21}}) == 42
    assert await renderer.condition("{{ input.n * 2 }} > 40", {"input": {"n": 21}}) is True
    body = {"a": "{{ input.n ** 2 }}", "b": ["{{ input.n }}", 3]}
    assert await renderer.structure(body, {"input": {"n": 3}}) == {"a": 9, "b": [3, 3]}


async def test_a_hostile_render_fails_on_its_budget_without_holding_the_loop(
    renderer: Renderer,
) -> None:
    render = asyncio.ensure_future(renderer.text(NESTED_LOOPS, {}))
    stall = await _loop_stall_while(render)
    with pytest.raises(ExpressionError, match="CPU budget of 1s"):
        await render
    assert stall < 0.1, f"the event loop stalled for {stall:.3f}s"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 3**(10**7) }}", "`\\*\\*` would build"),
        ("{% for a in 'x' * 1000 %}{% for b in 'x' * 1000 %}{% endfor %}{% endfor %}", "steps"),
        ("{% set a = 'x' * 1000000 %}{{ ([a] * 1000) | map('upper') | list | length }}", "memory"),
    ],
)
async def test_each_failure_names_its_limit(renderer: Renderer, source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        await renderer.text(source, {})
    assert await renderer.text("{% if 1 %}ok{% endif %}", {}) == "ok"  # the pool recovered


async def test_a_process_that_does_not_answer_in_time_is_replaced() -> None:
    rendering = Renderer(RunLimits(template=TemplateLimits(cpu_seconds=0.1), render_workers=1))
    try:
        await rendering.pool.start()  # starting a process is not part of the render's time
        started = time.perf_counter()
        with pytest.raises(ExpressionError, match="render process was stopped"):
            await rendering.text(UNCHECKED, {})
        assert time.perf_counter() - started < rendering.pool.timeout_s + 1.0
        assert await rendering.text("{% if 1 %}again{% endif %}", {}) == "again"
    finally:
        await rendering.close()


async def test_renders_beyond_the_pool_size_wait_their_turn(renderer: Renderer) -> None:
    source = "{% for i in input.items %}{{ i }}{% endfor %}"
    results = await asyncio.gather(
        *(renderer.text(source, {"input": {"items": [n]}}) for n in range(10))
    )
    assert results == [str(n) for n in range(10)]
    assert renderer.pool.size == renderer.limits.render_workers


async def test_a_light_template_never_leaves_the_loop(renderer: Renderer) -> None:
    await renderer.close()  # no process at all: plain references still render
    assert await renderer.text("Hello {{input.name}}!", {"input": {"name": "Ada"}}) == "Hello Ada!"
    assert renderer.pool.size == 0
