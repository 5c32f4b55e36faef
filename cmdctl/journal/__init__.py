"""The disk: the journal's events and their line framing, the durable append, the fold of events
into entries (`ledger`), snapshots and deltas, compaction, claims, the recorder that writes a
drain's outcomes, summaries and queue operations.

Imports `core` only; never the device wing, the inputs, the drain or the simulator, and never
prints. Every byte it writes goes through `core.durable`, the one durable-write helper.
"""
