"""Who is calling: an HS256 JWT (`sub` = user id) or an app API key bound to one workflow."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowstream_gateway.api_keys import KEY_PREFIX
from flowstream_gateway.errors import ApiError, not_found, unauthorized


@dataclass(frozen=True)
class Principal:
    user_id: str
    # Set when the caller used an API key: the only workflow it may touch.
    workflow_id: str | None = None
    # The API key's id (never the key): per-key limits and quotas.
    key_id: str | None = None
    # A JWT with `"admin": true`, or a user listed in FLOWSTREAM_QUEUE_ADMINS: sees every queue.
    admin: bool = False

    def require_workflow(self, workflow_id: str) -> None:
        """An API key reaches its own workflow only; anything else does not exist for it."""
        if self.workflow_id is not None and self.workflow_id != workflow_id:
            raise not_found(f"workflow {workflow_id}")

    def require_user_token(self) -> None:
        if self.workflow_id is not None:
            raise ApiError(403, "forbidden", "this operation needs a user token, not an API key")


# Declares the scheme in the OpenAPI document (/docs gets its Authorize button); the check and
# its 401 stay ours, in the one error body.
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="A user JWT (HS256, `sub` = user id) or an app API key from `POST /api/keys`",
    auto_error=False,
)


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    # async: a plain `def` dependency would cost a thread hop on every request.
    if credentials is None or not credentials.credentials.strip():
        raise unauthorized("Authorization header must be 'Bearer <token>'")
    return await principal_for(credentials.credentials.strip(), request.app.state.services)


class VerifiedTokens:
    """JWTs whose signature was checked, until they expire: a client sends the same token on
    every request, and verifying an HS256 signature is an eighth of a run request's CPU."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._tokens: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def get(self, token: str) -> Principal | None:
        known = self._tokens.get(token)
        if known is None:
            return None
        principal, expires = known
        if time.time() >= expires:
            del self._tokens[token]
            return None  # verified again: answers "expired"
        return principal

    def add(self, token: str, principal: Principal, expires: float) -> None:
        self._tokens[token] = (principal, expires)
        if len(self._tokens) > self._size:
            self._tokens.popitem(last=False)


async def principal_for(token: str, services: Any) -> Principal:
    """The caller a bearer token stands for; raises a 401 ApiError otherwise."""
    if token.startswith(KEY_PREFIX):
        record = await services.api_keys.lookup(token)
        if record is None:
            raise unauthorized("Access token is invalid")
        return Principal(user_id=record.user_id, workflow_id=record.workflow_id, key_id=record.id)
    verified: VerifiedTokens = services.verified_tokens
    known = verified.get(token)
    if known is not None:
        return known
    try:
        claims = jwt.decode(
            token,
            services.settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            options={"require": ["sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("Access token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise unauthorized("Access token is invalid") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise unauthorized("Access token has no subject")
    admin = claims.get("admin") is True or subject in services.settings.queue_admins
    principal = Principal(user_id=subject, admin=admin)
    expires = claims.get("exp")
    # A token without `exp` is re-verified after a minute rather than trusted for ever.
    verified.add(token, principal, float(expires) if expires else time.time() + 60)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
