"""The entity cache: what a connection records, how it is written, and what loading it gives."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aioesphomeapi.model import DeviceInfo, NumberInfo

from cmdctl.core.model import Command
from cmdctl.device import cache, fleetview
from cmdctl.device.transport import DeviceSession
from cmdctl.simulator import VirtualDevice

from .helpers import ENTITIES, SERVICES, address

INFO = DeviceInfo(
    name="bar-tv-3", esphome_version="2026.10.0", compilation_time="2026-11-23 12:00:00 +0000"
)


def test_written_once_0600_in_a_0700_directory_and_rewritten_only_when_changed(
    tmp_path: Path,
) -> None:
    assert cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES) is True
    path = cache.path_of(tmp_path, "bar-tv-3")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    before = path.read_bytes()
    os.utime(path, (1_000_000, 1_000_000))
    assert cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES) is False
    assert path.read_bytes() == before  # unchanged: only "last confirmed" (the mtime) moves
    assert path.stat().st_mtime > 1_000_000
    assert cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES[:-1], SERVICES) is True
    assert path.read_bytes() != before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_new_firmware_with_the_same_entities_updates_the_header(tmp_path: Path) -> None:
    cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES)
    newer = DeviceInfo(name="bar-tv-3", esphome_version="2026.11.0", compilation_time="later")
    assert cache.save(tmp_path, "bar-tv-3", newer, ENTITIES, SERVICES) is True
    loaded = cache.load(tmp_path, "bar-tv-3")
    assert loaded is not None
    assert (loaded.esphome_version, loaded.compilation_time) == ("2026.11.0", "later")


def test_device_names_are_escaped_into_one_file(tmp_path: Path) -> None:
    path = cache.path_of(tmp_path, "../a/b")
    assert path.parent == tmp_path / "entities"
    cache.save(tmp_path, "../a/b", INFO, ENTITIES, SERVICES)
    assert cache.load(tmp_path, "../a/b") is not None


def test_one_entity_or_action_per_line_and_equal_listings_share_a_hash(tmp_path: Path) -> None:
    cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES)
    cache.save(tmp_path, "bar-tv-4", INFO, ENTITIES, SERVICES)
    cache.save(tmp_path, "bar-tv-5", INFO, ENTITIES[1:], SERVICES)
    text = cache.path_of(tmp_path, "bar-tv-3").read_text()
    assert sum(line.startswith('{"$type": ') for line in text.splitlines()) == len(
        ENTITIES
    ) + len(SERVICES)
    three, four, five = (
        json.loads(cache.path_of(tmp_path, name).read_bytes())
        for name in ("bar-tv-3", "bar-tv-4", "bar-tv-5")
    )
    assert (three["device"], three["counts"]) == (
        "bar-tv-3", {"entities": len(ENTITIES), "actions": len(SERVICES)}
    )
    assert three["hash"] == four["hash"] != five["hash"]
    assert three["entities"] == four["entities"] and len(five["entities"]) == len(ENTITIES) - 1


def test_the_hash_is_the_one_earlier_versions_wrote(tmp_path: Path) -> None:
    # Files written before the body was built by the C encoder carry this hash for this listing;
    # a different one would make every device's file look changed and be rewritten.
    cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES)
    loaded = cache.load(tmp_path, "bar-tv-3")
    assert loaded is not None
    assert loaded.digest == (
        "sha256:c06343076919cdf43deed145cbbaed143cedb700a2926373db272ed749548510"
    )


@pytest.mark.parametrize(
    ("field", "first", "then", "written"),
    [("min_value", 0.0, -0.0, "-0.0"), ("disabled_by_default", 1, True, "true")],
)
def test_listings_equal_by_value_but_not_in_form_are_each_written_as_they_are(
    tmp_path: Path, field: str, first: object, then: object, written: str
) -> None:
    # 0.0 == -0.0 and 1 == True: a body built for one must not stand for the other.
    def listing(value: object) -> list[NumberInfo]:
        return [NumberInfo(object_id="volume", key=3, name="Volume", **{field: value})]

    cache.save(tmp_path, "a", INFO, listing(first), [])
    cache.save(tmp_path, "b", INFO, listing(then), [])
    a, b = (json.loads(cache.path_of(tmp_path, n).read_bytes()) for n in ("a", "b"))
    assert a["hash"] != b["hash"]
    assert json.dumps(b["entities"][0][field]) == written


@pytest.mark.parametrize(
    ("text", "words"),
    [("{not json", "damaged"), ('{"format": 99}', "format 99"), ("[]", "not a cache file")],
)
def test_an_unreadable_cache_says_why(tmp_path: Path, text: str, words: str) -> None:
    path = cache.path_of(tmp_path, "tv")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(cache.CacheUnreadable, match=words):
        cache.load(tmp_path, "tv")
    assert cache.summary(tmp_path, "tv") is None


def test_no_cache_is_none(tmp_path: Path) -> None:
    assert cache.load(tmp_path, "tv") is None
    assert cache.summary(tmp_path, "tv") is None


def test_checking_against_the_cache_never_imports_the_client(tmp_path: Path) -> None:
    cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cmdctl.core.model import Command\n"
        "from cmdctl.device import cache\n"
        f"c = cache.load(Path({str(tmp_path)!r}), 'bar-tv-3')\n"
        "index = c.index()\n"
        "print(cache.check(index, Command('select', 'input', {'option': 'HDMI 9'}))[0].reason)\n"
        "print(cache.check(index, Command('light', 'backlight', {'rgb': [1, 0, 0]})))\n"
        "print('aioesphomeapi' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    refusal, light, imported = out.stdout.strip().splitlines()
    assert refusal.startswith("select.input has no option 'HDMI 9'")
    assert light == "None"
    assert imported == "False"


def test_check_tells_a_missing_entity_from_a_bad_value(tmp_path: Path) -> None:
    cache.save(tmp_path, "bar-tv-3", INFO, ENTITIES, SERVICES)
    loaded = cache.load(tmp_path, "bar-tv-3")
    assert loaded is not None
    index = loaded.index()
    missing = cache.check(index, Command("switch", "tv_powr", {"state": True}))
    assert missing is not None and missing[1] is False
    assert "did you mean switch.tv_power?" in missing[0].reason
    bad = cache.check(index, Command("number", "volume", {"value": 250}))
    assert bad is not None and bad[1] is True
    assert cache.check(index, Command("number", "volume", {"value": 25})) is None


async def test_a_session_records_the_listing_once_per_process(
    home: VirtualDevice, tmp_path: Path
) -> None:
    cache.use(tmp_path)
    try:
        async with DeviceSession(address(home)) as session:
            live = session.index
            info = session.info
        await cache.flush()
        path = cache.path_of(tmp_path, "home")
        first = path.stat()
        data = json.loads(path.read_text())
        assert data["format"] == cache.FORMAT
        assert data["firmware"]["compilation_time"] == home.spec.compilation_time
        loaded = cache.load(tmp_path, "home")
        assert loaded is not None
        assert loaded.sub_devices == live.sub_devices
        assert loaded.index().rows() == live.rows()
        # `devices entities --cached` shows what the live listing shows, without states.
        assert cache.listing(loaded) == fleetview.describe("home", info, live, {})
        os.utime(path, (1_000_000, 1_000_000))
        async with DeviceSession(address(home)):
            pass
        await cache.flush()
        assert path.stat().st_mtime == 1_000_000  # same firmware, same process: not even read
        assert path.stat().st_ino == first.st_ino
    finally:
        cache.use(None)
