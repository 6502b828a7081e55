"""The LLM node: render the prompt, call the provider in its protocol, stream or re-cut the text.

`upstream_stream` decides what is asked of the provider; `stream` decides whether `text_chunk`s
are emitted. Either way the answer folds into one :class:`Answer`, so all four combinations give
the same outputs: a streamed answer that is not wanted as chunks is simply not emitted, and a
whole answer that is wanted as chunks is cut on word boundaries (`split_text`). Whatever the
server actually sends (a stream or one JSON body) is read by its content type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from flowstream_shared.expressions import ExpressionError
from flowstream_shared.workflow import LlmApi, LlmConfig
from httpx_sse import EventSource

from flowstream_engine.http import shared_client
from flowstream_engine.nodes.api_call import check_url, decode_body, excerpt, read_capped
from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult
from flowstream_engine.nodes.llm.answer import Answer, split_text
from flowstream_engine.nodes.llm.anthropic_messages import AnthropicMessages
from flowstream_engine.nodes.llm.auth import provider_headers, redact, secret_for
from flowstream_engine.nodes.llm.chat_completions import ChatCompletions
from flowstream_engine.nodes.llm.protocol import Prompt, WireProtocol, json_object
from flowstream_engine.nodes.llm.responses import Responses

PROTOCOLS: dict[LlmApi, WireProtocol] = {
    "chat_completions": ChatCompletions(),
    "responses": Responses(),
    "anthropic_messages": AnthropicMessages(),
}


async def render_prompt(ctx: NodeContext, config: LlmConfig) -> Prompt:
    async def render(source: str) -> str:
        return await ctx.templates.text(source, ctx.variables)

    try:
        turns = [{"role": m.role, "content": await render(m.content)} for m in config.messages]
        if config.prompt is not None:
            turns.append({"role": "user", "content": await render(config.prompt)})
        system = await render(config.system) if config.system else None
        return Prompt(system=system, turns=turns)
    except ExpressionError as exc:
        raise NodeError(str(exc)) from exc


class LlmNode:
    name: ClassVar[str] = "LLM"
    interruptible: ClassVar[bool] = True

    def parse_config(self, config: Mapping[str, Any]) -> LlmConfig:
        return LlmConfig.model_validate(config)

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: LlmConfig = ctx.config
        protocol = PROTOCOLS[config.api]
        prompt = await render_prompt(ctx, config)
        url = check_url(config.base_url.rstrip("/") + protocol.path)
        secret = await secret_for(ctx, config, url)
        answer = Answer()
        try:
            await self._call(ctx, config, protocol, url, prompt, secret, answer)
        except NodeError as exc:
            raise NodeError(redact(str(exc), secret)) from None
        except httpx.TimeoutException as exc:
            raise NodeError(f"the LLM endpoint did not answer within {config.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            message = redact(f"the LLM endpoint: {type(exc).__name__}: {exc}", secret)
            raise NodeError(message) from exc
        if not answer.complete:
            raise NodeError(
                f"the LLM stream ended before `{protocol.terminal_event}`: the answer is incomplete"
            )
        outputs, tokens = answer.outputs()
        outputs["model"] = outputs["model"] or config.model
        answer.model = outputs["model"]
        outputs["response"] = protocol.rebuild(answer)
        inputs: dict[str, Any] = {
            "api": config.api,
            "model": config.model,
            "messages": prompt.as_messages(),
        }
        if config.tools:
            inputs["tools"] = [tool.name for tool in config.tools]
        return NodeResult(outputs=outputs, inputs=inputs, tokens=tokens)

    async def _call(
        self,
        ctx: NodeContext,
        config: LlmConfig,
        protocol: WireProtocol,
        url: httpx.URL,
        prompt: Prompt,
        secret: str | None,
        answer: Answer,
    ) -> None:
        headers = provider_headers(config.api, secret)
        headers["Accept"] = "text/event-stream" if config.upstream_stream else "application/json"
        client = ctx.http or shared_client()
        async with client.stream(
            "POST",
            url,
            json=protocol.request(config, prompt, config.upstream_stream),
            headers=headers,
            timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
        ) as response:
            if not 200 <= response.status_code < 300:
                body = decode_body(response, await read_capped(response))
                raise NodeError(
                    f"the LLM endpoint answered HTTP {response.status_code}: "
                    f"{excerpt(body) if body is not None else '(empty body)'}"
                )
            if "text/event-stream" in response.headers.get("content-type", ""):
                async for event in EventSource(response).aiter_sse():
                    pieces = protocol.read_event(event.event, event.data, answer)
                    if config.stream:
                        for piece in pieces:
                            await ctx.emit_text(piece)
                    if answer.complete:
                        break
                return
            protocol.read_whole(json_object(await read_capped(response)), answer)
        if config.stream:
            for piece in split_text(answer.text):
                await ctx.emit_text(piece)
