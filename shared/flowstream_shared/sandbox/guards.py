"""Checks made before an operation builds something large, so it fails instead of allocating.

Each function raises :class:`BudgetExceeded` naming the limit, or returns; none builds the result
itself. Sizes are estimated from the operands (an upper bound where an exact size would cost as
much as the operation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sized
from typing import Any

from flowstream_shared.sandbox.budget import current
from flowstream_shared.sandbox.errors import BudgetExceeded
from flowstream_shared.sandbox.limits import TemplateLimits

# A `%` conversion: flags, width, precision (`*` takes them from the arguments).
_PERCENT_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?"
    r"(?:\.(?P<precision>\*|\d+))?[hlL]?(?P<type>.)",
    re.DOTALL,
)
# A `str.format` spec: [[fill]align][sign][z][#][0][width][grouping][.precision][type].
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[a-zA-Z%]?", re.DOTALL
)


def _limits() -> TemplateLimits:
    budget = current()
    budget.check_time()
    return budget.limits


def _too_long(what: str, size: int, limits: TemplateLimits) -> BudgetExceeded:
    return BudgetExceeded(
        f"{what} would build {size:,} characters or items; the limit is {limits.max_string:,}"
    )


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def check_size(what: str, size: int) -> None:
    limits = _limits()
    if size > limits.max_string:
        raise _too_long(what, size, limits)


def check_width(what: str, width: Any) -> None:
    limits = _limits()
    if isinstance(width, int) and not isinstance(width, bool) and width > limits.max_width:
        raise BudgetExceeded(f"{what} {width:,} is over the limit of {limits.max_width:,}")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """`**`, `*`, `%` and `+` on values whose result could be far larger than the operands."""
    limits = _limits()
    if operator == "**":
        if _is_int(left) and _is_int(right) and right > 0:
            bits = max(abs(left).bit_length(), 1) * right
            if abs(left) > 1 and bits > limits.max_integer_bits:
                raise BudgetExceeded(
                    f"`**` would build an integer of about {bits:,} bits; the limit is "
                    f"{limits.max_integer_bits:,}"
                )
    elif operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if _is_sequence(sequence) and _is_int(count):
                size = len(sequence) * max(count, 0)
                if size > limits.max_string:
                    raise _too_long("repetition (`*`)", size, limits)
        if _is_int(left) and _is_int(right):
            bits = abs(left).bit_length() + abs(right).bit_length()
            if bits > limits.max_integer_bits:
                raise BudgetExceeded(
                    f"`*` would build an integer of about {bits:,} bits; the limit is "
                    f"{limits.max_integer_bits:,}"
                )
    elif operator == "%":
        if isinstance(left, str):
            check_percent_format(left, right)
    elif operator == "+" and _is_sequence(left) and _is_sequence(right):
        size = len(left) + len(right)
        if size > limits.max_string:
            raise _too_long("concatenation (`+`)", size, limits)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_percent_format(template: str, arguments: Any) -> None:
    """`"%10s" % x` and the `format` filter: widths and precisions, literal or `*`."""
    limits = _limits()
    positional = list(arguments) if isinstance(arguments, tuple | list) else [arguments]
    taken = 0
    size = len(template)
    for match in _PERCENT_SPEC.finditer(template):
        for part in ("width", "precision"):
            spec = match.group(part)
            if spec is None:
                continue
            if spec == "*":
                value = positional[taken] if taken < len(positional) else 0
                taken += 1
            else:
                value = int(spec)
            if _is_int(value) and abs(value) > limits.max_width:
                raise BudgetExceeded(
                    f"format {part} {value:,} is over the limit of {limits.max_width:,}"
                )
            if _is_int(value):
                size += abs(value)
        if match.group("type") != "%":
            taken += 1
    if isinstance(arguments, Mapping):
        size += sum(len(v) for v in arguments.values() if isinstance(v, str))
    else:
        size += sum(len(v) for v in positional if isinstance(v, str))
    if size > limits.max_string:
        raise _too_long("formatting (`%`)", size, limits)


def check_format_spec(spec: str) -> None:
    """One replacement field's spec in `str.format`: nested fields are refused."""
    limits = _limits()
    if "{" in spec:
        raise BudgetExceeded("nested format specs (`{:{width}}`) are not allowed in templates")
    match = _FORMAT_SPEC.fullmatch(spec)
    if match is None:
        return  # Python reports the bad spec itself
    for part in ("width", "precision"):
        digits = match.group(part)
        if digits and int(digits) > limits.max_width:
            raise BudgetExceeded(
                f"format {part} {int(digits):,} is over the limit of {limits.max_width:,}"
            )


def check_concat(parts: Iterable[Any]) -> list[str]:
    """`a ~ b ~ c`: the pieces as strings, once their total length is known to fit."""
    limits = _limits()
    pieces = [p if isinstance(p, str) else str(p) for p in parts]
    size = sum(len(p) for p in pieces)
    if size > limits.max_string:
        raise _too_long("concatenation (`~`)", size, limits)
    return pieces


def check_join(separator: str, items: Iterable[Any]) -> list[str]:
    """`sep.join(items)` and the `join` filter: the items as strings, once the result fits."""
    limits = _limits()
    pieces: list[str] = []
    size = 0
    for item in items:
        piece = item if isinstance(item, str) else str(item)
        size += len(piece) + (len(separator) if pieces else 0)
        if size > limits.max_string:
            raise _too_long("`join`", size, limits)
        pieces.append(piece)
    return pieces


def check_replace(text: Any, old: Any, new: Any, count: Any = None) -> None:
    kinds: tuple[type[Any], ...] = (str, bytes)
    for kind in kinds:
        if isinstance(text, kind) and isinstance(old, kind) and isinstance(new, kind):
            _check_replaced(len(text), text.count(old), len(new) - len(old), count)


def _check_replaced(length: int, found: int, growth: int, count: Any) -> None:
    if growth <= 0:
        return
    if _is_int(count) and count >= 0:
        found = min(found, count)
    check_size("`replace`", length + found * growth)


def check_expandtabs(text: Any, tabsize: Any) -> None:
    check_width("`expandtabs` tab size", tabsize)
    if isinstance(text, str | bytes) and _is_int(tabsize):
        tab = "\t" if isinstance(text, str) else b"\t"
        check_size("`expandtabs`", len(text) + text.count(tab) * max(tabsize, 0))  # type: ignore[arg-type]


def check_indent(text: Any, width: Any) -> None:
    if isinstance(width, str):
        pad = len(width)
    elif _is_int(width):
        check_width("`indent` width", width)
        pad = width
    else:
        return
    if isinstance(text, str):
        check_size("`indent`", len(text) + (text.count("\n") + 1) * pad)


def check_translate(text: Any, table: Any) -> None:
    if isinstance(text, str) and isinstance(table, Mapping):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        check_size("`translate`", len(text) * max(longest, 1))


def check_to_bytes(length: Any) -> None:
    if _is_int(length):
        check_size("`to_bytes`", length)


def check_count(what: str, count: Any) -> None:
    check_width(what, count)


def check_wrap(text: Any, width: Any, wrapstring: Any) -> None:
    if isinstance(text, str) and _is_int(width) and isinstance(wrapstring, str):
        lines = len(text) // max(width, 1) + text.count("\n") + 1
        check_size("`wordwrap`", len(text) + lines * len(wrapstring))


def size_of(value: Any) -> int:
    return len(value) if isinstance(value, Sized) else 0
