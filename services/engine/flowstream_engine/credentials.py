"""Stored credentials, resolved for a run's owner and turned into what a request sends.

A node names a credential (`"credential": "crm"`); the run resolves the name among its owner's
credentials (the `user_id` of the run command), so one user can never use another's. Resolved
credentials are cached for `FLOWSTREAM_CREDENTIALS_CACHE_S` (a deleted or replaced credential
takes effect within that time). Every value resolved for a run is added to the run's secrets,
so it is masked in the run's events and the engine's log.

Nodes use :meth:`RunCredentials.auth_for`: it checks the credential's allowed hosts against the
request's URL and returns the headers and query parameters to send.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from flowstream_shared.credentials import (
    CredentialRecord,
    CredentialSecret,
    CredentialType,
    Opener,
    SealError,
    credential_key,
)
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from pydantic import ValidationError

from flowstream_engine.nodes.base import NodeContext, NodeError
from flowstream_engine.redaction import RunSecrets

# Misses are remembered briefly too, so a workflow naming a missing credential in a loop does
# not cost a KV read per iteration, while a credential created a moment ago is found soon.
MISSING_CACHE_S = 2.0


class CredentialSource(Protocol):
    """Where records are read: the KV bucket (nats-py's `KeyValue.get`)."""

    async def get(self, key: str) -> Any: ...


class CredentialError(NodeError):
    """The credential cannot be used: missing, not openable, or not for this host."""


@dataclass(frozen=True)
class Auth:
    """What a credential adds to one request."""

    headers: dict[str, str] = field(default_factory=dict, repr=False)
    params: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Credential:
    name: str
    type: CredentialType
    header_name: str | None
    param_name: str | None
    allowed_hosts: tuple[str, ...]
    secret: CredentialSecret = field(repr=False)

    @classmethod
    def opened(cls, record: CredentialRecord, secret: CredentialSecret) -> Credential:
        return cls(
            name=record.name,
            type=record.type,
            header_name=record.header_name,
            param_name=record.param_name,
            allowed_hosts=tuple(h.lower().strip("[]") for h in record.allowed_hosts),
            secret=secret,
        )

    def allows(self, host: str) -> bool:
        if not self.allowed_hosts:
            return True
        host = host.lower().strip("[]").rstrip(".")
        return any(
            host.endswith(allowed[1:]) if allowed.startswith("*.") else host == allowed
            for allowed in self.allowed_hosts
        )

    def auth(self) -> Auth:
        value = self.secret.value or ""
        if self.type == CredentialType.BEARER:
            return Auth(headers={"Authorization": f"Bearer {value}"})
        if self.type == CredentialType.HEADER:
            return Auth(headers={self.header_name or "Authorization": value})
        if self.type == CredentialType.QUERY:
            return Auth(params={self.param_name or "key": value})
        pair = f"{self.secret.username or ''}:{self.secret.password or ''}"
        return Auth(headers={"Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}"})

    def secret_values(self) -> list[str]:
        """Every form of the secret that could show up somewhere: masked by value."""
        values = [v for v in (self.secret.value, self.secret.password) if v]
        if self.type == CredentialType.BASIC:
            values.extend(self.auth().headers.values())
            values.append(self.auth().headers["Authorization"].removeprefix("Basic "))
        return values


class CredentialResolver:
    """Reads and opens credentials from KV `flowstream_credentials`, with a short cache."""

    def __init__(
        self, kv: CredentialSource | None, opener: Opener | None, cache_s: float = 30.0
    ) -> None:
        self._kv = kv
        self._opener = opener
        self._cache_s = cache_s
        self._cache: dict[tuple[str, str], tuple[float, Credential | None]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[Credential | None]] = {}

    async def resolve(self, user_id: str, name: str) -> Credential:
        found = await self._lookup(user_id, name)
        if found is None:
            raise CredentialError(f"credential {name!r} does not exist (POST /api/credentials)")
        return found

    async def _lookup(self, user_id: str, name: str) -> Credential | None:
        key = (user_id, name)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        reading = self._reading.get(key)
        if reading is not None:  # one KV read however many nodes ask at once
            return await asyncio.shield(reading)
        reading = asyncio.get_running_loop().create_future()
        self._reading[key] = reading
        try:
            credential = await self._read(user_id, name)
        except BaseException as exc:
            reading.set_exception(exc)
            reading.exception()  # retrieved: the waiters, if any, get it too
            raise
        finally:
            self._reading.pop(key, None)
        reading.set_result(credential)
        ttl = self._cache_s if credential is not None else min(self._cache_s, MISSING_CACHE_S)
        if ttl > 0:
            self._cache[key] = (time.monotonic() + ttl, credential)
        return credential

    async def _read(self, user_id: str, name: str) -> Credential | None:
        if self._kv is None or self._opener is None:
            raise CredentialError(
                "credentials are not available on this engine "
                "(FLOWSTREAM_CREDENTIALS_PRIVATE_KEY is not set)"
            )
        try:
            entry = await self._kv.get(credential_key(user_id, name))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if not entry.value:
            return None
        try:
            record = CredentialRecord.model_validate_json(entry.value)
        except ValidationError as exc:
            raise CredentialError(f"credential {name!r} is stored in an unreadable form") from exc
        if record.user_id != user_id or record.name != name:
            return None
        try:
            secret = self._opener.open(record)
        except SealError as exc:
            raise CredentialError(str(exc)) from exc
        return Credential.opened(record, secret)


_resolver: CredentialResolver | None = None


def configure_credentials(resolver: CredentialResolver | None) -> None:
    """The process's resolver, set by the composition root (like the shared HTTP client)."""
    global _resolver
    _resolver = resolver


def default_resolver() -> CredentialResolver:
    return _resolver or CredentialResolver(None, None)


class RunCredentials:
    """One run's view: its owner's credentials, each value masked in the run once resolved."""

    def __init__(self, resolver: CredentialResolver, user_id: str, secrets: RunSecrets) -> None:
        self._resolver = resolver
        self._user_id = user_id
        self._secrets = secrets

    async def get(self, name: str) -> Credential:
        credential = await self._resolver.resolve(self._user_id, name)
        self._secrets.add(*credential.secret_values())
        return credential

    async def auth_for(self, name: str, url: httpx.URL) -> Auth:
        """What credential `name` adds to a request to `url`; a host outside its allowed hosts
        fails the node before anything is sent."""
        credential = await self.get(name)
        if not credential.allows(url.host):
            raise CredentialError(
                f"credential {name!r} may not be sent to {url.host} "
                f"(allowed hosts: {', '.join(credential.allowed_hosts)})"
            )
        return credential.auth()

    async def auth_headers(self, name: str, url: httpx.URL) -> dict[str, str]:
        """For nodes that can only send headers (LLM): a query credential is refused."""
        auth = await self.auth_for(name, url)
        if auth.params:
            raise CredentialError(
                f"credential {name!r} is a query parameter credential; this node sends "
                "credentials as headers (use bearer, header or basic)"
            )
        return auth.headers


async def request_auth_headers(
    ctx: NodeContext, credential: str | None, api_key: str | None, url: httpx.URL
) -> dict[str, str]:
    """The auth headers of a node that names a `credential` or carries a literal `api_key`
    (sent as a bearer token); either way the value is masked in the run's events and logs."""
    if credential is not None:
        if ctx.credentials is None:
            raise CredentialError("credentials are not available to this node")
        return await ctx.credentials.auth_headers(credential, url)
    if api_key:
        ctx.secrets.add(api_key)
        return {"Authorization": f"Bearer {api_key}"}
    return {}
