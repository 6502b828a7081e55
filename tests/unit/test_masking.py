"""What counts as a secret, masking by name and by value, and the engine's log filter."""

from __future__ import annotations

import logging

import pytest
from flowstream_engine.redaction import LiveSecrets, RedactSecrets, RunSecrets
from flowstream_shared.masking import (
    MASK,
    ValueMasker,
    holds_literal_secret,
    is_secret_name,
    mask_headers,
    mask_url,
)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "X-API-Key",
        "api-key",
        "Cookie",
        "set-cookie",
        "X-Auth-Token",
        "access_token",
        "client_secret",
        "apiKey",
        "db_password",
        "X-Amz-Security-Token",
        "sig",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "fields", "page", "user", "name"])
def test_plain_names(name: str) -> None:
    assert not is_secret_name(name)


def test_a_reference_is_no_literal_secret() -> None:
    assert not holds_literal_secret("Bearer {{input.token}}")
    assert not holds_literal_secret("{{input.key}}")
    assert holds_literal_secret("Bearer sk-123")
    assert holds_literal_secret("sk-123")
    assert holds_literal_secret(123456)


def test_headers_are_masked_by_name() -> None:
    assert mask_headers({"Authorization": "Bearer x", "X-Custom-Token": "y", "Accept": "*/*"}) == {
        "Authorization": MASK,
        "X-Custom-Token": MASK,
        "Accept": "*/*",
    }


def test_urls_lose_their_passwords_and_secret_parameters_only() -> None:
    url = "https://bob:hunter22@api.test/v1?q=a%20b&api_key=sk-1&access_token=t&page=2#frag"
    assert mask_url(url) == (
        f"https://bob:{MASK}@api.test/v1?q=a%20b&api_key={MASK}&access_token={MASK}&page=2#frag"
    )
    assert mask_url("https://api.test/v1?key={{input.key}}", literal_only=True) == (
        "https://api.test/v1?key={{input.key}}"
    )


def test_values_are_masked_everywhere_raw_and_url_encoded() -> None:
    masker = ValueMasker(["s3cr3t+/=value"])
    data = {
        "headers": {"echo": "Bearer s3cr3t+/=value"},
        "url": "https://x.test/?k=s3cr3t%2B%2F%3Dvalue",
        "form": "k=s3cr3t%2B%2F%3Dvalue",
        "list": ["s3cr3t+/=value", 1, None],
        "s3cr3t+/=value": "as a key",
    }
    assert masker.mask(data) == {
        "headers": {"echo": f"Bearer {MASK}"},
        "url": f"https://x.test/?k={MASK}",
        "form": f"k={MASK}",
        "list": [MASK, 1, None],
        MASK: "as a key",
    }


def test_very_short_values_are_masked_by_name_only() -> None:
    masker = ValueMasker(["ab"])
    assert not masker
    assert masker.mask({"text": "abcab"}) == {"text": "abcab"}


def test_the_log_filter_redacts_messages_and_tracebacks_of_running_runs() -> None:
    live = LiveSecrets()
    handler_records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactSecrets(live))
    logger = logging.getLogger("test.redaction")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        secrets = RunSecrets(live)
        secrets.add("tok-9f8e7d")
        logger.warning("calling with %s", "Bearer tok-9f8e7d")
        try:
            raise RuntimeError("upstream echoed tok-9f8e7d")
        except RuntimeError:
            logger.exception("node failed")
        secrets.release()
        logger.warning("after the run: %s", "tok-9f8e7d")
    finally:
        logger.removeHandler(handler)
    assert handler_records[0] == f"calling with Bearer {MASK}"
    assert "tok-9f8e7d" not in handler_records[1]
    assert f"upstream echoed {MASK}" in handler_records[1]
    # Once no run holds it, the value is no longer known: the filter costs nothing then.
    assert handler_records[2] == "after the run: tok-9f8e7d"
