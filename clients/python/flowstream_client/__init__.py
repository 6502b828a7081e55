"""flowstream's Python client: run workflows and follow their events, over HTTP and SSE."""

from flowstream_client.client import DEFAULT_URL, FlowstreamClient
from flowstream_client.errors import FlowstreamError
from flowstream_client.events import RunEvent
from flowstream_client.stream import ResumePolicy

__all__ = ["DEFAULT_URL", "FlowstreamClient", "FlowstreamError", "ResumePolicy", "RunEvent"]
