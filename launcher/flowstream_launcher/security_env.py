"""What the launcher adds to the services' environment for credentials and egress.

Credentials: without `FLOWSTREAM_CREDENTIALS_PRIVATE_KEY` a key pair is generated once and its
private half kept in the data directory (like the JWT secret). The engine gets the private key,
the gateway only the public one: the gateway seals credentials it cannot open.

Egress: `make run` is for local development, so API_CALL and LLM nodes may reach loopback
(`FLOWSTREAM_EGRESS_ALLOW` unset means `127.0.0.0/8,::1`); the stack's own ports (gateway,
engine, history, NATS and its monitoring port) are listed as protected endpoints, which stay
refused whatever is allowed.
"""

from __future__ import annotations

from flowstream_shared.credentials import generate_private_key, public_key_of

from flowstream_launcher.dev_auth import read_secret, write_secret
from flowstream_launcher.nats_server import NatsServer
from flowstream_launcher.settings import LauncherSettings

DEV_EGRESS_ALLOW = "127.0.0.0/8,::1"


def credentials_private_key(settings: LauncherSettings) -> str:
    if settings.credentials_private_key is not None:
        return settings.credentials_private_key.get_secret_value()
    stored = read_secret(settings.credentials_key_file)
    if stored:
        return stored
    key = generate_private_key()
    write_secret(settings.credentials_key_file, key)
    return key


def egress_allow(settings: LauncherSettings) -> str:
    if settings.egress_allow is None:
        return DEV_EGRESS_ALLOW
    return "" if settings.egress_allow.strip().lower() == "none" else settings.egress_allow


def protected_endpoints(settings: LauncherSettings, nats: NatsServer | None) -> list[str]:
    ports = [settings.gateway_port, settings.engine_port, settings.history_port]
    if nats is not None:
        ports += [nats.port, nats.monitor_port]
    endpoints = [f"127.0.0.1:{port}" for port in ports]
    if settings.egress_protected:
        endpoints.append(settings.egress_protected)
    return endpoints


def security_env(
    settings: LauncherSettings, nats: NatsServer | None, private_key: str
) -> dict[str, str]:
    return {
        "FLOWSTREAM_CREDENTIALS_PRIVATE_KEY": private_key,  # engine
        "FLOWSTREAM_CREDENTIALS_PUBLIC_KEY": public_key_of(private_key),  # gateway
        "FLOWSTREAM_EGRESS_ALLOW": egress_allow(settings),  # engine
        "FLOWSTREAM_EGRESS_PROTECTED": ",".join(protected_endpoints(settings, nats)),  # engine
    }


def egress_note(settings: LauncherSettings) -> str:
    """The banner's line about egress: development allows loopback, and says so."""
    allowed = egress_allow(settings) or "nothing beyond public addresses"
    return (
        f"  Egress: API_CALL/LLM may reach {allowed} (FLOWSTREAM_EGRESS_ALLOW); "
        "flowstream's own ports are always refused"
    )
