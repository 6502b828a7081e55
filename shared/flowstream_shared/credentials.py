"""Stored credentials: the record in KV `flowstream_credentials` and how its secret is sealed.

A credential's secret is sealed with HPKE (RFC 9180: X25519, HKDF-SHA256, ChaCha20-Poly1305) to
the engine's public key. The gateway holds only the public key: it can seal a new secret but can
open none. The engine holds the private key and opens a secret only when a node uses it.

The HPKE `info` binds the sealed secret to everything else in the record that decides where it
goes (owner, name, type, header or parameter name, allowed hosts). Whoever can write the bucket
can still seal new secrets of their own, but cannot move an existing secret to another owner or
name, widen its allowed hosts or turn a bearer token into a query parameter: opening fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from pydantic import BaseModel, ConfigDict, Field

CREDENTIAL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A host name or IP literal, or `*.` and a domain: the hosts a credential may be sent to.
ALLOWED_HOST_PATTERN = (
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$"
)
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
_INFO_PREFIX = b"flowstream credential v1\0"


class CredentialType(StrEnum):
    BEARER = "bearer"  # Authorization: Bearer <value>
    HEADER = "header"  # <header_name>: <value>
    QUERY = "query"  # ?<param_name>=<value>
    BASIC = "basic"  # Authorization: Basic base64(<username>:<password>)


class CredentialRecord(BaseModel):
    """What the bucket holds under :func:`credential_key`. Everything but `sealed` is public."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    user_id: str
    type: CredentialType
    header_name: str | None = None
    param_name: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    created_at: int
    updated_at: int
    sealed: str = Field(description="The secret, sealed to the engine's key (base64url)")


class CredentialSecret(BaseModel):
    """What is sealed: `value` (bearer, header, query) or `username` and `password` (basic)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # repr=False: a secret printed by accident (a log line, a traceback) shows no value.
    value: str | None = Field(default=None, repr=False)
    username: str | None = Field(default=None, repr=False)
    password: str | None = Field(default=None, repr=False)


class CredentialKeyError(ValueError):
    """A key setting is not a base64url-encoded 32-byte X25519 key."""


class SealError(ValueError):
    """A sealed secret does not open: another key, or a record changed since it was sealed."""


def owner_token(user_id: str) -> str:
    """A KV-safe token for an owner: user ids may hold any character, KV keys may not."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:32]


def credential_key(user_id: str, name: str) -> str:
    return f"{owner_token(user_id)}.{name}"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CredentialKeyError("not base64url") from exc


def _binding(record: CredentialRecord) -> bytes:
    bound = {
        "user_id": record.user_id,
        "name": record.name,
        "type": record.type.value,
        "header_name": record.header_name,
        "param_name": record.param_name,
        "allowed_hosts": record.allowed_hosts,
    }
    return _INFO_PREFIX + json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()


def generate_private_key() -> str:
    return _b64encode(X25519PrivateKey.generate().private_bytes_raw())


def _private_key(encoded: str) -> X25519PrivateKey:
    raw = _b64decode(encoded.strip())
    if len(raw) != 32:
        raise CredentialKeyError("a credentials private key is 32 bytes, base64url-encoded")
    return X25519PrivateKey.from_private_bytes(raw)


def public_key_of(private_key: str) -> str:
    return _b64encode(_private_key(private_key).public_key().public_bytes_raw())


class Sealer:
    """Seals secrets to the engine's public key (the gateway's side: it cannot open them)."""

    def __init__(self, public_key: str) -> None:
        raw = _b64decode(public_key.strip())
        if len(raw) != 32:
            raise CredentialKeyError("a credentials public key is 32 bytes, base64url-encoded")
        self._key = X25519PublicKey.from_public_bytes(raw)

    def seal(self, record: CredentialRecord, secret: CredentialSecret) -> CredentialRecord:
        """`record` with `sealed` set to `secret`, bound to the record's other fields."""
        sealed = _SUITE.encrypt(
            secret.model_dump_json(exclude_none=True).encode(), self._key, info=_binding(record)
        )
        return record.model_copy(update={"sealed": _b64encode(sealed)})


class Opener:
    """Opens sealed secrets (the engine's side)."""

    def __init__(self, private_key: str) -> None:
        self._key = _private_key(private_key)

    def open(self, record: CredentialRecord) -> CredentialSecret:
        try:
            plain = _SUITE.decrypt(_b64decode(record.sealed), self._key, info=_binding(record))
        except (InvalidTag, CredentialKeyError, ValueError) as exc:
            raise SealError(
                f"credential {record.name!r} cannot be opened with this engine's key"
            ) from exc
        return CredentialSecret.model_validate_json(plain)
