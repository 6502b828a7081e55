"""The API registry: named HTTP APIs an API_CALL node calls by `api_id` instead of a URL.

An API is stored per owner in the KV bucket `flowstream_apis` (the gateway alone reads and writes
it). When a run is submitted, the gateway copies the settings of every API the workflow uses into
the run's snapshot (:class:`ApiSnapshot`), so a run is reproducible and an engine never reads the
registry: editing or deleting an API changes the runs submitted afterwards, never a running one.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowstream_shared.masking import is_secret_name, mask_url
from flowstream_shared.workflow import CREDENTIAL_REF_PATTERN

# `{user_id}` in a path template; `{{…}}` is a template, not a placeholder.
PATH_PARAMETER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]{0,63})\}(?!\})")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# The registry is shown back in full: a secret goes to the credentials store, never in here.
_USE_A_CREDENTIAL = (
    "cannot carry {what}: store the secret as a credential (POST /api/credentials) and name it "
    "in `credential`"
)


class ApiDefinition(BaseModel):
    """What a user registers: `POST /api/apis`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    base_url: str = Field(min_length=1, max_length=2_000, description="literal http(s) URL")
    method: HttpMethod = "GET"
    path: str = Field(
        default="",
        max_length=2_000,
        description="appended to `base_url`; `{name}` placeholders are filled from the node's "
        "`parameters`",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="default headers")
    credential: str | None = Field(
        default=None,
        pattern=CREDENTIAL_REF_PATTERN,
        description="the name of a stored credential the call authenticates with",
    )
    timeout: float | None = Field(default=None, gt=0, le=3600)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("cannot contain placeholders or templates (put them in `path`)")
        lowered = value.strip().lower()
        if not lowered.startswith(("http://", "https://")) or len(lowered.split("://", 1)[1]) < 1:
            raise ValueError("must be an absolute http:// or https:// URL")
        if mask_url(value) != value:
            raise ValueError(
                _USE_A_CREDENTIAL.format(what="a password or a secret query parameter")
            )
        return value.strip()

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value and not value.startswith(("/", "?")):
            raise ValueError("must start with `/` (or be empty)")
        if "{{" in value or "{%" in value:
            raise ValueError("placeholders are written `{name}`; templates go in `parameters`")
        if any(c in value for c in "\r\n\0 "):
            raise ValueError("cannot contain spaces, CR, LF or NUL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if is_secret_name(name):
                raise ValueError(_USE_A_CREDENTIAL.format(what=f"`{name}`"))
            if any(c in header for c in "\r\n\0"):
                raise ValueError(f"{name}: a header value cannot contain CR, LF or NUL")
        return value

    @property
    def path_parameters(self) -> list[str]:
        return PATH_PARAMETER.findall(self.path)


class ApiSnapshot(ApiDefinition):
    """An API's settings as a run was submitted with them (in `WorkflowSnapshot.apis`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str


def missing_parameters(api: ApiDefinition, parameters: dict[str, Any]) -> list[str]:
    """The placeholders of the API's path that `parameters` leaves unfilled."""
    return [name for name in api.path_parameters if name not in parameters]
