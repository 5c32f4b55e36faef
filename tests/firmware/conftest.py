"""The real-firmware lane; its fixtures come from tests/firmware/plugin.py via tests/conftest.py."""
