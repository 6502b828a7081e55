"""START, END, TEMPLATE, CONDITION, DELAY, and the kinds of PARALLEL and LOOP.

PARALLEL and LOOP shape the schedule rather than compute: the executor runs their branches and
bodies (`flowstream_engine.run`); their kinds parse the config and record what they did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from flowstream_shared.expressions import ExpressionError
from flowstream_shared.inputs import InputError, validate_inputs
from flowstream_shared.workflow import (
    ConditionConfig,
    DelayConfig,
    EndConfig,
    LoopConfig,
    ParallelConfig,
    StartConfig,
    TemplateConfig,
)
from pydantic import BaseModel

from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult


@dataclass(frozen=True)
class _Builtin:
    config_model: ClassVar[type[BaseModel]]
    name: ClassVar[str]
    interruptible: ClassVar[bool] = False
    # Touches nothing outside the run: may start before its `node_started` is stored.
    pure: ClassVar[bool] = True

    def parse_config(self, config: Mapping[str, Any]) -> Any:
        return self.config_model.model_validate(config)


class StartNode(_Builtin):
    config_model = StartConfig
    name = "START"

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: StartConfig = ctx.config
        try:
            inputs = validate_inputs(config.inputs, dict(ctx.variables["input"]))
        except InputError as exc:
            raise NodeError(str(exc)) from exc
        return NodeResult(outputs=inputs, inputs=inputs)


class EndNode(_Builtin):
    config_model = EndConfig
    name = "END"

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: EndConfig = ctx.config
        outputs: dict[str, Any] = {}
        try:
            for key, source in config.outputs.items():
                outputs[key] = await ctx.templates.value(source, ctx.variables)
        except ExpressionError as exc:
            raise NodeError(str(exc)) from exc
        return NodeResult(outputs=outputs)


class TemplateNode(_Builtin):
    config_model = TemplateConfig
    name = "TEMPLATE"

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: TemplateConfig = ctx.config
        try:
            if not config.stream:
                return NodeResult(
                    outputs={"text": await ctx.templates.text(config.template, ctx.variables)}
                )
            pieces = await ctx.templates.chunks(config.template, ctx.variables)
        except ExpressionError as exc:
            raise NodeError(str(exc)) from exc
        # Rendered in full first: a render that fails its budget streams nothing.
        for piece in pieces:
            await ctx.emit_text(piece)
        return NodeResult(outputs={"text": "".join(pieces)})


class ConditionNode(_Builtin):
    config_model = ConditionConfig
    name = "CONDITION"

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: ConditionConfig = ctx.config
        try:
            result = await ctx.templates.condition(config.condition, ctx.variables)
        except ExpressionError as exc:
            raise NodeError(f"condition {config.condition!r}: {exc}") from exc
        return NodeResult(
            outputs={"result": result}, inputs={"condition": config.condition}, branch=result
        )


class DelayNode(_Builtin):
    config_model = DelayConfig
    name = "DELAY"
    interruptible = True

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: DelayConfig = ctx.config
        await asyncio.sleep(config.seconds)
        return NodeResult(outputs={"seconds": config.seconds}, inputs={"seconds": config.seconds})


class ParallelNode(_Builtin):
    """Its outgoing PARALLEL connections are its branches; the scheduler starts them."""

    config_model = ParallelConfig
    name = "PARALLEL"

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: ParallelConfig = ctx.config
        return NodeResult(outputs={}, inputs=config.model_dump())


class LoopNode(_Builtin):
    """The executor runs a LOOP's body itself (`flowstream_engine.run.loop`)."""

    config_model = LoopConfig
    name = "LOOP"

    async def run(self, ctx: NodeContext) -> NodeResult:
        raise NodeError("a LOOP runs only under the executor")


BUILTIN_KINDS = (
    StartNode(),
    EndNode(),
    TemplateNode(),
    ConditionNode(),
    DelayNode(),
    ParallelNode(),
    LoopNode(),
)
