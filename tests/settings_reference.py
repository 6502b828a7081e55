"""The settings reference, generated from the settings classes themselves: every variable each
process reads, its type, default and bounds. docs/configuration.md says what each one means.

Run as `python -m tests.settings_reference > docs/settings-reference.md` (`make docs` does); a
unit test fails when the file is stale.
"""

from __future__ import annotations

import sys
from typing import Any

import annotated_types
from flowstream_engine.settings import EngineSettings
from flowstream_gateway.settings import GatewaySettings
from flowstream_history.settings import HistorySettings
from flowstream_launcher.settings import LauncherSettings
from flowstream_shared.settings import ENV_PREFIX, TelemetrySettings
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

PROCESSES: dict[str, tuple[type[BaseSettings], ...]] = {
    "gateway": (GatewaySettings, TelemetrySettings),
    "engine": (EngineSettings, TelemetrySettings),
    "history": (HistorySettings, TelemetrySettings),
    "launcher": (LauncherSettings,),
}
BOUNDS = {
    annotated_types.Ge: ("ge", ">="),
    annotated_types.Gt: ("gt", ">"),
    annotated_types.Le: ("le", "<="),
    annotated_types.Lt: ("lt", "<"),
    annotated_types.MinLen: ("min_length", "length >="),
    annotated_types.MaxLen: ("max_length", "length <="),
}


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "")
    for noise in ("pydantic.types.", "pathlib._local.", "pathlib.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("Annotated[list[str], NoDecode]", "list[str]").replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    factory: Any = field.default_factory
    value = factory() if factory is not None else field.default
    if value is None:
        return "unset"
    return f"`{value}`" if value != [] else "empty"


def _bounds(field: FieldInfo) -> str:
    found = []
    for rule in field.metadata:
        for kind, (attribute, sign) in BOUNDS.items():
            if isinstance(rule, kind):
                found.append(f"{sign} {getattr(rule, attribute)}")
    return ", ".join(found)


def render() -> str:
    rows: dict[str, dict[str, Any]] = {}
    for process, classes in PROCESSES.items():
        for cls in classes:
            for name, field in cls.model_fields.items():
                variable = f"{ENV_PREFIX}{name.upper()}"
                row = rows.setdefault(
                    variable,
                    {"type": _type(field), "default": _default(field), "bounds": _bounds(field),
                     "secret": "Secret" in str(field.annotation), "read": []},
                )  # fmt: skip
                if process not in row["read"]:
                    row["read"].append(process)
    lines = [
        "# Settings reference",
        "",
        "Generated from the settings classes by `make docs` "
        "(`python -m tests.settings_reference`); a test fails when it is stale.",
        "What each setting means: [configuration.md](configuration.md). Tracing reads the "
        "standard `OTEL_*` variables instead ([operations.md](operations.md)).",
        "",
        "| variable | read by | type | default | bounds |",
        "|---|---|---|---|---|",
    ]
    for variable in sorted(rows):
        row = rows[variable]
        kind = row["type"] + (" (secret)" if row["secret"] else "")
        lines.append(
            f"| `{variable}` | {', '.join(row['read'])} | {kind} | {row['default']} "
            f"| {row['bounds']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
