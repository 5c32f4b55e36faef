"""cmdctl: send commands to fleets of ESPHome devices, with a durable journal."""

__version__ = "0.1.0"
