"""What `/v1` changes in an event on its way out: the node type, in Dify's lower-case ids.

Frames are the bytes NATS delivered. Only the events that name a node type are touched, and only
by splicing the one value in place: no JSON parsing, no re-encoding. The first `"node_type":` key
of such an event is always `data.node_type`: the fields before it (`event`, the two ids, `id`,
`node_id`) are identifiers that cannot contain a quote, and a quote inside any string value is
escaped, so the key cannot be matched inside free text (tests/unit/test_dify_wire.py checks the
field order this relies on). See docs/adr/0030-dify-semantics-on-v1.md for the mapping.
"""

from __future__ import annotations

from flowstream_shared.workflow import NodeType

# flowstream's node types as Dify names them. DELAY and PARALLEL have no Dify counterpart (Dify
# has no wait node, and its parallel branches are edges, not a node): they keep their own name,
# lower-cased like Dify's ids, so no client check for a Dify type ever matches them by mistake.
DIFY_NODE_TYPES: dict[str, str] = {
    NodeType.START: "start",
    NodeType.END: "end",
    NodeType.TEMPLATE: "template-transform",
    NodeType.API_CALL: "http-request",
    NodeType.CONDITION: "if-else",
    NodeType.LLM: "llm",
    NodeType.LOOP: "loop",
    NodeType.DELAY: "delay",
    NodeType.PARALLEL: "parallel",
}

# The events whose `data` has a `node_type`.
NODE_TYPED_EVENTS = frozenset(
    {"node_started", "node_finished", "node_retry", "loop_started", "loop_next", "loop_completed"}
)

_KEY = b'"node_type":'
_BYTES_CACHE_LIMIT = 1024


def dify_node_type(node_type: str) -> str:
    """Dify's id for a node type; plugin types follow the same rule (lower case, `-` for `_`)."""
    return DIFY_NODE_TYPES.get(node_type) or node_type.lower().replace("_", "-")


_translated: dict[bytes, bytes] = {
    key.encode(): value.encode() for key, value in DIFY_NODE_TYPES.items()
}


def _translate(raw: bytes) -> bytes:
    found = _translated.get(raw)
    if found is None:
        found = dify_node_type(raw.decode()).encode()
        if len(_translated) < _BYTES_CACHE_LIMIT:  # plugin types: a handful, never unbounded
            _translated[raw] = found
    return found


def dify_frame(event: str, payload: bytes) -> bytes:
    """The SSE frame `/v1` sends for one event: built in one allocation, as `/api`'s is."""
    if event in NODE_TYPED_EVENTS:
        key_at = payload.find(_KEY)
        if key_at >= 0:
            value_at = key_at + len(_KEY)
            start = payload.find(b'"', value_at) + 1
            end = payload.find(b'"', start)
            plain = start > 0 and end > 0 and not payload[value_at : start - 1].strip()
            if plain and payload[end - 1] != 0x5C:  # 0x5C: the closing quote is escaped
                dify_type = _translate(payload[start:end])
                return b"".join((b"data: ", payload[:start], dify_type, payload[end:], b"\n\n"))
    return b"data: %s\n\n" % payload
