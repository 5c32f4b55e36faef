"""The TXT records `simulate --mdns` announces, against ESPHome's mdns component (no network)."""

from __future__ import annotations

from cmdctl.simulator import DeviceSpec, VirtualDevice
from cmdctl.simulator.mdns import announced_address, txt_records

KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def test_txt_keys_and_order_follow_firmware() -> None:
    spec = DeviceSpec("bar-tv-1", friendly_name="Bar TV 1", mac="A0:B7:65:01:02:03", psk=KEY)
    txt = txt_records(VirtualDevice(spec))
    # mdns_component.cpp compile_records_(): this order, for a Wi-Fi ESP32 with a key set
    assert list(txt) == [
        "friendly_name",
        "version",
        "config_hash",
        "mac",
        "platform",
        "board",
        "network",
        "api_encryption",
    ]
    assert txt["mac"] == "a0b765010203"  # get_mac_address_into_buffer: lower case, no colons
    assert txt["api_encryption"] == "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
    assert (txt["version"], txt["platform"], txt["board"], txt["network"]) == (
        "2026.10.0",
        "ESP32",
        "esp32dev",
        "wifi",
    )
    assert len(txt["config_hash"]) == 8 and int(txt["config_hash"], 16) >= 0


def test_plaintext_device_sends_no_encryption_key_and_no_empty_friendly_name() -> None:
    txt = txt_records(VirtualDevice(DeviceSpec("plain", friendly_name="")))
    assert "api_encryption" not in txt and "api_encryption_supported" not in txt
    assert "friendly_name" not in txt


def test_announced_address() -> None:
    assert announced_address("127.0.0.2") == "127.0.0.2"
    assert announced_address("0.0.0.0") == "127.0.0.1"
    assert announced_address("localhost") == "127.0.0.1"
