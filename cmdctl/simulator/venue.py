"""The built-in `venue` template: a bar full of identical TVs (`bar-tv-1` … `bar-tv-N`).

Entity names are chosen so that object_ids are exactly `switch.tv_power`, `select.input`,
`number.volume`, `button.identify`, `text.channel` and `light.backlight`; the real ESPHome host
firmware used by the contract tests exposes the same ones.
"""

from __future__ import annotations

import hashlib

from cmdctl.simulator.spec import ActionSpec, ArgSpec, DeviceSpec, EntitySpec, derived_key

TV_ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec("switch", "TV Power"),
    EntitySpec("select", "Input", options=("HDMI 1", "HDMI 2", "Cable"), initial="HDMI 1"),
    EntitySpec("number", "Volume", min_value=0, max_value=100, step=1),  # starts at min, 0
    EntitySpec("button", "Identify"),
    EntitySpec("text", "Channel", max_length=16),  # no state until set (missing_state)
    EntitySpec("light", "Backlight", color_modes=("rgb",), effects=("Rainbow", "Strobe")),
)
TV_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("send_tv_command", (ArgSpec("box", "int"), ArgSpec("channel", "string"))),
    ActionSpec("get_status", response="only", returns="states"),
)
ESPRESSIF_OUI = "A0:B7:65"


def venue_mac(seed: int, name: str) -> str:
    """A reproducible, real-looking (Espressif OUI) MAC, uppercase with colons."""
    tail = hashlib.sha256(f"cmdctl-sim:{seed}:{name}:mac".encode()).digest()[:3]
    return ESPRESSIF_OUI + "".join(f":{b:02X}" for b in tail)


def venue(
    count: int, *, base_port: int = 0, encrypted: bool = True, seed: int = 0
) -> list[DeviceSpec]:
    """`count` bar TVs; ports base_port, base_port+1, … (0: ephemeral); keys derived from seed."""
    specs = []
    for i in range(1, count + 1):
        name = f"bar-tv-{i}"
        specs.append(
            DeviceSpec(
                name=name,
                friendly_name=f"Bar TV {i}",
                mac=venue_mac(seed, name),
                psk=derived_key(seed, name, "psk") if encrypted else None,
                port=base_port + i - 1 if base_port else 0,
                entities=TV_ENTITIES,
                actions=TV_ACTIONS,
                seed=seed,
                groups=("bar", "tvs"),
                source="venue template",
            )
        )
    return specs
