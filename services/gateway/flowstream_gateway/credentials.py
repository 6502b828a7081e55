"""Credentials: secrets stored per owner, sealed to the engine's key, referenced by name.

The gateway seals a secret as it arrives and never holds it again: it has the engine's public
key only, so neither it nor anyone reading the bucket through it can open a stored secret. It
lists names and metadata, answers whether an owner has a name (a definition naming an unknown
credential is refused at write time), and deletes.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flowstream_shared.credentials import (
    ALLOWED_HOST_PATTERN,
    CREDENTIAL_NAME_PATTERN,
    CredentialRecord,
    CredentialSecret,
    CredentialType,
    Sealer,
    credential_key,
)
from flowstream_shared.validation.rules import HEADER_NAME
from flowstream_shared.workflow import WorkflowDefinition
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowstream_gateway.errors import ApiError, invalid_param, not_found
from flowstream_gateway.kv_cache import KvCache

_NAME = re.compile(CREDENTIAL_NAME_PATTERN)
_ALLOWED_HOST = re.compile(ALLOWED_HOST_PATTERN)


def _secret_text() -> Any:
    return Field(default=None, min_length=4, max_length=8192, repr=False)


# Headers a credential may not set: they frame the request, they carry no credential.
_FRAMING_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type", "te", "upgrade"}
)


class CredentialSpec(BaseModel):
    """What a credential is; `name` comes from the path on PUT."""

    model_config = ConfigDict(extra="forbid")

    type: CredentialType = CredentialType.BEARER
    value: str | None = _secret_text()
    header_name: str | None = Field(default=None, max_length=128)
    param_name: str | None = Field(default=None, min_length=1, max_length=128)
    username: str | None = Field(default=None, max_length=1024, repr=False)
    password: str | None = _secret_text()
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Hosts the credential may be sent to (`api.example.com`, `*.example.com`); "
        "empty: any host the egress policy allows",
    )

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> CredentialSpec:
        needs: dict[CredentialType, set[str]] = {
            CredentialType.BEARER: {"value"},
            CredentialType.HEADER: {"value", "header_name"},
            CredentialType.QUERY: {"value", "param_name"},
            CredentialType.BASIC: {"username", "password"},
        }
        wanted = needs[self.type]
        for name in ("value", "header_name", "param_name", "username", "password"):
            given = getattr(self, name) is not None
            if name in wanted and not given:
                raise ValueError(f"a {self.type.value} credential needs `{name}`")
            if given and name not in wanted:
                raise ValueError(f"a {self.type.value} credential takes no `{name}`")
        for text in (self.value, self.username, self.password):
            if text is not None and any(c in text for c in "\r\n\0"):
                raise ValueError("a credential cannot contain CR, LF or NUL")
        if self.header_name is not None and (
            not HEADER_NAME.match(self.header_name) or self.header_name.lower() in _FRAMING_HEADERS
        ):
            raise ValueError(f"header_name: {self.header_name!r} cannot carry a credential")
        for host in self.allowed_hosts:
            if not _ALLOWED_HOST.match(host):
                raise ValueError(f"allowed_hosts: {host!r} is not a host name or an address")
        return self

    def secret(self) -> CredentialSecret:
        return CredentialSecret(value=self.value, username=self.username, password=self.password)


class CredentialCreate(CredentialSpec):
    name: str = Field(pattern=CREDENTIAL_NAME_PATTERN, description="Unique per owner")


class CredentialOut(BaseModel):
    """A credential as the API shows it: never its value."""

    name: str
    type: CredentialType
    header_name: str | None = None
    param_name: str | None = None
    allowed_hosts: list[str]
    created_at: int
    updated_at: int


def _shown(record: CredentialRecord) -> CredentialOut:
    return CredentialOut(**record.model_dump(include=set(CredentialOut.model_fields)))


class CredentialStore:
    def __init__(self, cache: KvCache[CredentialRecord], sealer: Sealer) -> None:
        self._cache = cache
        self._sealer = sealer

    def _record(
        self, user_id: str, name: str, spec: CredentialSpec, created_at: int
    ) -> CredentialRecord:
        record = CredentialRecord(
            name=name,
            user_id=user_id,
            type=spec.type,
            header_name=spec.header_name,
            param_name=spec.param_name,
            allowed_hosts=[h.lower() for h in spec.allowed_hosts],
            created_at=created_at,
            updated_at=int(time.time()),
            sealed="",
        )
        return self._sealer.seal(record, spec.secret())

    async def create(self, user_id: str, spec: CredentialCreate) -> CredentialOut:
        record = self._record(user_id, spec.name, spec, int(time.time()))
        stored = await self._cache.create(
            credential_key(user_id, spec.name), record, record.model_dump_json().encode()
        )
        if not stored:
            raise ApiError(
                409,
                "conflict",
                f"credential {spec.name!r} exists: PUT /api/credentials/{spec.name} replaces it",
            )
        return _shown(record)

    async def replace(self, user_id: str, name: str, spec: CredentialSpec) -> CredentialOut:
        existing = await self._get(user_id, name)
        created_at = existing.created_at if existing else int(time.time())
        record = self._record(user_id, name, spec, created_at)
        await self._cache.put(
            credential_key(user_id, name), record, record.model_dump_json().encode()
        )
        return _shown(record)

    def list(self, user_id: str) -> list[CredentialOut]:
        mine = [r for r in self._cache.values() if r.user_id == user_id]
        return [_shown(r) for r in sorted(mine, key=lambda r: r.name)]

    async def get(self, user_id: str, name: str) -> CredentialOut:
        record = await self._get(user_id, name)
        if record is None:
            raise not_found(f"credential {name}")
        return _shown(record)

    async def delete(self, user_id: str, name: str) -> None:
        if await self._get(user_id, name) is None:
            raise not_found(f"credential {name}")
        await self._cache.delete(credential_key(user_id, name))

    async def _get(self, user_id: str, name: str) -> CredentialRecord | None:
        if not _NAME.match(name):
            return None
        record = await self._cache.get(credential_key(user_id, name))
        if record is None or record.user_id != user_id or record.name != name:
            return None
        return record

    async def check_references(self, user_id: str, definition: WorkflowDefinition) -> None:
        """Every `credential` a node names must be one of the owner's: a 400 naming the node."""
        for node in definition.nodes:
            name: Any = node.config.get("credential")
            if isinstance(name, str) and await self._get(user_id, name) is None:
                raise invalid_param(
                    f"node `{node.id}`: unknown credential {name!r} "
                    "(create it with POST /api/credentials)"
                )
