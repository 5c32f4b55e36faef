"""cmdctl: send commands to fleets of ESPHome devices, with a durable journal."""

from cmdctl.core.version import __version__

__all__ = ["__version__"]
