"""Write-time checks of PARALLEL, LOOP, API_CALL and LLM nodes: each rejection names the node."""

from __future__ import annotations

from typing import Any

import pytest
from flowstream_shared.validation import DefinitionError, validate_definition
from flowstream_shared.workflow import WorkflowDefinition

from tests.unit.builders import (
    Spec,
    api_call,
    chain,
    condition,
    connect,
    definition,
    delay,
    end,
    field,
    llm,
    loop,
    node,
    parallel,
    start,
    template,
)


def rejection(workflow: WorkflowDefinition) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(workflow)
    return caught.value


def assert_names(error: DefinitionError, node_id: str) -> None:
    assert error.node_id == node_id, str(error)
    assert f"`{node_id}`" in str(error)


# PARALLEL


def fan(*branches: str, config: dict[str, Any] | None = None, join: str = "") -> list[Spec]:
    return [
        start(),
        parallel("fan", **(config or {})),
        *(template(b, b) for b in branches),
        end(answer=join or "ok"),
    ]


def fan_edges(*branches: str) -> list[Spec]:
    return [
        connect("start", "fan"),
        *(connect("fan", b, "PARALLEL") for b in branches),
        *(connect(b, "end") for b in branches),
    ]


def test_a_parallel_whose_join_reads_every_branch_passes() -> None:
    validate_definition(definition(fan("a", "b", join="{{a.text}}{{b.text}}"), fan_edges("a", "b")))


def test_a_parallel_without_branches() -> None:
    workflow = definition([start(), parallel("fan"), end()], [connect("start", "fan")])

    error = rejection(workflow)

    assert_names(error, "fan")
    assert "at least one PARALLEL connection" in str(error)


def test_a_sequence_connection_out_of_a_parallel() -> None:
    workflow = definition(fan("a"), [*fan_edges("a"), connect("fan", "end")])

    error = rejection(workflow)

    assert_names(error, "fan")
    assert "must be PARALLEL" in str(error)


def test_branches_must_be_independent() -> None:
    workflow = definition(fan("a", "b"), [*fan_edges("a", "b"), connect("a", "b")])

    error = rejection(workflow)

    assert_names(error, "fan")
    assert "independent" in str(error)


def test_after_a_race_the_join_cannot_read_a_branch() -> None:
    racing = definition(
        fan("a", "b", config={"wait_for_all": False}, join="{{a.text}}"), fan_edges("a", "b")
    )

    error = rejection(racing)

    assert_names(error, "end")
    assert "`a`" in str(error)


def test_bad_parallel_config() -> None:
    workflow = definition(fan("a", config={"max_concurrent": 0}), fan_edges("a"))

    error = rejection(workflow)

    assert_names(error, "fan")
    assert "max_concurrent" in str(error)


# LOOP


def looping(
    body_template: str = "{{loop.index}}",
    *,
    loop_config: dict[str, Any] | None = None,
    after: str = "{{rep.iterations}}",
    extra_nodes: tuple[Spec, ...] = (),
    extra_edges: tuple[Spec, ...] = (),
) -> WorkflowDefinition:
    config = {"max_iterations": 3, **(loop_config or {})}
    return definition(
        [
            start(field("n", "integer")),
            node("rep", "LOOP", config),
            template("body", body_template),
            template("after", after),
            end(answer="{{after.text}}"),
            *extra_nodes,
        ],
        [
            connect("start", "rep"),
            connect("rep", "body", "LOOP"),
            connect("body", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
            *extra_edges,
        ],
    )


def test_a_loop_body_passes() -> None:
    validate_definition(
        looping(
            loop_config={"condition": "{{loop.index}} < {{input.n}} and {{body.text}} != '9'"},
            after="{{rep.iterations}} {{body.text}} {{rep.errors}}",
        )
    )


def test_a_loop_without_a_bound() -> None:
    error = rejection(looping(loop_config={"max_iterations": None}))

    assert_names(error, "rep")
    assert "max_iterations" in str(error)


def test_a_loop_without_max_iterations_at_all() -> None:
    workflow = definition(
        [start(), node("rep", "LOOP", {"condition": "true"}), template("body", "x"), end()],
        [
            connect("start", "rep"),
            connect("rep", "body", "LOOP"),
            connect("body", "rep"),
            connect("rep", "end"),
        ],
    )

    error = rejection(workflow)

    assert_names(error, "rep")
    assert "config.max_iterations: Field required" in str(error)


def test_a_loop_without_a_body() -> None:
    workflow = definition([start(), loop("rep"), end()], chain("start", "rep", "end"))

    error = rejection(workflow)

    assert_names(error, "rep")
    assert "exactly one LOOP connection" in str(error)


def test_a_body_that_never_leads_back() -> None:
    workflow = definition(
        [start(), loop("rep"), template("body", "x"), end()],
        [connect("start", "rep"), connect("rep", "body", "LOOP"), connect("rep", "end")],
    )

    error = rejection(workflow)

    assert_names(error, "rep")
    assert "never leads back" in str(error)


def test_a_body_entered_from_outside() -> None:
    workflow = looping(
        extra_nodes=(template("side", "s"),),
        extra_edges=(connect("start", "side"), connect("side", "body")),
    )

    error = rejection(workflow)

    assert_names(error, "body")
    assert "entered only through its LOOP connection" in str(error)


def test_a_body_that_leaves_to_an_end() -> None:
    workflow = looping(extra_nodes=(end("early"),), extra_edges=(connect("body", "early"),))

    error = rejection(workflow)

    assert_names(error, "early")
    assert "END cannot be inside the body" in str(error)


def test_a_cycle_outside_a_loop_body_is_still_rejected() -> None:
    workflow = looping(
        extra_nodes=(template("x", "x"), template("y", "y")),
        extra_edges=(connect("after", "x"), connect("x", "y"), connect("y", "x")),
    )

    error = rejection(workflow)

    assert error.node_id in {"x", "y"}
    assert "cycle" in str(error)


def test_a_cycle_through_the_loop_node_but_not_its_body() -> None:
    workflow = looping(extra_edges=(connect("after", "rep"),))

    error = rejection(workflow)

    assert error.node_id in {"rep", "after"}
    assert "cycle" in str(error)


def test_loop_index_outside_a_body() -> None:
    error = rejection(looping(after="{{loop.index}}"))

    assert_names(error, "after")
    assert "only defined inside a LOOP body" in str(error)


def test_an_unknown_loop_field() -> None:
    error = rejection(looping("{{loop.count}}"))

    assert_names(error, "body")
    assert "loop.count" in str(error)


def test_the_body_cannot_read_what_runs_after_the_loop() -> None:
    error = rejection(looping("{{after.text}}"))

    assert_names(error, "body")
    assert "`after`" in str(error)


def test_the_body_cannot_read_its_loop_node() -> None:
    error = rejection(looping("{{rep.iterations}}"))

    assert_names(error, "body")
    assert "`rep`" in str(error)


def test_after_a_loop_a_body_node_that_may_not_run_cannot_be_read() -> None:
    workflow = definition(
        [
            start(),
            loop("rep"),
            condition("check", "{{loop.index}} > 0"),
            template("sometimes", "x"),
            template("after", "{{sometimes.text}}"),
            end(),
        ],
        [
            connect("start", "rep"),
            connect("rep", "check", "LOOP"),
            connect("check", "sometimes", "CONDITIONAL_TRUE"),
            connect("check", "rep", "CONDITIONAL_FALSE"),
            connect("sometimes", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
        ],
    )

    error = rejection(workflow)

    assert_names(error, "after")
    assert "`sometimes`" in str(error)


def test_the_loop_condition_reads_the_loop_and_the_body() -> None:
    validate_definition(looping(loop_config={"condition": "{{body.text}} == {{loop.index}}"}))
    error = rejection(looping(loop_config={"condition": "{{after.text}} == 1"}))

    assert_names(error, "rep")
    assert "`after`" in str(error)


def test_on_error_cannot_jump_out_of_a_body() -> None:
    workflow = definition(
        [
            start(),
            loop("rep"),
            template("body", "x", on_error="after"),
            template("after", "y"),
            end(),
        ],
        [
            connect("start", "rep"),
            connect("rep", "body", "LOOP"),
            connect("body", "rep"),
            connect("rep", "after"),
            connect("after", "end"),
        ],
    )

    error = rejection(workflow)

    assert error.node_id in {"body", "after"}


# API_CALL


def calling(spec: Spec, *, answer: str = "{{call.status_code}}") -> WorkflowDefinition:
    return definition(
        [start(field("name"), field("url")), spec, end(answer=answer)],
        chain("start", "call", "end"),
    )


def test_an_api_call_with_templates_and_a_mapping_passes() -> None:
    validate_definition(
        calling(
            api_call(
                "call",
                "https://api.example.test/users/{{input.name}}",
                method="POST",
                headers={"Authorization": "Bearer {{input.name}}"},
                query={"q": "{{input.name}}", "n": 3},
                body={"user": {"name": "{{input.name}}"}, "tags": ["{{input.url}}"]},
                outputs={"name": "{{response.body.user.name}}", "code": "{{response.status_code}}"},
            ),
            answer="{{call.name}} {{call.body}} {{call.headers}}",
        )
    )


def test_a_url_from_a_reference_is_checked_at_run_time() -> None:
    validate_definition(calling(api_call("call", "{{input.url}}")))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme must be http or https, not 'file'"),
        ("ftp://example.test/{{input.name}}", "not 'ftp'"),
        ("gopher://x", "not 'gopher'"),
        ("example.test/path", "not an absolute http(s) URL"),
        ("http:/example.test", "not an absolute http(s) URL"),
        ("api.example.test/users/{{input.id}}", "not an absolute http(s) URL"),
    ],
)
def test_a_non_http_url(url: str, message: str) -> None:
    error = rejection(calling(api_call("call", url)))

    assert_names(error, "call")
    assert message in str(error)


def test_a_literal_header_value_with_a_line_break() -> None:
    error = rejection(
        calling(api_call("call", "https://x.test", headers={"X-A": "a\r\nX-Injected: 1"}))
    )

    assert_names(error, "call")
    assert "CR, LF" in str(error)


def test_a_bad_header_name() -> None:
    error = rejection(calling(api_call("call", "https://x.test", headers={"Bad Name": "x"})))

    assert_names(error, "call")
    assert "header name" in str(error)


def test_a_mapping_cannot_shadow_a_raw_output() -> None:
    error = rejection(
        calling(api_call("call", "https://x.test", outputs={"body": "{{response.status_code}}"}))
    )

    assert_names(error, "call")
    assert "outputs.body" in str(error)


def test_response_is_only_known_in_the_output_mapping() -> None:
    error = rejection(calling(api_call("call", "https://x.test", body="{{response.body}}")))

    assert_names(error, "call")
    assert "`response`" in str(error)


def test_a_response_field_beyond_the_raw_three_reads_the_json_body() -> None:
    # `response.data` is `response.body.data`: only the response can say whether it exists.
    workflow = calling(api_call("call", "https://x.test", outputs={"x": "{{response.data.id}}"}))

    assert validate_definition(workflow) is workflow


def test_a_reference_to_an_unmapped_api_call_field() -> None:
    error = rejection(calling(api_call("call", "https://x.test"), answer="{{call.name}}"))

    assert_names(error, "end")
    assert "call.name" in str(error)


def test_a_body_reference_is_checked() -> None:
    error = rejection(calling(api_call("call", "https://x.test", body={"a": ["{{ghost.x}}"]})))

    assert_names(error, "call")
    assert "`ghost`" in str(error)


def test_an_unknown_method() -> None:
    error = rejection(calling(api_call("call", "https://x.test", method="BREW")))

    assert_names(error, "call")
    assert "config.method" in str(error)


# LLM


def asking(**config: Any) -> WorkflowDefinition:
    config.setdefault("prompt", "Hello {{input.name}}")
    return definition(
        [
            start(field("name")),
            llm("ask", config.pop("base_url", "http://127.0.0.1:1/v1"), **config),
            end(answer="{{ask.text}} {{ask.usage.total_tokens}}"),
        ],
        chain("start", "ask", "end"),
    )


def test_an_llm_node_passes() -> None:
    validate_definition(asking(credential="openai", temperature=0.2, system="Be brief"))
    validate_definition(
        asking(prompt=None, messages=[{"role": "user", "content": "{{input.name}}"}])
    )


def test_an_llm_needs_a_prompt_or_messages() -> None:
    error = rejection(asking(prompt=None))

    assert_names(error, "ask")
    assert "prompt" in str(error)


def test_an_llm_base_url_cannot_come_from_the_run() -> None:
    error = rejection(asking(base_url="{{input.name}}/v1"))

    assert_names(error, "ask")
    assert "base_url" in str(error)


def test_an_llm_base_url_must_be_http() -> None:
    error = rejection(asking(base_url="unix:///var/run/llm.sock"))

    assert_names(error, "ask")
    assert "scheme" in str(error)


def test_llm_messages_are_checked() -> None:
    error = rejection(asking(prompt="{{input.age}}"))

    assert_names(error, "ask")
    assert "`age`" in str(error)


def test_an_llm_key_and_a_credential_together() -> None:
    error = rejection(asking(api_key="k", credential="openai"))

    assert_names(error, "ask")
    assert "credential" in str(error)


def test_an_llm_cannot_read_the_engine_environment() -> None:
    # The attack of old: `api_key_env: FLOWSTREAM_JWT_SECRET` sent the secret to `base_url`.
    error = rejection(asking(api_key_env="FLOWSTREAM_JWT_SECRET"))

    assert_names(error, "ask")
    assert "api_key_env is not supported" in str(error)
    assert "POST /api/credentials" in str(error)


def test_a_credential_name_is_a_plain_name() -> None:
    error = rejection(asking(credential="../other-user/crm"))

    assert_names(error, "ask")
    assert "credential" in str(error)


def test_a_delay_is_still_just_a_delay() -> None:
    validate_definition(definition([start(), delay("d", 1), end()], chain("start", "d", "end")))
