"""Device specs from YAML blocks and files, and the venue template."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from aioesphomeapi.object_id import compute_object_id

from cmdctl.core.errors import InputError
from cmdctl.simulator import load_spec_file, spec_from_block, venue
from cmdctl.simulator.naming import fnv1, object_id_of

KEY = base64.b64encode(bytes(range(32))).decode()


def _block(block: dict[str, Any] | None) -> Any:
    return spec_from_block(
        "patio-tv", host="127.0.0.1", port=0, psk=KEY, block=block, source="devices.yml"
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
        {
            "template": "tv",
            "friendly_name": "Patio TV",
            "mac": "a0:b7:65:01:02:03",
            "api_minor": 10,
            "batch_delay": "100ms",
            "seed": 4,
            "max_connections": 2,
            "sub_devices": [{"id": 3, "name": "Remote"}],
            "entities": [
                {"type": "fan", "name": "Fan", "speed_count": 5, "preset_modes": ["Eco"]},
                {"type": "switch", "name": "Relay", "device_id": 3, "initial": True},
            ],
            "actions": [
                {
                    "name": "ping",
                    "args": {"ids": "int[]"},
                    "response": "only",
                    "returns": {"pong": True},
                },
            ],
            "faults": {
                "latency": "20ms",
                "jitter": 0.01,
                "drop_after": 5,
                "reboot": {"after": "1m", "down": "2s"},
                "flapping": {"up": "5s", "down": "1s"},
                "wrong_key": True,
                "reject_reset": 0.5,
            },
        }
    )
    assert spec.faults.reject_reset == 0.5
    assert "reject reset p=0.5" in spec.faults.describe()
    assert spec.mac == "A0:B7:65:01:02:03"
    assert spec.batch_delay == pytest.approx(0.1)
    assert (spec.api_minor, spec.seed, spec.max_connections) == (10, 4, 2)
    assert [e.selector for e in spec.entities][-3:] == [
        "light.backlight",
        "fan.fan",
        "switch.relay",
    ]
    assert spec.entities[-1].device_id == 3 and spec.entities[-1].initial is True
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
    spec = _block({"template": "tv"})
    assert {e.selector for e in spec.entities} >= {"switch.tv_power", "light.backlight"}
    assert _block(None).entities == ()


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"colour": "red"}, "simulate.colour"),
        ({"template": "radio"}, "simulate.template"),
        ({"mac": "nope"}, "simulate.mac"),
        ({"batch_delay": "soon"}, "simulate.batch_delay"),
        ({"max_connections": 0}, "simulate.max_connections"),
        ({"entities": [{"type": "toaster", "name": "T"}]}, "simulate.entities[0].type"),
        ({"entities": [{"type": "switch"}]}, "simulate.entities[0].name"),
        (
            {"entities": [{"type": "switch", "name": "S", "options": ["a"]}]},
            "simulate.entities[0].options",
        ),
        (
            {"entities": [{"type": "select", "name": "S", "options": ["a"], "initial": "b"}]},
            "simulate.entities[0]",
        ),
        (
            {"entities": [{"type": "switch", "name": "A b"}, {"type": "switch", "name": "a B"}]},
            "simulate.entities",
        ),
        ({"entities": [{"type": "switch", "name": "S", "device_id": 9}]}, "simulate.entities"),
        ({"actions": [{"name": "a", "args": {"x": "complex"}}]}, "simulate.actions[0].args.x"),
        ({"actions": [{"name": "a", "response": "maybe"}]}, "simulate.actions[0].response"),
        ({"faults": {"drop_probability": 2}}, "simulate.faults.drop_probability"),
        ({"faults": {"reject_reset": -1}}, "simulate.faults.reject_reset"),
        ({"faults": {"reboot": "often"}}, "simulate.faults.reboot"),
    ],
)
def test_invalid_blocks_name_device_and_key(block: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError) as info:
        _block(block)
    err = info.value
    assert err.file == "devices.yml"
    assert "'patio-tv'" in err.message and where in err.message


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
"""
    )
    specs = load_spec_file(path)
    assert [(s.name, s.port, s.psk is None) for s in specs] == [
        ("bar-tv-1", 7000, True),
        ("bar-tv-2", 7001, True),
        ("kitchen", 7100, False),
    ]
    assert specs[2].groups == ("back",) and specs[2].entities[0].supports_open
    assert all(s.source == str(path) for s in specs)


def test_spec_file_errors(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("devices:\n  a: [\n")
    with pytest.raises(InputError) as info:
        load_spec_file(bad_yaml)
    assert info.value.file == str(bad_yaml) and info.value.line is not None
    bad_key = tmp_path / "key.yml"
    bad_key.write_text("devices:\n  a: {key: short}\n")
    with pytest.raises(InputError, match=r"simulate\.key"):
        load_spec_file(bad_key)
    dupes = tmp_path / "dupes.yml"
    dupes.write_text("venue: {count: 1}\ndevices:\n  bar-tv-1: {}\n")
    with pytest.raises(InputError, match="used twice"):
        load_spec_file(dupes)
    with pytest.raises(InputError, match="cannot read"):
        load_spec_file(tmp_path / "missing.yml")


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
    spec = _block(
        {"faults": {"silent": True, "latency": "20ms", "jitter": "10ms", "drop_after": 3}}
    )
    assert spec.faults.describe() == "silent, latency 20ms±10ms, drop after 3"
