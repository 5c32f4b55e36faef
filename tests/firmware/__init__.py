"""Real-firmware test lane: ESPHome host-platform builds of the bar-TV device."""
