"""`python -m flowstream_launcher`: run the whole stack locally, or print a token for it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta

from flowstream_shared import subjects
from flowstream_shared.credentials import generate_private_key, public_key_of
from flowstream_shared.nats_access import Identity
from pydantic import ValidationError

from flowstream_launcher.dev_auth import DEV_USER, NoSecretError, issue_token, jwt_secret
from flowstream_launcher.nats_auth import (
    ISSUER_VARIABLE,
    SERVICE_IDENTITIES,
    NatsAuth,
    env_variable,
)
from flowstream_launcher.settings import LauncherSettings
from flowstream_launcher.stack import run_stack


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flowstream_launcher",
        description="Run flowstream on this machine. Configured by FLOWSTREAM_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run",
        help="start NATS (unless FLOWSTREAM_NATS_URL is set), engine, history and gateway, "
        "load the examples and print a token; Ctrl-C stops everything",
    )
    token = commands.add_parser(
        "token",
        help="print a JWT signed with the stack's secret (FLOWSTREAM_JWT_SECRET or the data dir)",
    )
    token.add_argument(
        "--user", default=DEV_USER, help="the token's subject (default: %(default)s)"
    )
    token.add_argument(
        "--ttl-days", type=_positive, default=30.0, help="lifetime in days (default: %(default)g)"
    )
    commands.add_parser(
        "credentials-key",
        help="print a new credentials key pair: the private key for the engine, the public "
        "key for the gateway",
    )
    commands.add_parser(
        "nats-secrets",
        help="print fresh NATS passwords and an auth callout key for a deployment, as "
        "environment lines (deploy/.env); see docs/nats.md",
    )
    owner = commands.add_parser(
        "owner", help="print the NATS subject token of a user id and the subjects of its events"
    )
    owner.add_argument("user", help="a user id (a JWT's `sub`)")
    return parser


def _nats_secrets() -> int:
    auth = NatsAuth.generate()
    print("# NATS identities (deploy/nats/flowstream-auth.conf reads them); keep them secret")
    for identity in (*SERVICE_IDENTITIES, Identity.ADMIN):
        print(f"{env_variable(identity)}={auth.passwords[identity.value]}")
    print(f"{ISSUER_VARIABLE}={auth.issuer_public_key}")
    print(f"{ISSUER_VARIABLE}_SEED={auth.issuer_seed}")
    return 0


def _owner(user: str) -> int:
    token = subjects.owner_token(user)
    print(token)
    print(f"events: {subjects.owner_events(token)}", file=sys.stderr)
    return 0


def _credentials_key() -> int:
    private = generate_private_key()
    print("# the engine's (keep it secret), then the gateway's")
    print(f"FLOWSTREAM_CREDENTIALS_PRIVATE_KEY={private}")
    print(f"FLOWSTREAM_CREDENTIALS_PUBLIC_KEY={public_key_of(private)}")
    return 0


def _run() -> int:
    try:
        return asyncio.run(run_stack(LauncherSettings()))
    except KeyboardInterrupt:  # before the signal handlers were installed: nothing was started
        return 0


def _token(user: str, ttl_days: float) -> int:
    try:
        secret = jwt_secret(LauncherSettings(), create=False)
    except NoSecretError as exc:
        print(f"flowstream: {exc}", file=sys.stderr)
        return 1
    print(issue_token(secret, user, timedelta(days=ttl_days)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run()
        if args.command == "credentials-key":
            return _credentials_key()
        if args.command == "nats-secrets":
            return _nats_secrets()
        if args.command == "owner":
            return _owner(args.user)
        return _token(args.user, args.ttl_days)
    except ValidationError as exc:
        print(f"flowstream: invalid FLOWSTREAM_* setting:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
