"""Where an API_CALL goes: its own `url`, or a registry API (`api_id`) with `parameters`.

A registry API arrives in the run's snapshot (`WorkflowSnapshot.apis`), frozen when the run was
submitted. Its path placeholders (`/users/{user_id}`) are filled with the node's parameters,
rendered and URL-encoded as one path segment each; the other parameters go to the query string.
The node's own `method`, `headers`, `timeout` and `credential` win over the API's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flowstream_shared.apis import PATH_PARAMETER, ApiSnapshot
from flowstream_shared.workflow import ApiCallConfig

from flowstream_engine.nodes.base import NodeError
from flowstream_engine.render.renderer import Renderer


@dataclass(frozen=True)
class ApiTarget:
    method: str
    url: str  # rendered
    headers: dict[str, str]  # templates
    query: list[tuple[str, Any]]  # rendered values from `parameters`
    timeout: float
    credential: str | None


def _segment(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        raise NodeError("a path parameter rendered to null")
    else:
        text = str(value)
    return quote(text, safe="")


async def api_target(
    config: ApiCallConfig,
    apis: Mapping[str, ApiSnapshot],
    variables: Mapping[str, Any],
    render: Renderer,
) -> ApiTarget:
    """Raise NodeError (or ExpressionError from a parameter) when the call cannot be made."""
    if config.api_id is None:
        assert config.url is not None  # the config's validator: url or api_id
        return ApiTarget(
            method=config.method,
            url=(await render.text(config.url, variables)).strip(),
            headers=dict(config.headers),
            query=[],
            timeout=config.timeout,
            credential=config.credential,
        )
    api = apis.get(config.api_id)
    if api is None:
        raise NodeError(
            f"API `{config.api_id}` was not in the run's snapshot (it did not exist when the run "
            "was submitted)"
        )
    rendered = await render.structure(dict(config.parameters), variables)
    in_path = set(api.path_parameters)
    missing = sorted(in_path - set(rendered))
    if missing:
        raise NodeError(f"API `{api.name}` needs parameter `{missing[0]}`")
    path = PATH_PARAMETER.sub(lambda m: _segment(rendered[m.group(1)]), api.path)
    set_fields = config.model_fields_set
    return ApiTarget(
        method=config.method if "method" in set_fields else api.method,
        url=api.base_url.rstrip("/") + path if path.startswith("/") else api.base_url + path,
        headers={**api.headers, **config.headers},
        query=[(k, v) for k, v in rendered.items() if k not in in_path],
        timeout=config.timeout if "timeout" in set_fields else (api.timeout or config.timeout),
        credential=config.credential or api.credential,
    )


def response_scope(result: Mapping[str, Any]) -> dict[str, Any]:
    """What `response` is in an API_CALL's `outputs`: `status_code`, `headers` and `body`, and
    the fields of a JSON object body, so `response.data.id` reads `response.body.data.id`."""
    body = result.get("body")
    return {**body, **result} if isinstance(body, Mapping) else dict(result)
