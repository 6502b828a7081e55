"""Rendering templates for nodes: inline when light, in render processes otherwise.

`renderer` is the engine's side; `child` is the render process, which imports only `protocol` and
the shared expression code (this package imports nothing itself, so the process starts fast).
"""
