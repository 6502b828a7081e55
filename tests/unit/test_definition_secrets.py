"""Literal secrets in stored definitions: masked in answers, put back when an edit keeps the
placeholder, refused when it cannot be; credential names checked at write time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flowstream_gateway.credentials import CredentialCreate, CredentialSpec
from flowstream_gateway.definition_secrets import mask_definition, placeholder
from flowstream_gateway.errors import ApiError
from flowstream_shared.workflow import WorkflowDefinition
from pydantic import ValidationError

from tests.unit.builders import api_call, chain, definition, end, field, llm, start
from tests.unit.test_gateway_definitions import _store, credential_store

SECRET = "sk-live-0123456789"


def with_secrets(**extra: Any) -> WorkflowDefinition:
    call = api_call(
        "call",
        f"https://api.test/v1/{{{{input.name}}}}?api_key={SECRET}&page=1",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "X-Forwarded-Token": "{{input.name}}",
            "Accept": "application/json",
        },
        query={"access_token": SECRET, "limit": 5, "sig": 12345},
        body={"client": "web", "password": SECRET, "nested": [{"secret": SECRET}]},
        outputs={"token_count": "{{response.body.n}}"},
        **extra,
    )
    ask = llm("ask", "https://llm.test/v1", api_key=SECRET, prompt="hi", max_tokens=20)
    return definition(
        [start(field("name")), call, ask, end(answer="{{call.status_code}} {{ask.text}}")],
        chain("start", "call", "ask", "end"),
    )


def test_literal_secrets_are_masked_and_nothing_else() -> None:
    shown = mask_definition(with_secrets(), "wf-1", 3)
    mask = placeholder("wf-1", 3)
    text = json.dumps(shown.model_dump(mode="json", by_alias=True))

    assert SECRET not in text
    call = shown.node("call").config
    assert call["url"] == f"https://api.test/v1/{{{{input.name}}}}?api_key={mask}&page=1"
    assert call["headers"] == {
        "Authorization": mask,
        "X-Forwarded-Token": "{{input.name}}",  # a reference: shown as written
        "Accept": "application/json",
    }
    assert call["query"] == {"access_token": mask, "limit": 5, "sig": mask}
    assert call["body"] == {"client": "web", "password": mask, "nested": [{"secret": mask}]}
    assert call["outputs"] == {"token_count": "{{response.body.n}}"}
    ask = shown.node("ask").config
    assert ask["api_key"] == mask
    assert ask["max_tokens"] == 20


async def test_an_unchanged_placeholder_keeps_the_stored_secret() -> None:
    store, _ = _store()
    created = await store.create("alice", with_secrets())
    shown = mask_definition(created.definition, created.id, created.version)
    edited = shown.model_copy(update={"name": "renamed"})

    replaced = await store.replace("alice", created.id, edited)

    assert replaced.version == 2
    assert replaced.definition == with_secrets().model_copy(update={"name": "renamed"})


async def test_an_export_imports_as_a_copy_with_its_secrets_for_the_owner() -> None:
    store, _ = _store()
    created = await store.create("alice", with_secrets())
    exported = mask_definition(created.definition, created.id, created.version)

    copy = await store.create("alice", exported)

    assert copy.id != created.id
    assert copy.definition == with_secrets()


async def test_another_user_cannot_import_my_secrets() -> None:
    store, _ = _store()
    created = await store.create("alice", with_secrets())
    exported = mask_definition(created.definition, created.id, created.version)

    with pytest.raises(ApiError) as caught:
        await store.create("mallory", exported)

    assert caught.value.status == 400
    assert "node `call`" in caught.value.message
    assert "masked value that cannot be restored" in caught.value.message
    assert SECRET not in caught.value.message


async def test_a_changed_value_around_a_placeholder_is_refused() -> None:
    store, _ = _store()
    created = await store.create("alice", with_secrets())
    shown = mask_definition(created.definition, created.id, created.version)
    data = shown.model_dump(mode="json", by_alias=True)
    data["nodes"][1]["config"]["headers"]["Authorization"] = "Token " + placeholder(created.id, 1)

    with pytest.raises(ApiError) as caught:
        await store.replace("alice", created.id, WorkflowDefinition.model_validate(data))

    assert "node `call`: config.headers.Authorization" in caught.value.message
    assert "was changed" in caught.value.message


async def test_an_unknown_credential_is_a_400_naming_the_node() -> None:
    credentials = credential_store()
    await credentials.create("alice", CredentialCreate(name="crm", value="tok-12345"))
    store, _ = _store(credentials)
    simple = definition(
        [start(), api_call("call", "https://crm.test/", credential="crm"), end()],
        chain("start", "call", "end"),
    )

    await store.create("alice", simple)  # alice has `crm`
    with pytest.raises(ApiError) as caught:
        await store.create("bob", simple)  # bob has not

    assert caught.value.status == 400
    assert caught.value.message == (
        "node `call`: unknown credential 'crm' (create it with POST /api/credentials)"
    )


async def test_credentials_list_metadata_never_values() -> None:
    credentials = credential_store()
    await credentials.create(
        "alice",
        CredentialCreate(
            name="crm", type="header", header_name="X-Api-Key", value="tok-12345",
            allowed_hosts=["API.crm.test", "*.crm.test"],
        ),
    )  # fmt: skip
    await credentials.create(
        "alice", CredentialCreate(name="basic", type="basic", username="u", password="pw-12345")
    )

    listed = [c.model_dump() for c in credentials.list("alice")]

    assert [c["name"] for c in listed] == ["basic", "crm"]
    assert listed[1]["allowed_hosts"] == ["api.crm.test", "*.crm.test"]
    assert "tok-12345" not in json.dumps(listed) and "pw-12345" not in json.dumps(listed)
    assert credentials.list("bob") == []
    with pytest.raises(ApiError) as caught:
        await credentials.create("alice", CredentialCreate(name="crm", value="other-123"))
    assert caught.value.status == 409


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"type": "header", "value": "tok-1234"}, "needs `header_name`"),
        ({"type": "query", "value": "tok-1234"}, "needs `param_name`"),
        ({"type": "basic", "username": "u"}, "needs `password`"),
        ({"type": "bearer", "value": "tok-1234", "username": "u"}, "takes no `username`"),
        ({"type": "bearer", "value": "a\r\nX-Evil: 1"}, "CR, LF or NUL"),
        ({"type": "bearer", "value": "abc"}, "at least 4"),
        ({"type": "header", "value": "tok-1234", "header_name": "Host"}, "cannot carry"),
        ({"type": "bearer", "value": "tok-1234", "allowed_hosts": ["a b"]}, "allowed_hosts"),
    ],
)
def test_a_credential_must_be_complete_and_clean(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        CredentialSpec.model_validate(body)
