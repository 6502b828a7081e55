"""API_CALL: one HTTP request through the engine's shared client.

Outputs `status_code`, `headers` (lower-case names), `body` (parsed JSON when the response says
it is JSON, else text) and whatever `outputs` maps, rendered over `response` and the run's values.
A non-2xx answer, a transport error, a URL that is not http(s) and a header value rendering to
CR/LF fail the node. A stop aborts the request at once (the node is interruptible).
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from flowstream_shared.expressions import ExpressionError, compile_template, render_value
from flowstream_shared.workflow import ApiCallConfig

from flowstream_engine.http import shared_client
from flowstream_engine.nodes.api_target import api_target, response_scope
from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult

# Bigger answers fail the node: its outputs travel in events.
MAX_RESPONSE_BYTES = 1_000_000
EXCERPT_CHARS = 300
_SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}
)


def check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise NodeError(f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "none"
        raise NodeError(f"the URL scheme must be http or https, not {scheme!r} ({url!r})")
    if not parsed.host:
        raise NodeError(f"the URL {url!r} has no host")
    return parsed


def check_header(name: str, value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise NodeError(
            f"header {name!r}: the rendered value contains CR, LF or NUL (header injection)"
        )
    return value


def where(method: str, url: httpx.URL) -> str:
    """`GET https://host/path`, without the query (it may carry keys)."""
    return f"{method} {url.copy_with(query=None, fragment=None)}"


async def read_capped(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body.extend(piece)
        if len(body) > limit:
            raise NodeError(f"the response is larger than {limit} bytes")
    return bytes(body)


def decode_body(response: httpx.Response, raw: bytes) -> Any:
    if not raw:
        return None
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text  # says JSON but is not: keep the text
    return text


def excerpt(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _query_value(value: Any) -> str | list[str]:
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _body_arguments(config: ApiCallConfig, body: Any) -> dict[str, Any]:
    if config.body is None:
        return {}
    kind = config.body_type or ("text" if isinstance(body, str) else "json")
    if kind == "json":
        return {"json": body}
    if kind == "form":
        if not isinstance(body, Mapping):
            raise NodeError("body_type form needs an object body")
        return {"data": {k: _query_value(v) for k, v in body.items()}}
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return {"content": text.encode()}


class ApiCallNode:
    name: ClassVar[str] = "API_CALL"
    interruptible: ClassVar[bool] = True

    def parse_config(self, config: Mapping[str, Any]) -> ApiCallConfig:
        return ApiCallConfig.model_validate(config)

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: ApiCallConfig = ctx.config
        variables = ctx.variables
        try:
            target = api_target(config, ctx.apis, variables)
            if target.credential is not None:
                # Resolved by the credentials store; without one, calling unauthenticated would
                # hide the mistake behind a 401 from the API.
                raise NodeError(
                    f"credential `{target.credential}` cannot be resolved: this engine has no "
                    "credentials store"
                )
            url = check_url(target.url)
            headers = {
                name: check_header(name, compile_template(value).render(variables))
                for name, value in target.headers.items()
            }
            # httpx replaces a URL's own query when `params` is given: keep both, the URL's first.
            params: list[tuple[str, str | int | float | bool | None]] = list(
                url.params.multi_items()
            )
            for key, value in target.query:
                rendered = _query_value(value)
                params.extend(
                    (key, item) for item in (rendered if isinstance(rendered, list) else [rendered])
                )
            for key, source in config.query.items():
                value = _query_value(
                    compile_template(source).value(variables) if isinstance(source, str) else source
                )
                params.extend(
                    (key, item) for item in (value if isinstance(value, list) else [value])
                )
            body = render_value(config.body, variables)
        except ExpressionError as exc:
            raise NodeError(str(exc)) from exc
        if body is not None and config.body_type is None and isinstance(body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        method = target.method
        inputs = {
            "method": method,
            "url": str(url),
            "headers": {
                k: "***" if k.lower() in _SENSITIVE_HEADERS else v for k, v in headers.items()
            },
            "query": dict(params),
            "body": body,
        }
        client = ctx.http or shared_client()
        try:
            request = client.build_request(
                method,
                url,
                headers=headers,
                params=params,
                timeout=target.timeout,
                **_body_arguments(config, body),
            )
            response = await client.send(
                request, stream=True, follow_redirects=config.follow_redirects
            )
            try:
                raw = await read_capped(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise NodeError(
                f"{where(method, url)}: no response within {target.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise NodeError(f"{where(method, url)}: {type(exc).__name__}: {exc}") from exc
        decoded = decode_body(response, raw)
        if not 200 <= response.status_code < 300:
            raise NodeError(
                f"{where(method, url)} answered HTTP {response.status_code}: "
                f"{excerpt(decoded) if decoded is not None else '(empty body)'}"
            )
        result = {
            "status_code": response.status_code,
            "headers": {k.lower(): v for k, v in response.headers.items()},
            "body": decoded,
        }
        scope = ChainMap({"response": response_scope(result)}, dict(variables))
        for name, template in config.outputs.items():
            try:
                result[name] = compile_template(template).value(scope)
            except ExpressionError as exc:
                raise NodeError(f"outputs.{name}: {exc}") from exc
        return NodeResult(outputs=result, inputs=inputs)
