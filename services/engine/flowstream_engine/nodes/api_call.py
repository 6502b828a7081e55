"""API_CALL: one HTTP request through the engine's shared client.

Outputs `status_code`, `headers` (lower-case names), `body` (parsed JSON when the response says
it is JSON, else text) and whatever `outputs` maps, rendered over `response` and the run's values.
A non-2xx answer, a transport error, a URL that is not http(s), a header value rendering to
CR/LF and a connection the egress policy refuses fail the node. A stop aborts the request at once
(the node is interruptible).

Secrets. `credential` adds a stored credential (its header or query parameter) once its allowed
hosts admit the URL's host. What the node reports as its `inputs` shows no secret: headers and
query parameters with secret names, the credential's and a URL's password are masked, and every
value sent under a secret name is masked by value in the run's events. Redirects are followed
hop by hop: a hop to another origin drops every secret header (httpx itself only drops
`Authorization`), and each hop's connection passes the egress policy.
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from flowstream_shared.expressions import ExpressionError
from flowstream_shared.masking import MASK, is_secret_name, mask_url
from flowstream_shared.workflow import ApiCallConfig

from flowstream_engine.egress import egress_denial
from flowstream_engine.http import shared_client
from flowstream_engine.nodes.api_target import api_target, response_scope
from flowstream_engine.nodes.base import NodeContext, NodeError, NodeResult

# Bigger answers fail the node: its outputs travel in events.
MAX_RESPONSE_BYTES = 1_000_000
EXCERPT_CHARS = 300
MAX_REDIRECTS = 20


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
    """`GET https://host/path`, without the query and user info (they may carry keys)."""
    return f"{method} {url.copy_with(query=None, fragment=None, userinfo=b'')}"


def transport_error(what: str, exc: httpx.HTTPError) -> NodeError:
    """A failed request as a node error; a refusal by the egress policy says so plainly."""
    denial = egress_denial(exc)
    if denial is not None:
        return NodeError(f"{what}: {denial}")
    return NodeError(f"{what}: {type(exc).__name__}: {exc}")


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """As httpx judges it for `Authorization`: same origin, or an upgrade from http to https."""
    if (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port):
        return True
    upgrade = a.scheme == "http" and b.scheme == "https" and a.host == b.host
    return upgrade and a.port in (None, 80) and b.port in (None, 443)


async def send_following(
    client: httpx.AsyncClient,
    request: httpx.Request,
    follow_redirects: bool,
    secret_headers: frozenset[str],
) -> httpx.Response:
    """Send `request`, following redirects one hop at a time; `secret_headers` (lower-case
    names) are never sent to another origin. The response is streamed: close it."""
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        following = response.next_request if follow_redirects else None
        if following is None:
            return response
        await response.aclose()
        if not same_origin(request.url, following.url):
            for name in secret_headers:
                following.headers.pop(name, None)
        request = following
    raise NodeError(f"more than {MAX_REDIRECTS} redirects")


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


def _register_secrets(
    ctx: NodeContext,
    url: httpx.URL,
    headers: Mapping[str, str],
    secret_headers: set[str],
    params: list[tuple[str, Any]],
    secret_params: set[str],
) -> None:
    """Values sent under secret names are secrets wherever else they show up (an echo)."""
    for name, value in headers.items():
        if name.lower() in secret_headers:
            scheme, _, token = value.partition(" ")
            ctx.secrets.add(value, token if scheme and token else value)
    ctx.secrets.add(*(str(v) for k, v in params if k in secret_params and v is not None))
    if url.password:
        ctx.secrets.add(url.password)


class ApiCallNode:
    name: ClassVar[str] = "API_CALL"
    interruptible: ClassVar[bool] = True

    def parse_config(self, config: Mapping[str, Any]) -> ApiCallConfig:
        return ApiCallConfig.model_validate(config)

    async def run(self, ctx: NodeContext) -> NodeResult:
        config: ApiCallConfig = ctx.config
        variables = ctx.variables
        render = ctx.templates
        try:
            target = await api_target(config, ctx.apis, variables, render)
            url = check_url(target.url)
            headers = {
                name: check_header(name, await render.text(value, variables))
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
                    await render.value(source, variables) if isinstance(source, str) else source
                )
                params.extend(
                    (key, item) for item in (value if isinstance(value, list) else [value])
                )
            body = await render.structure(config.body, variables)
        except ExpressionError as exc:
            raise NodeError(str(exc)) from exc
        if body is not None and config.body_type is None and isinstance(body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        secret_headers = {name.lower() for name in headers if is_secret_name(name)}
        secret_params = {key for key, _ in params if is_secret_name(key)}
        _register_secrets(ctx, url, headers, secret_headers, params, secret_params)
        if target.credential is not None:  # the node's, else its registry API's
            if ctx.credentials is None:
                raise NodeError("credentials are not available to this node")
            auth = await ctx.credentials.auth_for(target.credential, url)
            replaced = {name.lower() for name in auth.headers}
            headers = {k: v for k, v in headers.items() if k.lower() not in replaced}
            headers.update(auth.headers)
            params = [(k, v) for k, v in params if k not in auth.params]
            params.extend(auth.params.items())
            secret_headers |= replaced
            secret_params |= set(auth.params)
        method = target.method
        inputs = {
            "method": method,
            "url": mask_url(str(url)),
            "headers": {k: MASK if k.lower() in secret_headers else v for k, v in headers.items()},
            "query": {k: MASK if k in secret_params else v for k, v in params},
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
            response = await send_following(
                client, request, config.follow_redirects, frozenset(secret_headers)
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
            raise transport_error(where(method, url), exc) from exc
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
                result[name] = await render.value(template, scope)
            except ExpressionError as exc:
                raise NodeError(f"outputs.{name}: {exc}") from exc
        return NodeResult(outputs=result, inputs=inputs)
