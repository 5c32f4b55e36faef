"""Device specs from YAML blocks and files (located errors), and the venue template."""

from __future__ import annotations

import asyncio
import base64
import re
import textwrap
from pathlib import Path

import pytest
from aioesphomeapi.object_id import compute_object_id

from cmdctl.cli.simspec import load_spec_file, spec_from_block
from cmdctl.core.errors import InputError
from cmdctl.core.model import Command
from cmdctl.device.transport import DeviceSession
from cmdctl.inputs.inventory import load_inventory
from cmdctl.inputs.yamlsrc import MapNode, load_text
from cmdctl.simulator import DeviceSpec, Fleet, VirtualDevice, venue, write_inventory
from cmdctl.simulator.naming import fnv1, object_id_of

KEY = base64.b64encode(bytes(range(32))).decode()


def _block(text: str | None) -> DeviceSpec:
    """The spec of device patio-tv whose `simulate:` block is `text` (in devices.yml)."""
    root = None if text is None else load_text(textwrap.dedent(text), "devices.yml")
    assert root is None or isinstance(root, MapNode)
    return spec_from_block(
        "patio-tv", host="127.0.0.1", port=0, psk=KEY, block=root, source="devices.yml"
    )


def test_fnv1_and_object_id_match_firmware() -> None:
    # the doc's worked example: name "Relay 1" -> object_id relay_1 -> key 1878979320
    assert object_id_of("Relay 1") == "relay_1"
    assert fnv1(object_id_of("Relay 1")) == 1878979320
    assert object_id_of("TV Power") == "tv_power"
    for name in ("Ünïcode & Co.", "A-b_C 9", ""):
        assert object_id_of(name) == compute_object_id(name)


def test_full_block() -> None:
    spec = _block(
        """
        template: tv
        friendly_name: Patio TV
        mac: a0:b7:65:01:02:03
        esphome_version: 2026.10    # the text, not YAML's float 2026.1
        api_minor: 10
        batch_delay: 100ms
        seed: 4
        max_connections: 2
        sub_devices: [{id: 3, name: Remote}]
        entities:
          - {type: fan, name: Fan, speed_count: 5, preset_modes: [Eco]}
          - {type: switch, name: Relay, device_id: 3, initial: true}
          - {type: number, name: Level, min: -5, max: 5.5, step: 0.5}
        actions:
          - {name: ping, args: {ids: "int[]"}, response: only, returns: {pong: true}}
        faults:
          latency: 20ms
          jitter: 0.01
          drop_after: 5
          reboot: {after: 1m, down: 2s}
          flapping: {up: 5s, down: 1s}
          wrong_key: true
          reject_reset: 0.5
        """
    )
    assert spec.faults.reject_reset == 0.5
    assert "reject reset p=0.5" in spec.faults.describe()
    assert spec.mac == "A0:B7:65:01:02:03"
    assert spec.batch_delay == pytest.approx(0.1)
    assert (spec.api_minor, spec.seed, spec.max_connections) == (10, 4, 2)
    assert spec.esphome_version == "2026.10" and spec.source == "devices.yml"
    assert [e.selector for e in spec.entities][-4:] == [
        "light.backlight",
        "fan.fan",
        "switch.relay",
        "number.level",
    ]
    level = spec.entities[-1]
    assert (level.min_value, level.max_value, level.step) == (-5.0, 5.5, 0.5)
    assert spec.entities[-3].preset_modes == ("Eco",) and spec.entities[-3].speed_count == 5
    assert spec.entities[-2].device_id == 3 and spec.entities[-2].initial is True
    ping = spec.actions[-1]
    assert ping.args[0].type == "int[]" and ping.returns == '{"pong": true}'
    f = spec.faults
    assert (f.latency, f.jitter, f.drop_after, f.reboot_after, f.reboot_down) == pytest.approx(
        (0.02, 0.01, 5, 60.0, 2.0)
    )
    assert (f.flap_up, f.flap_down, f.wrong_key) == (5.0, 1.0, True)
    assert spec.psk == KEY and spec.device_psk != KEY
    assert KEY not in repr(spec)


def test_template_alone_gives_the_tv() -> None:
    spec = _block("template: tv\n")
    assert {e.selector for e in spec.entities} >= {"switch.tv_power", "light.backlight"}
    assert _block(None).entities == ()


async def test_a_binary_sensor_follows_its_switch_after_the_lag(tmp_path: Path) -> None:
    spec = _block("""\
        template: tv
        entities:
          - {type: binary_sensor, name: TV On, follows: switch.tv_power, lag: 300ms}
        """)
    sensor = spec.entities[-1]
    assert (sensor.selector, sensor.follows, sensor.lag) == (
        "binary_sensor.tv_on",
        "switch.tv_power",
        0.3,
    )
    async with Fleet([spec]) as fleet:
        write_inventory(fleet.devices, tmp_path / "devices.yml")
        (device,) = load_inventory(tmp_path / "devices.yml").devices
        (dev,) = fleet.devices
        async with DeviceSession(device) as session:
            await session.execute(Command("switch", "tv_power", {"state": True}))
            assert dev.state_of("binary_sensor.tv_on") is False  # not yet: 300ms later
            await asyncio.sleep(0.5)
        assert dev.state_of("binary_sensor.tv_on") is True


def test_a_binary_sensor_must_follow_an_entity_of_its_device() -> None:
    spec = _block("entities: [{type: binary_sensor, name: Is On, follows: switch.nothing}]\n")
    with pytest.raises(InputError, match=r"follows .switch\.nothing., which the device does not"):
        VirtualDevice(spec)


_DURATION_HINT = "write a duration like 200ms, 30s, 10m, 2h, 7d or 1h30m"
_RENAME_HINT = "names differing only in case, spaces or punctuation collide; rename one"


@pytest.mark.parametrize(
    ("block", "where", "message", "hint"),
    [
        (
            "colour: red",
            (1, 1),
            "unknown key 'colour' in simulate of patio-tv",
            "known keys: template, friendly_name, mac, esphome_version, api_minor,"
            " max_connections, batch_delay, seed, model, manufacturer, platform, sub_devices,"
            " entities, actions, faults",
        ),
        (
            "templat: tv",
            (1, 1),
            "unknown key 'templat' in simulate of patio-tv",
            "did you mean 'template'?",
        ),
        ("template: radio", (1, 11), "unknown template 'radio'", "one of: tv"),
        (
            "mac: nope",
            (1, 6),
            "mac 'nope' is not a MAC address",
            "write six hex pairs, like A0:B7:65:01:02:03",
        ),
        ("batch_delay: soon", (1, 14), "batch_delay: bad duration 'soon'", _DURATION_HINT),
        (
            "batch_delay: -1",
            (1, 14),
            "batch_delay: bad duration '-1'",
            _DURATION_HINT,
        ),
        ("max_connections: 0", (1, 18), "max_connections must be between 1 and 20, not 0", None),
        ("api_minor: 1.5", (1, 12), "api_minor must be a whole number, not '1.5'", None),
        ("friendly_name: [a]", (1, 16), "friendly_name must be a single value, not a list", None),
        (
            "entities:\n  - {type: toaster, name: T}",
            (2, 12),
            "unknown entity type 'toaster'",
            "one of: switch, light, number, select, button, text, cover, fan, lock, valve,"
            " media_player, climate, binary_sensor",
        ),
        (
            "entities:\n  - {type: swich, name: T}",
            (2, 12),
            "unknown entity type 'swich'",
            "did you mean 'switch'?",
        ),
        (
            "entities:\n  - {type: switch}",
            (2, 5),
            "an entity needs a name",
            "for example {type: switch, name: TV Power}",
        ),
        (
            "entities:\n  - {name: S}",
            (2, 5),
            "an entity needs a type",
            "for example {type: switch, name: TV Power}",
        ),
        (
            "entities:\n  - {type: switch, name: S, options: [a]}",
            (2, 29),
            "unknown key 'options' in a switch entity",
            "known keys: type, name, device_id, icon, disabled_by_default, initial",
        ),
        (
            "entities:\n  - {type: select, name: S, options: [a], initial: b}",
            (2, 5),
            "select 'S': initial 'b' is not one of the options",
            None,
        ),
        (
            "entities:\n  - {type: select, name: S, options: a}",
            (2, 38),
            "options must be a list, not 'a'",
            None,
        ),
        (
            "entities:\n  - {type: number, name: N, min: low}",
            (2, 34),
            "min must be a number, not 'low'",
            None,
        ),
        (
            "entities:\n  - {type: switch, name: S, initial: {a: 1}}",
            (2, 38),
            "initial must be a single value or a list, not a mapping",
            None,
        ),
        (
            "entities:\n  - {type: switch, name: A b}\n  - {type: switch, name: a B}",
            (3, 5),
            "entity 'a B' has the same object_id (a_b) as one at line 2",
            _RENAME_HINT,
        ),
        (
            "template: tv\nentities:\n  - {type: switch, name: TV power}",
            (3, 5),
            "entity 'TV power' has the same object_id (tv_power) as one of the template",
            _RENAME_HINT,
        ),
        (
            "entities:\n  - {type: switch, name: S, device_id: 9}",
            (2, 40),
            "device_id 9 is not in sub_devices",
            "add {id: 9, name: ...} to sub_devices",
        ),
        ("entities: {type: switch}", (1, 11), "entities must be a list, not a mapping", None),
        (
            "sub_devices:\n  - {name: Patio}",
            (2, 5),
            "a sub-device needs an id",
            "for example {id: 1, name: Patio}",
        ),
        (
            "actions:\n  - {name: a, args: {x: complex}}",
            (2, 25),
            "unknown argument type 'complex'",
            "one of: bool, int, float, string, bool[], int[], float[], string[]",
        ),
        (
            "actions:\n  - {name: a, response: maybe}",
            (2, 25),
            "unknown response 'maybe'",
            "one of: none, optional, only, status",
        ),
        (
            "actions:\n  - {name: a}\n  - {name: a}",
            (3, 12),
            "action 'a' is defined twice (first at line 2)",
            None,
        ),
        (
            "template: tv\nactions:\n  - {name: get_status}",
            (3, 12),
            "action 'get_status' is defined twice (the template has one)",
            None,
        ),
        (
            "actions:\n  - {args: {}}",
            (2, 5),
            "an action needs a name",
            "for example {name: get_status}",
        ),
        (
            "faults: {drop_probability: 2}",
            (1, 28),
            "drop_probability must be between 0 and 1, not 2",
            None,
        ),
        (
            "faults: {reject_reset: -1}",
            (1, 24),
            "reject_reset must be between 0 and 1, not -1",
            None,
        ),
        (
            "faults: {drop_after: 0}",
            (1, 22),
            "drop_after must be between 1 and 9223372036854775807, not 0",
            None,
        ),
        ("faults: {reboot: often}", (1, 18), "reboot must be a mapping, not 'often'", None),
        (
            "faults: {reboot: {after: 1m, evry: 5m}}",
            (1, 30),
            "unknown key 'evry' in reboot",
            "did you mean 'every'?",
        ),
        (
            "faults: {latency: 5 parsecs}",
            (1, 19),
            "latency: bad duration '5 parsecs'",
            _DURATION_HINT,
        ),
        ("faults: {silent: maybe}", (1, 18), "silent must be true or false, not 'maybe'", None),
        (
            "faults: {flapping: {down: 1s}}",
            (1, 20),
            "flapping needs up:",
            "for example {up: 5s, down: 1s}",
        ),
    ],
)
def test_invalid_blocks_name_file_line_and_problem(
    block: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    with pytest.raises(InputError) as info:
        _block(block + "\n")
    err = info.value
    assert (err.file, (err.line, err.column)) == ("devices.yml", where)
    assert (err.message, err.hint) == (message, hint)


def test_inventory_blocks_are_located_in_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "devices.yml"
    path.write_text(
        "devices:\n"
        "  patio-tv:\n"
        "    host: 127.0.0.1\n"
        "    simulate:\n"
        "      template: tv\n"
        "      faults: {jitter: often}\n"
    )
    device = load_inventory(path, env={}).device("patio-tv")
    assert device.simulate is not None
    with pytest.raises(InputError) as info:
        spec_from_block(
            device.name,
            host=device.host,
            port=device.port,
            psk=None,
            block=device.simulate,
            source=str(path),
        )
    assert info.value.one_line() == (
        f"{path}:6:24: jitter: bad duration 'often' (hint: {_DURATION_HINT})"
    )


def test_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.yml"
    path.write_text(
        f"""
venue: {{count: 2, base_port: 7000, encrypted: false}}
devices:
  kitchen:
    port: 7100
    key: "{KEY}"
    groups: [back]
    entities:
      - {{type: lock, name: Door, supports_open: true}}
  hall:
"""
    )
    specs = load_spec_file(path)
    assert [(s.name, s.port, s.psk is None) for s in specs] == [
        ("bar-tv-1", 7000, True),
        ("bar-tv-2", 7001, True),
        ("kitchen", 7100, False),
        ("hall", 0, True),
    ]
    assert specs[2].groups == ("back",) and specs[2].entities[0].supports_open
    assert specs[3].host == "127.0.0.1" and specs[3].entities == ()
    assert all(s.source == str(path) for s in specs)


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        ("devices:\n  a: [\n", (3, 1), "YAML syntax error: ", None),
        (
            "devices:\n  a: {key: short}\n",
            (2, 12),
            "key of a is not base64 of 32 bytes",
            "an ESPHome API encryption key is base64 of 32 bytes (44 characters)",
        ),
        (
            "venue: {count: 1}\ndevices:\n  bar-tv-1: {}\n",
            (3, 3),
            "device 'bar-tv-1' is also a device of the venue",
            "rename it: the venue's devices are bar-tv-1, bar-tv-2, ...",
        ),
        (
            "venue: {count: 0}\n",
            (1, 16),
            "venue count must be between 1 and 10000, not 0",
            None,
        ),
        (
            "vnue: {count: 2}\n",
            (1, 1),
            "unknown key 'vnue' in a simulator spec file",
            "did you mean 'venue'?",
        ),
        (
            "{}\n",
            (1, 1),
            "a simulator spec file needs `devices:` or `venue:`",
            "for example venue: {count: 5}",
        ),
        (
            "devices:\n  a: {port: 70000}\n",
            (2, 13),
            "port of a must be between 0 and 65535, not 70000",
            None,
        ),
        (
            "devices:\n  a: {hst: x}\n",
            (2, 7),
            "unknown key 'hst' in device 'a'",
            "did you mean 'host'?",
        ),
        (
            "devices:\n  a: {groups: 7}\n",
            (2, 15),
            "groups of a must be a string, not '7'",
            "quote it",
        ),
        ("- a\n", (1, 1), "a simulator spec file must be a mapping, not a list", None),
    ],
)
def test_spec_file_errors(
    tmp_path: Path, text: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = tmp_path / "sim.yml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_spec_file(path)
    err = info.value
    assert (err.file, (err.line, err.column)) == (str(path), where)
    assert err.message.startswith(message) and err.hint == hint
    if not message.endswith(": "):  # a syntax error's own wording is the parser's
        assert err.message == message


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_spec_file(tmp_path / "missing.yml")
    assert info.value.file == str(tmp_path / "missing.yml")
    assert info.value.message == "cannot read: No such file or directory"


def test_venue_is_reproducible() -> None:
    first, again, other = venue(3, seed=1), venue(3, seed=1), venue(3, seed=2)
    assert [s.psk for s in first] == [s.psk for s in again]
    assert {s.psk for s in first}.isdisjoint({s.psk for s in other})
    assert len({s.psk for s in first}) == 3 and len({s.mac for s in first}) == 3
    for spec in first:
        assert spec.psk is not None and len(base64.b64decode(spec.psk)) == 32
        assert re.fullmatch(r"A0:B7:65(:[0-9A-F]{2}){3}", spec.mac)
    assert [s.name for s in first] == ["bar-tv-1", "bar-tv-2", "bar-tv-3"]
    assert [s.port for s in venue(2, base_port=6053)] == [6053, 6054]
    assert all(s.psk is None for s in venue(2, encrypted=False))
    assert [e.selector for e in first[0].entities] == [
        "switch.tv_power",
        "select.input",
        "number.volume",
        "button.identify",
        "text.channel",
        "light.backlight",
    ]
    assert [a.name for a in first[0].actions] == ["send_tv_command", "get_status"]


def test_fault_summary_names_what_is_on() -> None:
    assert _block(None).faults.describe() == ""
    spec = _block("faults: {silent: true, latency: 20ms, jitter: 10ms, drop_after: 3}\n")
    assert spec.faults.describe() == "silent, latency 20ms±10ms, drop after 3"
