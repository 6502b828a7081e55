"""Workflows as OpenAI-compatible models (`/v1/chat/completions`, `/v1/responses`).

Thin: pick the workflow and its inputs, start the run through `RunService.start`, then hand the
run's events to the translation layer (`flowstream_gateway.openai_compat`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from flowstream_shared.commands import ResponseMode

from flowstream_gateway.auth import CurrentPrincipal
from flowstream_gateway.errors import ApiError
from flowstream_gateway.hub import Signal, StreamedEvent
from flowstream_gateway.openai_compat.chat import ChatChunks, chat_completion
from flowstream_gateway.openai_compat.errors import OpenAIRoute, openai_error
from flowstream_gateway.openai_compat.inputs import run_inputs, workflow_for_model
from flowstream_gateway.openai_compat.reading import RunReading
from flowstream_gateway.openai_compat.requests import (
    ChatCompletionRequest,
    Conversation,
    ResponsesRequest,
    chat_conversation,
    responses_conversation,
)
from flowstream_gateway.openai_compat.responses import ResponseEvents, response_object
from flowstream_gateway.openai_compat.stream import LOST_MESSAGE, StreamWriter, TranslatedRunStream
from flowstream_gateway.runs import RunHandle, Submit
from flowstream_gateway.services import Services, ServicesDep

router = APIRouter(prefix="/v1", tags=["openai compatible"], route_class=OpenAIRoute)

# Cancels scheduled from a closing stream; held so they are not garbage-collected mid-flight.
_background: set[asyncio.Task[None]] = set()
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, "text/event-stream": {}},
        "description": "The answer object, or with `stream: true` its Server-Sent Events",
    }
}


async def _start(
    principal: CurrentPrincipal,
    services: Services,
    model: str,
    conversation: Conversation,
    extra: dict[str, Any],
    stream: bool,
    user: str | None,
    priority: int | None = None,
    use_cache: bool = True,
) -> RunHandle:
    workflow = await workflow_for_model(principal, services, model)
    workflow.require_runnable()
    inputs = run_inputs(workflow.definition, conversation, extra)
    mode = ResponseMode.STREAMING if stream else ResponseMode.BLOCKING
    handle = await services.runs.start(
        principal.user_id,
        workflow,
        inputs,
        Submit(
            mode,
            end_user=user,
            priority=priority,
            app_key=principal.key_id,
            use_cache=use_cache,
        ),
    )
    services.metrics.runs_submitted.labels("openai", mode.value).inc()
    return handle


def _cancel_later(services: Services, run_id: str, reason: str) -> None:
    task = asyncio.get_running_loop().create_task(services.runs.cancel(run_id, reason))
    _background.add(task)
    task.add_done_callback(_background.discard)


def _streamed(handle: RunHandle, writer: StreamWriter, services: Services) -> Response:
    return TranslatedRunStream(
        handle,
        writer,
        services.settings.sse_keepalive_s,
        lambda run_id, reason: _cancel_later(services, run_id, reason),
    )


async def _read_to_end(handle: RunHandle, services: Services) -> RunReading | None:
    """Every event of the run until it finishes (None: lost past its deadline)."""
    reading = RunReading(handle.run_id)
    timer = handle.arm_deadline()
    try:
        while True:
            item = await handle.feed.queue.get()
            if item is Signal.LOST:
                _cancel_later(services, handle.run_id, LOST_MESSAGE)
                return None
            if item is Signal.SHUTDOWN:
                raise ApiError(
                    503,
                    "service_unavailable",
                    f"this gateway is restarting; run {handle.run_id} goes on",
                    {"Retry-After": "1"},
                )
            if isinstance(item, StreamedEvent):
                reading.take(item.event, item.payload)
                if item.is_final:
                    return reading
    finally:
        timer.cancel()
        handle.close()


async def _blocking(handle: RunHandle, services: Services) -> RunReading | JSONResponse:
    reading = await _read_to_end(handle, services)
    if reading is None:
        return openai_error(504, "timeout", LOST_MESSAGE)
    if not reading.succeeded:
        code, message = reading.failure()
        return openai_error(500, code, message)
    return reading


@router.post("/chat/completions", responses=_RESPONSES, summary="Run a workflow as a chat model")
async def chat_completions(
    body: ChatCompletionRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    handle = await _start(
        principal,
        services,
        body.model,
        chat_conversation(body),
        body.inputs,
        body.stream,
        body.user,
        body.priority,
        body.cache,
    )
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        writer = ChatChunks(RunReading(handle.run_id), body.model, include_usage)
        return _streamed(handle, writer, services)
    answer = await _blocking(handle, services)
    if isinstance(answer, JSONResponse):
        return answer
    return JSONResponse(
        chat_completion(answer, body.model), headers={"x-flowstream-run-id": handle.run_id}
    )


@router.post("/responses", responses=_RESPONSES, summary="Run a workflow as a Responses model")
async def responses(
    body: ResponsesRequest, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    handle = await _start(
        principal,
        services,
        body.model,
        responses_conversation(body),
        body.inputs,
        body.stream,
        body.user,
        body.priority,
        body.cache,
    )
    if body.stream:
        writer = ResponseEvents(RunReading(handle.run_id), body.model, body.instructions)
        return _streamed(handle, writer, services)
    answer = await _blocking(handle, services)
    if isinstance(answer, JSONResponse):
        return answer
    return JSONResponse(
        response_object(answer, body.model, body.instructions),
        headers={"x-flowstream-run-id": handle.run_id},
    )
