"""Which workflow a `model` names, and the START inputs a conversation becomes.

The last user message goes to the input named by the workflow's `config.openai_input`, else
`query`, else the only required text input. The whole conversation goes to an input named
`messages` when START declares one: as a list of `{role, content}` for an `array` input, as a
`role: content` transcript for a text input.
"""

from __future__ import annotations

from typing import Any

from flowstream_shared.inputs import InputError, input_declarations, validate_inputs
from flowstream_shared.workflow import InputDeclaration, WorkflowDefinition

from flowstream_gateway.auth import Principal
from flowstream_gateway.errors import ApiError, invalid_param
from flowstream_gateway.openai_compat.requests import Conversation
from flowstream_gateway.services import Services
from flowstream_gateway.workflows import WorkflowRecord

_TEXT_TYPES = frozenset({"string", "text-input", "paragraph"})


async def workflow_for_model(
    principal: Principal, services: Services, model: str
) -> WorkflowRecord:
    """An app key runs its own workflow whatever `model` says; a user token names one of the
    user's workflows by id or, failing that, by exact name."""
    if principal.workflow_id is not None:
        return await services.workflows.get(principal.user_id, principal.workflow_id)
    try:
        return await services.workflows.get(principal.user_id, model)
    except ApiError as exc:
        if exc.status != 404:
            raise
    named = [
        record
        for record in services.workflows.search(principal.user_id, None, None)
        if record.definition.name == model
    ]
    if len(named) > 1:
        raise invalid_param(f"model: {len(named)} workflows are named {model!r}; use the id")
    if not named:
        raise ApiError(404, "model_not_found", f"The model `{model}` does not exist")
    return named[0]


def query_input(definition: WorkflowDefinition, declarations: list[InputDeclaration]) -> str:
    names = {decl.name for decl in declarations}
    chosen = definition.config.openai_input
    if chosen is not None:
        if chosen not in names:
            raise invalid_param(
                f"config.openai_input names `{chosen}`, which START does not declare"
            )
        return chosen
    if "query" in names:
        return "query"
    required = [d.name for d in declarations if d.required and d.type in _TEXT_TYPES]
    if len(required) == 1:
        return required[0]
    raise invalid_param(
        "the workflow has no input for the user message: declare a START input named `query` "
        "or set config.openai_input"
    )


def run_inputs(
    definition: WorkflowDefinition, conversation: Conversation, extra: dict[str, Any]
) -> dict[str, Any]:
    declarations = input_declarations(definition)
    target = query_input(definition, declarations)
    inputs = dict(extra)
    inputs[target] = conversation.last_user
    for decl in declarations:
        if decl.name == "messages" and target != "messages":
            inputs["messages"] = (
                conversation.messages
                if decl.type == "array"
                else "\n".join(f"{m['role']}: {m['content']}" for m in conversation.messages)
            )
    try:
        return validate_inputs(declarations, inputs)
    except InputError as exc:
        raise invalid_param(str(exc)) from exc
