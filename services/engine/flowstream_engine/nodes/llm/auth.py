"""Provider authentication, in one place: which secret a node uses and how each protocol sends it.

`provider_headers` is the only code that puts a secret on a request. Secrets never reach the
node's inputs, outputs, events or logs; `redact` scrubs one from provider text quoted in errors.
"""

from __future__ import annotations

import os

from flowstream_shared.workflow import LlmApi, LlmConfig

from flowstream_engine.nodes.base import NodeError

ANTHROPIC_VERSION = "2023-06-01"


def provider_headers(api: LlmApi, secret: str | None) -> dict[str, str]:
    """The headers that authenticate a request: `Authorization: Bearer` for the OpenAI-style
    APIs, `x-api-key` plus the API version header for Anthropic. No secret, no credential
    header (local servers often need none)."""
    if api == "anthropic_messages":
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if secret:
            headers["x-api-key"] = secret
        return headers
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def secret_for(config: LlmConfig) -> str | None:
    """The API key the config names: inline, from an engine environment variable, or a stored
    credential (resolved per owner by the engine's credentials store)."""
    if config.credential is not None:
        raise NodeError(
            f"credential {config.credential!r}: this engine has no credentials store to read "
            "it from"
        )
    if config.api_key_env is None:
        return config.api_key
    key = os.environ.get(config.api_key_env)
    if not key:
        raise NodeError(f"the environment variable {config.api_key_env} (api_key_env) is not set")
    return key


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text
