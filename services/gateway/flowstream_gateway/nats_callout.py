"""Direct subscribers are users: NATS asks the gateway who a connection is (auth callout).

A client connects to NATS with its flowstream token (a JWT or an app key) as the connection
token. The server sends the connection's details to `$SYS.REQ.USER.AUTH`; every gateway replica
listens there in one queue group and answers with a NATS user signed by the callout's issuer
key: subscribe to the caller's own events only (an app key: its workflow's), publish nothing.
An expired JWT, a revoked key or no token at all is refused, so it stops working for new
connections at once; a JWT's expiry is the NATS user's, so its connection ends with it (ADR 0012).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import nkeys
from flowstream_shared import nats_connection
from flowstream_shared.nats_access import (
    ACCOUNT,
    CALLOUT_SUBJECT,
    Permissions,
    subscriber_permissions,
)
from flowstream_shared.subjects import owner_token
from nats.aio.client import Client
from nats.aio.msg import Msg

from flowstream_gateway.auth import Principal
from flowstream_gateway.errors import ApiError
from flowstream_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

Authenticate = Callable[[str], Awaitable[Principal]]
QUEUE = "flowstream-callout"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims_of(token: bytes) -> dict[str, Any]:
    """The claims of a JWT the server sent; its signature is the server's, and only the server
    may publish on the callout subject."""
    payload = token.split(b".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    )
    return decoded


def encode(claims: dict[str, Any], issuer: nkeys.KeyPair) -> str:
    """A NATS JWT: ed25519-nkey signed, its `jti` the hash of its claims."""
    body = json.dumps(claims, separators=(",", ":")).encode()
    claims = {**claims, "jti": base64.b32encode(hashlib.sha256(body).digest()).decode().rstrip("=")}
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    signing = f"{header}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signing}.{_b64(issuer.sign(signing.encode()))}"


def _user_permissions(permissions: Permissions) -> dict[str, Any]:
    publish = {"deny": list(permissions.deny_publish)} if permissions.deny_publish else {}
    return {"pub": publish, "sub": {"allow": list(permissions.subscribe)}}


class CalloutResponder:
    def __init__(self, settings: GatewaySettings, authenticate: Authenticate) -> None:
        assert settings.nats_callout_issuer_seed is not None
        self._settings = settings
        self._authenticate = authenticate
        seed = settings.nats_callout_issuer_seed.get_secret_value().encode()
        self._issuer = nkeys.from_seed(seed)
        self._issuer_public = self._issuer.public_key.decode()
        self._nc: Client | None = None

    async def start(self) -> None:
        callout = self._settings.model_copy(
            update={
                "nats_user": self._settings.nats_callout_user,
                "nats_password": self._settings.nats_callout_password,
                "nats_inbox_prefix": None,
            }
        )
        self._nc = await nats_connection.connect(callout, "gateway-callout")
        await self._nc.subscribe(CALLOUT_SUBJECT, queue=QUEUE, cb=self._on_request)

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.drain()

    async def _on_request(self, msg: Msg) -> None:
        try:
            request = _claims_of(msg.data)["nats"]
            user_nkey, server_id = request["user_nkey"], request["server_id"]["id"]
        except (ValueError, KeyError, IndexError):
            log.warning("ignoring an unreadable auth callout request")
            return
        now = int(time.time())
        answer: dict[str, Any] = {"type": "authorization_response", "version": 2}
        try:
            answer["jwt"] = await self._user(request, user_nkey, now)
        except ApiError as exc:
            answer["error"] = exc.message
        response = {"iat": now, "iss": self._issuer_public, "sub": user_nkey, "aud": server_id}
        await msg.respond(encode({**response, "nats": answer}, self._issuer).encode())

    async def _user(self, request: dict[str, Any], user_nkey: str, now: int) -> str:
        token = (request.get("connect_opts") or {}).get("auth_token")
        if not token:
            raise ApiError(401, "unauthorized", "connect with your flowstream token")
        principal = await self._authenticate(token)
        owner = owner_token(principal.user_id)
        claims: dict[str, Any] = {
            "iat": now,
            "iss": self._issuer_public,
            "sub": user_nkey,
            "name": owner,
            "aud": ACCOUNT,
            "nats": {
                **_user_permissions(subscriber_permissions(owner, principal.workflow_id)),
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            },
        }
        expires = _expiry(token)
        if expires is not None:
            claims["exp"] = expires
        return encode(claims, self._issuer)


def _expiry(token: str) -> int | None:
    """A JWT's `exp` (already verified by authentication); app keys do not expire."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    expires = claims.get("exp")
    return int(expires) if isinstance(expires, int | float) else None
