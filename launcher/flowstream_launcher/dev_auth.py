"""The development JWT: one secret for the whole stack, and tokens signed with it.

Without `FLOWSTREAM_JWT_SECRET` the secret is generated once and kept in the data directory, so a
token printed by one `make run` still works after a restart.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from flowstream_launcher.settings import LauncherSettings

DEV_USER = "dev"
DEV_TOKEN_TTL = timedelta(days=30)


class NoSecretError(RuntimeError):
    """There is nothing to sign with: set the variable or start the stack once."""


def jwt_secret(settings: LauncherSettings, *, create: bool) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    stored = read_secret(settings.jwt_secret_file)
    if stored:
        return stored
    if not create:
        raise NoSecretError(
            f"no JWT secret: set FLOWSTREAM_JWT_SECRET, or run `make run` once to create "
            f"{settings.jwt_secret_file}"
        )
    secret = secrets.token_urlsafe(48)
    write_secret(settings.jwt_secret_file, secret)
    return secret


def issue_token(secret: str, user: str = DEV_USER, ttl: timedelta = DEV_TOKEN_TTL) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user, "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


def read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600, not chmod-ed afterwards: the secret is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    os.chmod(path, 0o600)  # an existing empty file keeps its old mode through O_CREAT
