"""Sizes of JSON values, and bounded summaries of values too large to send whole.

Everything flowstream sends over NATS is one message of at most the server's `max_payload`
(1 MiB by default), so values are measured as the JSON they become. A value over its budget is
either refused (a node's outputs, a run's inputs) or summarized (a list entry, a recorded
request): strings shortened, lists and objects cut, each cut marked with `…`, and the caller
sets an `*_truncated` flag so nobody mistakes a summary for the value.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

__all__ = ["MARK", "bounded", "fits", "json_size"]

MARK = "…"
# Deeper than this, a summary keeps only the mark: a summary must stay cheap to build.
_MAX_DEPTH = 32


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (what an event or a reply carries)."""
    return len(to_json(value, fallback=str))


def fits(value: Any, max_bytes: int) -> bool:
    """Whether `value` as JSON takes at most `max_bytes`, serializing it only when a quick
    upper bound does not already say so (the common case: a small node output)."""
    if type(value) is dict and len(value) <= 16:
        # A few text fields (`{"text": ...}`): bounded without a call per field.
        total = 2
        for key, item in value.items():
            if type(key) is not str or type(item) is not str:
                break
            total += 6 * (len(key) + len(item)) + 6
        else:
            if total <= max_bytes:
                return True
    return _upper_bound(value, max_bytes) <= max_bytes or json_size(value) <= max_bytes


def _upper_bound(value: Any, give_up: int) -> int:
    """At least the JSON size of `value`; stops adding once past `give_up`."""
    if isinstance(value, str):
        return 6 * len(value) + 2  # every character escaped as \uXXXX at worst
    if value is None or isinstance(value, bool | int | float):
        return 32 if not isinstance(value, int) or value.bit_length() < 64 else give_up + 1
    if isinstance(value, dict):
        total = 2
        for key, item in value.items():
            total += _upper_bound(key, give_up) + _upper_bound(item, give_up) + 2
            if total > give_up:
                break
        return total
    if isinstance(value, list | tuple):
        total = 2
        for item in value:
            total += _upper_bound(item, give_up) + 1
            if total > give_up:
                break
        return total
    return give_up + 1  # anything else: measure it


def _shrink(value: Any, chars: int, items: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + MARK
    if depth >= _MAX_DEPTH and isinstance(value, dict | list):
        return MARK
    if isinstance(value, dict):
        kept = dict(list(value.items())[:items])
        shrunk = {k: _shrink(v, chars, items, depth + 1) for k, v in kept.items()}
        if len(value) > items:
            shrunk[MARK] = f"{len(value) - items} more"
        return shrunk
    if isinstance(value, list | tuple):
        shrunk_list = [_shrink(v, chars, items, depth + 1) for v in list(value)[:items]]
        if len(value) > items:
            shrunk_list.append(f"{MARK} {len(value) - items} more")
        return shrunk_list
    return value


def bounded(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """`value` if its JSON fits in `max_bytes`, else a summary that does, and whether it was cut.

    A dict stays a dict (the fields that carry inputs and outputs are objects).
    """
    if value is None or fits(value, max_bytes):
        return value, False
    chars = max(max_bytes // 2, 16)
    while chars >= 16:
        candidate = _shrink(value, chars, items=max(chars // 32, 4))
        if json_size(candidate) <= max_bytes:
            return candidate, True
        chars //= 2
    preview = to_json(value, fallback=str)[: max(max_bytes // 2, 0)].decode(errors="ignore")
    summary: Any = {MARK: preview + MARK} if isinstance(value, dict) else preview + MARK
    if json_size(summary) > max_bytes:
        summary = {} if isinstance(value, dict) else MARK
    return summary, True
