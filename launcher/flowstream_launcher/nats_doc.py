"""`python -m flowstream_launcher.nats_doc <doc> <conf>`: refresh what is generated from the NATS
permissions: the table in docs/nats.md and deploy/nats/flowstream-auth.conf."""

from __future__ import annotations

import sys
from pathlib import Path

from flowstream_shared.nats_access import permissions_table

from flowstream_launcher.nats_auth import render_deployed_authorization

START, END = "<!-- permissions:start -->\n", "<!-- permissions:end -->"


def refresh(text: str) -> str:
    head, rest = text.split(START, 1)
    return head + START + permissions_table() + END + rest.split(END, 1)[1]


if __name__ == "__main__":
    doc, conf = Path(sys.argv[1]), Path(sys.argv[2])
    doc.write_text(refresh(doc.read_text()))
    conf.write_text(render_deployed_authorization())
