"""LLM: a streamed chat completion from any OpenAI-compatible endpoint.

POSTs `<base_url>/chat/completions` with `stream: true`, reads the Server-Sent Events `data:`
lines, emits each content delta as a `text_chunk` and outputs `text`, `usage`, `finish_reason`
and `model`. Tokens come from the `usage` the server sends in its last chunk (asked for with
`stream_options.include_usage`); a server that sends none is counted one token per chunk, and
`usage.estimated` says so. A server answering plain JSON (it ignored `stream`) is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from flowstream_shared.expressions import ExpressionError, compile_template
from flowstream_shared.workflow import LlmConfig

from flowstream_engine.credentials import request_auth_headers
from flowstream_engine.http import shared_client
from flowstream_engine.nodes.api_call import (
    check_url,
    decode_body,
    excerpt,
    read_capped,
    transport_error,
)
from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult


@dataclass
class _Answer:
    pieces: list[str] = field(default_factory=list)
    chunks: int = 0
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    model: str | None = None

    def take(self, payload: Mapping[str, Any]) -> list[str]:
        """Fold one completion chunk (or a whole completion); return the new text pieces."""
        error = payload.get("error")
        if error:
            message = error.get("message") if isinstance(error, Mapping) else error
            raise NodeError(f"the LLM endpoint reported an error: {message}")
        if isinstance(payload.get("usage"), Mapping):
            self.usage = dict(payload["usage"])
        self.model = payload.get("model") or self.model
        new: list[str] = []
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                new.append(piece)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self.pieces.extend(new)
        self.chunks += len(new)
        return new

    def tokens(self) -> tuple[int, dict[str, Any]]:
        total = (self.usage or {}).get("total_tokens")
        if isinstance(total, int) and self.usage is not None:
            return total, self.usage
        estimate = {
            "completion_tokens": self.chunks,
            "total_tokens": self.chunks,
            "estimated": True,
        }
        return self.chunks, estimate


def _messages(ctx: NodeContext, config: LlmConfig) -> list[dict[str, str]]:
    def render(source: str) -> str:
        return compile_template(source).render(ctx.variables)

    try:
        messages = [{"role": "system", "content": render(config.system)}] if config.system else []
        messages += [{"role": m.role, "content": render(m.content)} for m in config.messages]
        if config.prompt is not None:
            messages.append({"role": "user", "content": render(config.prompt)})
    except ExpressionError as exc:
        raise NodeError(str(exc)) from exc
    return messages


def _request(config: LlmConfig, messages: list[dict[str, str]]) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": config.model, "messages": messages, "stream": True}
    if config.include_usage:
        payload["stream_options"] = {"include_usage": True}
    for name in ("temperature", "max_tokens", "top_p"):
        value = getattr(config, name)
        if value is not None:
            payload[name] = value
    return payload


class LlmNode:
    name: ClassVar[str] = "LLM"
    interruptible: ClassVar[bool] = True

    def parse_config(self, config: Mapping[str, Any]) -> LlmConfig:
        return LlmConfig.model_validate(config)

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: LlmConfig = ctx.config
        messages = _messages(ctx, config)
        url = check_url(config.base_url.rstrip("/") + "/chat/completions")
        headers = {"Accept": "text/event-stream"}
        headers.update(await request_auth_headers(ctx, config.credential, config.api_key, url))
        answer = _Answer()
        client = ctx.http or shared_client()
        try:
            async with client.stream(
                "POST",
                url,
                json=_request(config, messages),
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
                    await self._read_stream(ctx, config, response, answer)
                else:
                    answer.take(_json(await read_capped(response)))
        except httpx.TimeoutException as exc:
            raise NodeError(f"the LLM endpoint did not answer within {config.timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise transport_error("the LLM endpoint", exc) from exc
        tokens, usage = answer.tokens()
        return NodeResult(
            outputs={
                "text": "".join(answer.pieces),
                "usage": usage,
                "finish_reason": answer.finish_reason,
                "model": answer.model or config.model,
            },
            inputs={"model": config.model, "messages": messages},
            tokens=tokens,
        )

    async def _read_stream(
        self, ctx: NodeContext, config: LlmConfig, response: httpx.Response, answer: _Answer
    ) -> None:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # comments, `event:`, `id:` and the blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                break
            if not data:
                continue
            for piece in answer.take(_json(data.encode())):
                if config.stream:
                    await ctx.emit_text(piece)


def _json(raw: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise NodeError(f"the LLM endpoint sent something that is not JSON: {raw[:200]!r}") from exc
    if not isinstance(payload, Mapping):
        raise NodeError("the LLM endpoint sent JSON that is not an object")
    return payload
