"""Rendering templates for nodes: inline when light, in render processes otherwise."""

from flowstream_engine.render.renderer import Renderer, close_shared_renderer, shared_renderer

__all__ = ["Renderer", "close_shared_renderer", "shared_renderer"]
