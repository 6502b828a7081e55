"""LLM: one node type over three wire protocols (Chat Completions, Responses, Anthropic Messages).

`node` runs the call; each protocol module builds its request and folds its answer into the
shared `answer.Answer`; `auth` is the one place a secret touches a request.
"""

from flowstream_engine.nodes.llm.node import PROTOCOLS, LlmNode

__all__ = ["PROTOCOLS", "LlmNode"]
