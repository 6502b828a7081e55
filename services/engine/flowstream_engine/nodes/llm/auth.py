"""Provider authentication, in one place: which secret a node uses and how each protocol sends it.

`provider_headers` is the only code that puts a secret on a request. Secrets never reach the
node's inputs, outputs, events or logs; `redact` scrubs one from provider text quoted in errors.
"""

from __future__ import annotations

import httpx
from flowstream_shared.credentials import CredentialType
from flowstream_shared.workflow import LlmApi, LlmConfig

from flowstream_engine.credentials import CredentialError
from flowstream_engine.nodes.base import NodeContext

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


async def secret_for(ctx: NodeContext, config: LlmConfig, url: httpx.URL) -> str | None:
    """The API key the config names: a stored credential of the run's owner (its value, sent
    the protocol's way) or a literal `api_key`. Either way the value is masked in the run."""
    if config.credential is not None:
        if ctx.credentials is None:
            raise CredentialError("credentials are not available to this node")
        credential = await ctx.credentials.get(config.credential)
        if not credential.allows(url.host):
            raise CredentialError(
                f"credential {config.credential!r} may not be sent to {url.host} "
                f"(allowed hosts: {', '.join(credential.allowed_hosts)})"
            )
        if credential.type not in (CredentialType.BEARER, CredentialType.HEADER):
            raise CredentialError(
                f"credential {config.credential!r} is a {credential.type.value} credential; an "
                "LLM node sends its provider's key itself: store it as `bearer` or `header`"
            )
        return credential.secret.value
    if config.api_key:
        ctx.secrets.add(config.api_key)
    return config.api_key


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text
