"""How every process connects to NATS: its own identity, every seed server, and patience.

A process starting before NATS answers (a rolling deploy, a cluster electing its leaders) keeps
trying instead of exiting; once connected, nats-py reconnects on its own.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
from faststream.nats import NatsBroker
from faststream.nats.security import (
    NatsCredentials,
    NatsNKey,
    NatsSecurity,
    NatsToken,
    NatsUserPassword,
)
from nats.aio.client import Client

from flowstream_shared.settings import NatsSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_MAX_S = 5.0


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    if settings.nats_tls_ca is None and settings.nats_tls_cert is None:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
    )
    if settings.nats_tls_cert is not None and settings.nats_tls_key is not None:
        context.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
    return context


def client_options(settings: NatsSettings, name: str) -> dict[str, Any]:
    """Keyword arguments for `nats.connect`."""
    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": name,
        "inbox_prefix": settings.inbox_prefix,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "tls": tls_context(settings),
    }
    if settings.nats_user and settings.nats_password:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password.get_secret_value()
    elif settings.nats_token:
        options["token"] = settings.nats_token.get_secret_value()
    elif settings.nats_nkey_seed:
        options["nkeys_seed_str"] = settings.nats_nkey_seed.get_secret_value()
    elif settings.nats_creds_file:
        options["user_credentials"] = str(settings.nats_creds_file)
    return options


def broker_security(settings: NatsSettings) -> NatsSecurity | None:
    """The same identity, as FastStream's broker takes it."""
    context = tls_context(settings)
    if settings.nats_user and settings.nats_password:
        return NatsUserPassword(
            settings.nats_user, settings.nats_password.get_secret_value(), ssl_context=context
        )
    if settings.nats_token:
        return NatsToken(settings.nats_token.get_secret_value(), ssl_context=context)
    if settings.nats_nkey_seed:
        return NatsNKey.from_seed(settings.nats_nkey_seed.get_secret_value(), ssl_context=context)
    if settings.nats_creds_file:
        return NatsCredentials.from_file(settings.nats_creds_file, ssl_context=context)
    return NatsSecurity(ssl_context=context) if context else None


def broker(settings: NatsSettings, name: str, **options: Any) -> NatsBroker:
    return NatsBroker(
        settings.servers,
        security=broker_security(settings),
        inbox_prefix=settings.inbox_prefix,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        **options,
    )


async def until_connected(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """Try `attempt` until it succeeds, waiting longer each time (up to 5 s)."""
    delay = 0.2
    while True:
        try:
            return await attempt()
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            log.warning("%s: NATS is not answering (%s); trying again in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


async def connect(settings: NatsSettings, name: str, **callbacks: Any) -> Client:
    return await until_connected(
        lambda: nats.connect(**client_options(settings, name), **callbacks), name
    )
