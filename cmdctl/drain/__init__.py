"""Orchestration over the journal and the devices: which entries are due, one job per device,
bounded fan-out, retries and backoff, crash recovery, batch gates, coalescing, rollouts, direct
sends, totals and metrics.

Imports `journal`, `device` and `core`; never the inputs, the simulator or the CLI, and never
prints (observers receive results; the CLI renders them).
"""
