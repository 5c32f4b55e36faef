"""The wire: one device, one session. Talking to a device with the real aioesphomeapi client,
validating a command against the entities it exposes, what "done" looks like, classifying
failures as retryable or not (in one place), and fleet-wide live views.

Imports `core` only; never the journal, the inputs, the drain or the simulator, and never prints.
"""
