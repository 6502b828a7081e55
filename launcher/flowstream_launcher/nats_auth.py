"""The identities of a local NATS server: one password per service, the auth callout's issuer
key, and the server configuration granting each identity what `nats_access` says.

`make run` keeps them in `<data dir>/nats-auth.json` (readable by its owner only), so a restart
keeps the same credentials; the tests make a fresh set per server.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nkeys
from flowstream_shared.nats_access import (
    ACCOUNT,
    Identity,
    Permissions,
    service_permissions,
)

# Each identity's password; `auth` answers the callout; `admin` is for operators and tests.
SERVICE_IDENTITIES = (Identity.GATEWAY, Identity.ENGINE, Identity.HISTORY, Identity.AUTH)


@dataclass(frozen=True)
class NatsAuth:
    passwords: dict[str, str] = field(repr=False)
    issuer_seed: str = field(repr=False)

    @classmethod
    def generate(cls) -> NatsAuth:
        identities = [*SERVICE_IDENTITIES, Identity.ADMIN]
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
        return cls({i.value: secrets.token_urlsafe(24) for i in identities}, seed)

    @classmethod
    def load(cls, path: Path) -> NatsAuth:
        stored = json.loads(path.read_text())
        return cls(stored["passwords"], stored["issuer_seed"])

    @classmethod
    def load_or_create(cls, path: Path) -> NatsAuth:
        if path.exists():
            return cls.load(path)
        auth = cls.generate()
        auth.save(path)
        return auth

    def save(self, path: Path) -> None:
        """Readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({"passwords": self.passwords, "issuer_seed": self.issuer_seed}))

    @property
    def issuer_public_key(self) -> str:
        public: bytes = nkeys.from_seed(self.issuer_seed.encode()).public_key
        return public.decode()

    def url_for(self, identity: Identity, address: str) -> str:
        """`nats://<identity>:<password>@host:port` — for tools and tests, never for services
        (they take their password from a secret setting)."""
        scheme, _, rest = address.partition("://")
        password = quote(self.passwords[identity.value], safe="")
        return f"{scheme}://{identity.value}:{password}@{rest}"

    def env_for(self, identity: Identity) -> dict[str, str]:
        """The settings a service process connects with."""
        env = {
            "FLOWSTREAM_NATS_USER": identity.value,
            "FLOWSTREAM_NATS_PASSWORD": self.passwords[identity.value],
        }
        if identity == Identity.GATEWAY:  # it also answers the auth callout
            env |= {
                "FLOWSTREAM_NATS_CALLOUT_USER": Identity.AUTH.value,
                "FLOWSTREAM_NATS_CALLOUT_PASSWORD": self.passwords[Identity.AUTH.value],
                "FLOWSTREAM_NATS_CALLOUT_ISSUER_SEED": self.issuer_seed,
            }
        return env


def _list(subjects: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in subjects) + "]"


def _permissions(permissions: Permissions) -> str:
    publish = f"{{ allow: {_list(permissions.publish)} }}"
    if permissions.deny_publish:
        publish = f"{{ deny: {_list(permissions.deny_publish)} }}"
    parts = [f"publish: {publish}", f"subscribe: {{ allow: {_list(permissions.subscribe)} }}"]
    if permissions.allow_responses:
        parts.append("allow_responses: true")
    return "{ " + ", ".join(parts) + " }"


def env_variable(identity: Identity) -> str:
    """The environment variable a deployed server reads an identity's password from."""
    return f"NATS_{identity.value.upper()}_PASSWORD"


ISSUER_VARIABLE = "NATS_CALLOUT_ISSUER"


@dataclass(frozen=True)
class ClusterNode:
    """This server's place in a JetStream cluster on `host`: its name, the port it routes on,
    and its peers' route ports."""

    name: str
    cluster: str
    route_port: int
    peer_route_ports: tuple[int, ...]


def render_config(
    auth: NatsAuth,
    port: int,
    monitor_port: int,
    store_dir: Path,
    host: str = "127.0.0.1",
    cluster: ClusterNode | None = None,
) -> str:
    """A nats-server configuration with JetStream and authorization on: the services' static
    users, an admin, and every other connection decided by the gateway's auth callout."""
    passwords = {i: json.dumps(auth.passwords[i.value]) for i in _STATIC}
    lines = [
        f"host: {json.dumps(host)}",
        f"port: {port}",
        f"http: {json.dumps(f'{host}:{monitor_port}')}",  # monitoring stays local
        f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}",
    ]
    if cluster is not None:
        routes = ", ".join(json.dumps(f"nats-route://{host}:{p}") for p in cluster.peer_route_ports)
        lines += [
            f"server_name: {json.dumps(cluster.name)}",
            f"cluster {{ name: {json.dumps(cluster.cluster)}, "
            f"listen: {json.dumps(f'{host}:{cluster.route_port}')}, routes: [{routes}] }}",
        ]
    return "\n".join([*lines, render_authorization(passwords, auth.issuer_public_key)])


def render_deployed_authorization() -> str:
    """The same accounts and callout for a deployed server, reading each password (and the
    callout's issuer public key) from the server's environment: no secret in the file."""
    passwords = {i: f"${env_variable(i)}" for i in _STATIC}
    header = (
        "# Generated from shared/flowstream_shared/nats_access.py by `make docs`; do not edit.\n"
        "# Include it from nats-server.conf; the server reads "
        + ", ".join(f"${env_variable(i)}" for i in _STATIC)
        + f" and ${ISSUER_VARIABLE} from its environment.\n"
    )
    return header + render_authorization(passwords, f"${ISSUER_VARIABLE}")


_STATIC = (*SERVICE_IDENTITIES, Identity.ADMIN)


def render_authorization(passwords: dict[Identity, str], issuer: str) -> str:
    users = [
        f"      {{ user: {identity.value}, password: {password}, "
        f"permissions: {_permissions(service_permissions(identity))} }}"
        for identity, password in passwords.items()
    ]
    static_users = ", ".join(i.value for i in passwords)
    return "\n".join(
        [
            "accounts {",
            f"  {ACCOUNT}: {{",
            "    jetstream: enabled",
            "    users: [",
            ",\n".join(users),
            "    ]",
            "  }",
            "  SYS: {}",
            "}",
            "system_account: SYS",
            "authorization {",
            "  auth_callout {",
            f"    issuer: {issuer}",
            f"    account: {ACCOUNT}",
            f"    auth_users: [ {static_users} ]",
            "  }",
            "}",
            "",
        ]
    )
