"""Relating mDNS announcements to inventory devices (no network: announcements built here)."""

from __future__ import annotations

import asyncio

from cmdctl.device.discovery import (
    Announcement,
    Encryption,
    KnownDevice,
    Status,
    lookup_hosts,
    relate,
)

MAC = "a0b765010203"


def ann(
    name: str = "bar-tv-1", address: str = "10.0.0.5", port: int = 6053, **txt: str
) -> Announcement:
    return Announcement(name, f"{name}.local", (address,), port, {"mac": MAC, **txt})


def test_fields_come_from_the_txt_records_firmware_sends() -> None:
    a = ann(
        friendly_name="Bar TV 1",
        version="2026.10.0",
        platform="ESP32",
        board="esp32dev",
        network="wifi",
        api_encryption="Noise_NNpsk0_25519_ChaChaPoly_SHA256",
    )
    assert (a.friendly_name, a.version, a.platform, a.board, a.network, a.mac) == (
        "Bar TV 1",
        "2026.10.0",
        "ESP32",
        "esp32dev",
        "wifi",
        MAC,
    )
    assert a.encryption is Encryption.REQUIRED
    assert ann(api_encryption_supported="Noise_NNpsk0_25519_ChaChaPoly_SHA256").encryption is (
        Encryption.SUPPORTED
    )
    assert ann().encryption is Encryption.NONE
    assert ann(mac="not-a-mac").mac is None
    assert Announcement("x", "x.local", (), 6053).address == "x.local"


def test_known_moved_and_new() -> None:
    known = [
        KnownDevice("bar-tv-1", "10.0.0.5", 6053),
        KnownDevice("bar-tv-2", "10.0.0.6", 6053),
        KnownDevice("bar-tv-3", "10.0.0.7", 6053),
    ]
    found = [
        ann("bar-tv-1"),
        ann("bar-tv-2", "10.0.0.99"),
        ann("bar-tv-3", "10.0.0.7", 7000),
        ann("patio", "10.0.0.8"),
    ]
    rel = {r.found.name: r for r in relate(found, known)}
    assert rel["bar-tv-1"].status is Status.KNOWN
    assert (rel["bar-tv-2"].status, rel["bar-tv-2"].host, rel["bar-tv-2"].port) == (
        Status.MOVED,
        "10.0.0.99",
        None,
    )
    assert (rel["bar-tv-3"].status, rel["bar-tv-3"].host, rel["bar-tv-3"].port) == (
        Status.MOVED,
        None,
        7000,
    )
    assert rel["patio"].status is Status.NEW and rel["patio"].device is None


def test_evidence_order_mac_then_expected_name_then_name_then_address() -> None:
    known = [
        KnownDevice("lobby", "10.0.0.5", 6053),  # same address, other name
        KnownDevice("bar-tv-1", "10.0.0.9", 6053),  # same name
        KnownDevice("tv-a", "10.0.0.9", 6053, expected_name="bar-tv-1"),
        KnownDevice("tv-b", "10.0.0.9", 6053, expected_mac=MAC),
    ]
    [r] = relate([ann()], known)
    assert (r.device and r.device.name, r.matched_by) == ("tv-b", "mac")
    [r] = relate([ann()], known[:3])
    assert (r.device and r.device.name, r.matched_by) == ("tv-a", "expected_name")
    [r] = relate([ann()], known[:2])
    assert (r.device and r.device.name, r.matched_by) == ("bar-tv-1", "name")
    [r] = relate([ann()], known[:1])
    assert (r.device and r.device.name, r.matched_by, r.status) == (
        "lobby",
        "address",
        Status.KNOWN,
    )


def test_a_contradicting_expected_mac_or_name_never_matches() -> None:
    other_mac = KnownDevice("bar-tv-1", "10.0.0.5", 6053, expected_mac="ffffffffffff")
    other_name = KnownDevice("lobby", "10.0.0.5", 6053, expected_name="kitchen")
    [r] = relate([ann()], [other_mac, other_name])
    assert r.status is Status.NEW


def test_each_inventory_device_matches_once() -> None:
    known = [KnownDevice("lobby", "10.0.0.5", 6053)]
    first, second = relate([ann("a"), ann("b")], known)
    assert first.status is Status.KNOWN and second.status is Status.NEW


def test_mdns_and_dns_host_names() -> None:
    by_mdns = KnownDevice("bar-tv-1", "Bar-TV-1.local.", 6053)
    [r] = relate([ann(address="10.0.0.77")], [by_mdns])
    assert r.status is Status.KNOWN  # `.local` follows the device wherever DHCP puts it
    by_dns = KnownDevice("bar-tv-1", "tv1.example", 6053)
    [r] = relate([ann()], [by_dns], {"tv1.example": ("10.0.0.5",)})
    assert r.status is Status.KNOWN
    [r] = relate([ann()], [by_dns], {"tv1.example": ("10.0.0.4",)})
    assert (r.status, r.host) == (Status.MOVED, "10.0.0.5")


def test_lookup_hosts_skips_ips_and_mdns_names() -> None:
    got = asyncio.run(lookup_hosts(["10.0.0.1", "x.local", "localhost", "::1"]))
    assert set(got) == {"localhost"}
    assert "127.0.0.1" in got["localhost"] or "::1" in got["localhost"]
