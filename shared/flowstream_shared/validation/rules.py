"""Names shared by the validation modules: reference roots, edge kinds, HTTP rules."""

from __future__ import annotations

import re

from flowstream_shared.workflow import (
    ConnectionType,
)

RUNTIME_ROOTS = frozenset({"input", "execution", "sys"})
LOOP_FIELDS = frozenset({"index"})
BRANCH_EDGES = frozenset({ConnectionType.CONDITIONAL_TRUE, ConnectionType.CONDITIONAL_FALSE})
# Edges that may go untaken although their source ran: CONDITION branches and CONDITIONAL edges.
OPTIONAL_EDGES = BRANCH_EDGES | {ConnectionType.CONDITIONAL}
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HTTP_SCHEMES = ("http", "https")

# How a template's references are checked: as any node's, an API_CALL's output mapping (which
# may read `response`), or a LOOP's condition (which may read `loop` and its body).
PLAIN, RESPONSE, LOOP_CONDITION = "plain", "response", "loop condition"
# A node's custom metrics: like PLAIN, and the node's own outputs too.
METRICS = "metrics"
METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
