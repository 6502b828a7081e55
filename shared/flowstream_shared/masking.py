"""What counts as a secret in an HTTP request, and how it is masked before anyone sees it.

Two complementary rules, used by the engine (events, logs) and the gateway (definitions):
- **by name**: a header, query parameter or config key whose name looks secret
  (`authorization`, `cookie`, anything containing `token`, `secret`, `key`, `password`, …)
  has its value replaced;
- **by value**: a value known to be secret (a credential's, or one sent under a secret name) is
  replaced wherever it appears, in any string, raw or URL-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

MASK = "***"
# Shorter values are masked by name only: replacing every "ab" in an event would garble it.
MIN_SECRET_CHARS = 4

_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "auth",
        "sig",
        "pass",
        "pwd",
        "client-secret",
    }
)
_SECRET_PARTS = ("token", "secret", "key", "passw", "credential", "signature", "session", "cookie")
_TEMPLATE_PART = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_AUTH_SCHEME = re.compile(r"^(bearer|basic|token|bot|digest|apikey)\s*", re.IGNORECASE)
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@?#:]*:)(?P<pw>[^/@?#]*)@")


def is_secret_name(name: str) -> bool:
    """A header, query parameter or field whose value should never be shown."""
    lowered = name.strip().lower().replace("_", "-")
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


def literal_text(value: str) -> str:
    """`value` without its template parts: what the author wrote literally."""
    return _TEMPLATE_PART.sub("", value)


def holds_literal_secret(value: Any) -> bool:
    """Whether a value stored under a secret name holds a secret itself, rather than only a
    reference (`Bearer {{input.token}}` holds none; `Bearer sk-123` and `sk-123` do)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    if not isinstance(value, str):
        return False
    return bool(_AUTH_SCHEME.sub("", literal_text(value).strip()).strip())


def mask_headers(headers: Mapping[str, str], mask: str = MASK) -> dict[str, str]:
    return {name: mask if is_secret_name(name) else value for name, value in headers.items()}


def mask_query_string(query: str, mask: str = MASK, literal_only: bool = False) -> str:
    """A raw query string with secret parameters' values replaced; the rest left byte for byte.

    `literal_only` keeps values that are only references (`?key={{input.key}}`)."""
    pieces = []
    for piece in query.split("&"):
        name, eq, value = piece.partition("=")
        secret = eq and value and is_secret_name(unquote_plus(name))
        if secret and (not literal_only or holds_literal_secret(unquote_plus(value))):
            value = mask
        pieces.append(f"{name}{eq}{value}")
    return "&".join(pieces)


def mask_url(url: str, mask: str = MASK, literal_only: bool = False) -> str:
    """`url` with a password in its user info and secret query parameters replaced."""
    url = _USERINFO.sub(lambda m: f"{m['head']}{mask}@" if m["pw"] else m[0], url, count=1)
    base, question, rest = url.partition("?")
    if not question:
        return url
    query, hash_, fragment = rest.partition("#")
    return f"{base}?{mask_query_string(query, mask, literal_only)}{hash_}{fragment}"


class ValueMasker:
    """Replaces known secret values wherever they appear: in strings, dict keys, nested data."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __contains__(self, value: str) -> bool:
        return value in self._values

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def add(self, *values: str) -> None:
        """Mask `values` from now on, raw and in the forms a URL or a form body gives them."""
        new = {
            form
            for value in values
            if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS
            for form in (value, quote(value, safe=""), quote_plus(value))
        } - self._values
        if new:
            self._values |= new
            # Longest first: a secret that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def mask(self, data: Any) -> Any:
        """A copy of JSON-like `data` with every secret value masked."""
        if self._pattern is None:
            return data
        return self._walk(data)

    def _walk(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            return {self._walk(k): self._walk(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self._walk(item) for item in data]
        return data
