"""Project-wide test setup: the real-firmware lane's fixtures are available to every directory."""

pytest_plugins = ["tests.firmware.plugin"]
