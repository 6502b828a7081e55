"""The `flowstream` command line: run workflows with live progress, inspect and steer runs,
push and pull definitions. `FLOWSTREAM_URL` and `FLOWSTREAM_TOKEN` configure it; flags win."""

from flowstream_client.cli.app import app, main

__all__ = ["app", "main"]
