"""Workflows as OpenAI-compatible models: `POST /v1/chat/completions` and `POST /v1/responses`.

A pure translation layer. `requests` reads the OpenAI request bodies into a conversation,
`inputs` turns it into a workflow's START inputs, `reading` folds the run's events into what an
answer needs, `chat` and `responses` write those as each API's chunks, events and objects, and
`stream` sends them as Server-Sent Events. The route (`routes/openai_compat.py`) only wires them.
"""
