"""Streaming execution (`/api/workflow/{id}/execute`): the seed API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from flowstream_shared.commands import ResponseMode
from pydantic import Field

from flowstream_gateway.auth import CurrentPrincipal, Principal
from flowstream_gateway.runs import IdempotencyKey, Submit
from flowstream_gateway.services import Services, ServicesDep
from flowstream_gateway.streaming import OnDisconnect, api_framing, block_on_run, stream_run
from flowstream_gateway.submission import RunOptions, accepted, checked_inputs

router = APIRouter(prefix="/api/workflow", tags=["execution"])

SSE_DESCRIPTION = (
    "`text/event-stream`: one `id: <cursor>` + `data: <event JSON>` frame per event, then "
    "`data: [DONE]`. The cursor is usable as `Last-Event-ID`."
)


class ExecuteRequest(RunOptions):
    """`config.async` (when given) wins over `response_mode`: true answers `202` with the
    execution at once, false waits and answers the result."""

    response_mode: ResponseMode = ResponseMode.STREAMING
    on_disconnect: OnDisconnect = Field(
        default="cancel", description="`cancel` stops the run when the client goes away"
    )


async def _execute(
    workflow_id: str,
    body: ExecuteRequest,
    principal: Principal,
    services: Services,
    mode: ResponseMode,
    idempotency_key: str | None,
) -> Response:
    principal.require_workflow(workflow_id)
    workflow = await services.workflows.get(principal.user_id, workflow_id, body.version)
    inputs = checked_inputs(workflow, body)
    if body.run_async is not None:
        mode = ResponseMode.BLOCKING
    streaming = mode == ResponseMode.STREAMING
    ticket = services.open_stream(principal.user_id, principal.key_id) if streaming else None
    try:
        handle = await services.runs.start(
            principal.user_id,
            workflow,
            inputs,
            Submit(
                mode,
                follow=body.run_async is not True,
                execution_name=body.execution_name,
                idempotency_key=idempotency_key,
                run_timeout=body.timeout,
                debug=body.debug,
                priority=body.priority,
                app_key=principal.key_id,
                use_cache=body.cache,
            ),
        )
    except BaseException:
        if ticket is not None:
            ticket.release()
        raise
    services.metrics.runs_submitted.labels("api", "async" if body.run_async else mode.value).inc()
    if body.run_async:
        return JSONResponse(
            accepted(handle, workflow, inputs, body.execution_name), status_code=202
        )
    if not streaming:
        return await block_on_run(handle, services.runs)
    return stream_run(
        handle,
        services.runs,
        api_framing(services.settings),
        body.on_disconnect,
        ticket,
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": SSE_DESCRIPTION},
    202: {"description": "`config.async: true`: the execution, started"},
}


@router.post("/{workflow_id}/execute", responses=_RESPONSES, summary="Run a workflow")
async def execute(
    workflow_id: str,
    body: ExecuteRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _execute(
        workflow_id, body, principal, services, body.response_mode, idempotency_key
    )


@router.post(
    "/{workflow_id}/execute/stream", responses=_RESPONSES, summary="Run a workflow, streaming"
)
async def execute_stream(
    workflow_id: str,
    body: ExecuteRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _execute(
        workflow_id, body, principal, services, ResponseMode.STREAMING, idempotency_key
    )
