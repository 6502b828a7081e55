"""API_CALL and LLM configs: http(s) URLs only, header names and values that cannot inject."""

from __future__ import annotations

from flowstream_shared.validation.errors import DefinitionError
from flowstream_shared.validation.references import static_prefix
from flowstream_shared.validation.rules import (
    HEADER_NAME,
    HTTP_SCHEMES,
)
from flowstream_shared.workflow import (
    API_RESPONSE_FIELDS,
    ApiCallConfig,
    LlmConfig,
    Node,
)


def _check_http_url(node: Node, field: str, url: str, *, templated: bool) -> None:
    prefix = static_prefix(url).strip() if templated else url.strip()
    if ":" in prefix:
        scheme = prefix.split(":", 1)[0].lower()
        if scheme not in HTTP_SCHEMES:
            raise DefinitionError(
                f"config.{field}: the URL scheme must be http or https, not {scheme!r}", node.id
            )
        if not prefix.lower().startswith(f"{scheme}://"):
            raise DefinitionError(f"config.{field}: not an absolute http(s) URL", node.id)
    elif prefix == url.strip() or any(c in prefix for c in "/.?#"):
        # Either no reference can supply a scheme, or the literal start already rules one out
        # (`api.example.com/users/{{input.id}}` can never become an http(s) URL).
        raise DefinitionError(
            f"config.{field}: not an absolute http(s) URL (it must start with http:// or https://)",
            node.id,
        )


def check_api_call(node: Node, config: ApiCallConfig) -> None:
    if config.url is not None:  # else `api_id`: the registry checked the API's own URL
        _check_http_url(node, "url", config.url, templated=True)
    for name, value in config.headers.items():
        if not HEADER_NAME.match(name):
            raise DefinitionError(f"config.headers: {name!r} is not a valid header name", node.id)
        literal = "".join(part.split("}}", 1)[-1] for part in value.split("{{"))
        if any(c in literal for c in "\r\n\0"):
            raise DefinitionError(
                f"config.headers.{name}: a header value cannot contain CR, LF or NUL", node.id
            )
    clashes = sorted(API_RESPONSE_FIELDS & set(config.outputs))
    if clashes:
        raise DefinitionError(
            f"config.outputs.{clashes[0]}: the name is taken by the raw response output", node.id
        )


def check_llm(node: Node, config: LlmConfig) -> None:
    if "{{" in config.base_url or "{%" in config.base_url:
        # The API key goes to this URL: it must not come from a run's values.
        raise DefinitionError("config.base_url: cannot contain references", node.id)
    _check_http_url(node, "base_url", config.base_url, templated=False)
