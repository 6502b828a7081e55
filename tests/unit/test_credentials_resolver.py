"""The engine's side of credentials: sealing, the resolver's cache, what a credential sends."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from flowstream_engine.credentials import CredentialError, CredentialResolver, RunCredentials
from flowstream_engine.redaction import LiveSecrets, RunSecrets
from flowstream_shared.credentials import (
    CredentialKeyError,
    CredentialType,
    Opener,
    Sealer,
    SealError,
    generate_private_key,
)

from tests.credentials_support import MemoryCredentials


def run_view(
    stored: MemoryCredentials, user: str = "alice", cache_s: float = 30.0
) -> RunCredentials:
    return RunCredentials(stored.resolver(cache_s), user, RunSecrets(LiveSecrets()))


async def test_one_read_however_many_nodes_ask_and_then_the_cache() -> None:
    stored = MemoryCredentials()
    stored.add("alice", "crm", value="tok-123456")
    view = run_view(stored)

    found = await asyncio.gather(*(view.get("crm") for _ in range(20)))
    await view.get("crm")

    assert {c.secret.value for c in found} == {"tok-123456"}
    assert stored.reads == 1


async def test_owners_are_kept_apart() -> None:
    stored = MemoryCredentials()
    stored.add("alice", "crm", value="alice-token")
    stored.add("bob", "crm", value="bob-token")
    resolver = stored.resolver()

    alice = await resolver.resolve("alice", "crm")
    bob = await resolver.resolve("bob", "crm")

    assert (alice.secret.value, bob.secret.value) == ("alice-token", "bob-token")
    with pytest.raises(CredentialError, match="does not exist"):
        await resolver.resolve("carol", "crm")


async def test_a_resolved_value_becomes_a_run_secret_and_never_prints() -> None:
    stored = MemoryCredentials()
    stored.add("alice", "pair", type="basic", username="svc", password="pw-98765")
    secrets = RunSecrets(LiveSecrets())
    view = RunCredentials(stored.resolver(), "alice", secrets)

    credential = await view.get("pair")
    auth = await view.auth_for("pair", httpx.URL("https://any.test/"))

    assert auth.headers == {"Authorization": "Basic c3ZjOnB3LTk4NzY1"}
    assert "pw-98765" in secrets and "c3ZjOnB3LTk4NzY1" in secrets
    for shown in (repr(credential), repr(auth), repr(credential.secret)):
        assert "pw-98765" not in shown and "c3ZjOnB3LTk4NzY1" not in shown


async def test_allowed_hosts_match_names_and_subdomains() -> None:
    stored = MemoryCredentials()
    stored.add("alice", "crm", value="tok-123456", allowed_hosts=["crm.test", "*.api.test"])
    view = run_view(stored)

    for url in ("https://crm.test/x", "https://eu.api.test/", "https://a.b.api.test:8443/"):
        await view.auth_for("crm", httpx.URL(url))
    for url in ("https://api.test/", "https://crm.test.evil/", "https://evilcrm.test/"):
        with pytest.raises(CredentialError, match="may not be sent to"):
            await view.auth_for("crm", httpx.URL(url))


async def test_a_query_credential_is_refused_where_only_headers_are_sent() -> None:
    stored = MemoryCredentials()
    stored.add("alice", "q", type="query", param_name="key", value="tok-123456")

    with pytest.raises(CredentialError, match="query parameter credential"):
        await run_view(stored).auth_headers("q", httpx.URL("https://llm.test/v1"))


async def test_without_a_key_the_engine_says_so() -> None:
    with pytest.raises(CredentialError, match="FLOWSTREAM_CREDENTIALS_PRIVATE_KEY is not set"):
        await CredentialResolver(None, None).resolve("alice", "crm")


def test_a_secret_opens_only_with_the_engines_key() -> None:
    stored = MemoryCredentials()
    record = stored.add("alice", "crm", value="tok-123456")

    assert Opener(stored.private_key).open(record).value == "tok-123456"
    with pytest.raises(SealError):
        Opener(generate_private_key()).open(record)
    for moved in ({"user_id": "mallory"}, {"name": "other"}, {"type": CredentialType.QUERY}):
        with pytest.raises(SealError):
            Opener(stored.private_key).open(record.model_copy(update=moved))


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ"])
def test_a_bad_key_is_refused(key: str) -> None:
    with pytest.raises(CredentialKeyError):
        Sealer(key)
