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
