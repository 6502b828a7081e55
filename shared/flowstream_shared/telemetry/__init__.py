"""What every process does the same way to be observed: its log format, its trace context in NATS
headers, its standard metric collectors (docs/operations.md).

Services build their own metrics and spans; this package only fixes the conventions they share,
so a line, a span or a series reads the same whichever process wrote it.
"""
