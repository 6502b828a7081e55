"""A strict UUID check, as client validators such as zod's `z.uuid()` apply it."""

from __future__ import annotations

import re
import uuid

# RFC 4122 versions 1-8 and the variant bits 10.
RFC4122_UUID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)


def is_rfc4122_uuid(value: str) -> bool:
    return bool(RFC4122_UUID.match(value)) and uuid.UUID(value).variant == uuid.RFC_4122
