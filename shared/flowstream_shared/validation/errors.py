"""The one error validation raises: it names the node when there is one."""

from __future__ import annotations


class DefinitionError(ValueError):
    def __init__(self, message: str, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(f"node `{node_id}`: {message}" if node_id else message)
