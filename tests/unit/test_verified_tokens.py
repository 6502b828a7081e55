"""A JWT's signature is checked once; the result is kept only until the token expires."""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
from flowstream_gateway.auth import Principal, VerifiedTokens, principal_for
from flowstream_gateway.errors import ApiError
from pydantic import SecretStr

SECRET = "s3cr3t-" * 6


def services() -> SimpleNamespace:
    return SimpleNamespace(
        settings=SimpleNamespace(jwt_secret=SecretStr(SECRET), queue_admins=[]),
        verified_tokens=VerifiedTokens(),
    )


def token(sub: str, exp: float) -> str:
    return jwt.encode({"sub": sub, "exp": int(exp)}, SECRET, algorithm="HS256")


async def test_a_token_verified_once_is_served_from_memory() -> None:
    state = services()
    issued = token("alice", time.time() + 60)
    assert await principal_for(issued, state) == Principal("alice")
    # Another key now: the kept verification answers, not a new signature check.
    state.settings.jwt_secret = SecretStr("other-" * 8)
    assert await principal_for(issued, state) == Principal("alice")


async def test_a_kept_token_is_refused_once_it_expires() -> None:
    kept = VerifiedTokens()
    kept.add("t", Principal("alice"), time.time() - 1)
    assert kept.get("t") is None
    state = services()
    with pytest.raises(ApiError, match="expired"):
        await principal_for(token("alice", time.time() - 5), state)


def test_the_memory_is_bounded() -> None:
    kept = VerifiedTokens(size=2)
    for name in ("a", "b", "c"):
        kept.add(name, Principal(name), time.time() + 60)
    assert kept.get("a") is None and kept.get("c") == Principal("c")
