"""The chaos suite: the services as processes on real NATS, faults injected under load, and the
promises of a run (ends once, gap-free, finished work never redone) checked afterwards.

`make chaos` (or `python -m chaos [scenario ...]`); see docs/chaos.md.
"""
