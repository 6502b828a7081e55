"""The committed OpenAPI and AsyncAPI documents are the ones the code generates (`make docs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flowstream_engine.app import create_app as create_engine
from flowstream_gateway.app import create_app as create_gateway
from flowstream_history.app import create_app as create_history

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _committed(name: str) -> Any:
    return json.loads((DOCS / name).read_text())


def _roundtrip(document: Any) -> Any:
    return json.loads(json.dumps(document))


def test_openapi_document_is_current() -> None:
    assert _committed("openapi.json") == _roundtrip(create_gateway().openapi()), "run `make docs`"


@pytest.mark.parametrize(
    ("name", "factory"),
    [("asyncapi-engine.json", create_engine), ("asyncapi-history.json", create_history)],
)
def test_asyncapi_documents_are_current(name: str, factory: Any) -> None:
    generated = factory().schema.to_specification().to_jsonable()
    assert _committed(name) == _roundtrip(generated), "run `make docs`"


def test_the_event_channel_documents_every_event_type() -> None:
    schemas = _committed("asyncapi-engine.json")["components"]["schemas"]
    for event in (
        "WorkflowStarted",
        "NodeStarted",
        "TextChunk",
        "NodeFinished",
        "WorkflowFinished",
    ):
        assert event in schemas


def test_the_openapi_document_has_the_bearer_scheme_and_real_errors() -> None:
    document = json.loads((DOCS / "openapi.json").read_text())
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A user JWT (HS256, `sub` = user id) or an app API key from "
        "`POST /api/keys`",
    }
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert all("422" not in op["responses"] for op in operations)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    cancel = document["paths"]["/api/executions/{run_id}/cancel"]["post"]
    assert cancel["security"] == [{"bearer": []}]
    assert set(cancel["responses"]) == {"202", "400", "401", "404", "409", "503"}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    assert cancel["responses"]["409"]["content"] == error
    start = document["paths"]["/api/executions"]["post"]["responses"]
    assert {"400", "401", "409", "413", "503"} <= set(start)  # 409: Idempotency-Key reused
    assert start["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExecutionAccepted"
    )
    assert "403" in document["paths"]["/api/keys"]["post"]["responses"]
    assert "403" not in document["paths"]["/api/executions/{run_id}"]["get"]["responses"]
    listed = document["paths"]["/api/executions"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"]["$ref"].endswith("/ExecutionPage")
