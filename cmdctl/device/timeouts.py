"""The named timeouts of a device session, apart from the session itself: a drain's options
take their defaults from here without importing the client (a cron drain with nothing to do
never connects)."""

# TCP connect + Noise handshake + Hello take 0.1–1.2 s on healthy Wi-Fi; a batch tool fails fast
# and lets the drain retry later rather than wait out the client's 30–60 s defaults.
CONNECT_TIMEOUT = 5.0
# Device info + the entity list: big configs take seconds to list (aioesphomeapi#234).
DISCOVER_TIMEOUT = 10.0
# One device_info round trip after the sends; longer means the device is struggling.
BARRIER_TIMEOUT = 5.0
# State pushes follow a command at once (or on the firmware's 100 ms batch delay); lights and fans
# settle well within this. Covers take longer and end "delivered, still moving" instead.
VERIFY_TIMEOUT = 3.0
# An action with a response runs user code on the device before it answers.
ACTION_TIMEOUT = 10.0
# Whole device job (connect + a batch) when the inventory gives no `timeout:`.
DEFAULT_JOB_TIMEOUT = 30.0
