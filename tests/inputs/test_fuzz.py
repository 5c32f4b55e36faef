"""Fuzzing the loaders: whatever the input, the only error is an InputError with a location."""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.errors import InputError
from cmdctl.inputs.inventory import load_inventory
from cmdctl.inputs.playbook import expand, load_playbook

from .conftest import EXAMPLE_ENV, EXAMPLES, NOW, counter_ids

VENUE = load_inventory(EXAMPLES / "devices.yml", env=EXAMPLE_ENV)
BASES = tuple(
    yaml.safe_load((EXAMPLES / f"{name}.yml").read_text()) for name in ("game-night", "rollout")
)
TAG_FILTERS = (None, frozenset({"ir"}), frozenset({"power", "nope"}))
FUZZ = settings(max_examples=300, deadline=None)

_DIR = Path(tempfile.mkdtemp(prefix="cmdctl-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def _check(text: str | bytes, tags: frozenset[str] | None = None) -> None:
    """Load (and expand) `text` as a playbook: success, or an InputError with file and line."""
    path = _DIR / "fuzz.yml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    try:
        playbook = load_playbook(path, max_commands=1_000)
        expand(playbook, VENUE, now=NOW, ids=counter_ids(), who="fuzz@test", tags=tags)
    except InputError as err:
        assert err.file == str(path), err.one_line()
        assert err.line is not None and err.line >= 1, err.one_line()
        assert err.message and "\n" not in err.one_line()


YAMLISH = st.lists(
    st.sampled_from(
        [
            *"abcnrst.:-_ {}[],&*!|>'\"#%@`?\\\t\n0123456789~",
            "\n  ",
            "\n- ",
            ": ",
            "targets: ",
            "steps:\n  - ",
            "switch.tv_power: ",
            "&a ",
            "*a",
            "!secret ",
            "<<: ",
            "---\n",
            "\u00e9",
        ]
    ),
    max_size=80,
).map("".join)


@FUZZ
@given(YAMLISH)
def test_random_yamlish_text(text: str) -> None:
    _check(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _check(data)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "on",
            "off",
            "press",
            "HDMI 1",
            "+10m",
            "2h",
            "now",
            "tvs",
            "bar:&tvs",
            "nope-*",
            "immediate",
            "queued",
            "high",
            "low",
            "40%",
            "#ff8000",
            "open",
            "lock",
            "volume_up",
            "2026-11-23T21:00:00",
            "1:30",
            "switch.tv_power",
            "action",
            "data",
            "skip",
            "continue",
            "power on",
            "blink",
            "failover",
            "any",
            "ir-blaster-a",
            "200ms",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), SCALARS.filter(lambda v: v is not None)),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "name",
        "targets",
        "priority",
        "at",
        "expires",
        "defaults",
        "steps",
        "mode",
        "idempotent",
        "verify",
        "attempts",
        "action",
        "data",
        "tags",
        "after",
        "on_failure",
        "serial",
        "failover",
        "any",
        "switch.tv_power",
        "light.backlight",
        "number.volume",
        "select.input",
        "cover.x",
        "climate.x",
        "lock.x",
        "fan.x",
        "valve.x",
        "media_player.x",
        "text.x",
        "button.x",
        "swich.x",
        "x",
    ]
)


def _containers(node: Any, found: list[Any]) -> list[Any]:
    if isinstance(node, dict | list):
        found.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, found)
    return found


@st.composite
def mutated_playbooks(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = draw(st.sampled_from(_containers(doc, [])))
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if isinstance(target, dict):
            if action == "add" or not target:
                target[draw(KEYS)] = draw(VALUES)
            else:
                key = draw(st.sampled_from(sorted(target, key=str)))
                if action == "replace":
                    target[key] = draw(VALUES)
                elif action == "delete":
                    del target[key]
                else:
                    target[draw(KEYS)] = copy.deepcopy(target[key])
        else:
            if action == "add" or not target:
                target.append(draw(VALUES))
            else:
                index = draw(st.integers(min_value=0, max_value=len(target) - 1))
                if action == "replace":
                    target[index] = draw(VALUES)
                elif action == "delete":
                    del target[index]
                else:
                    target.append(copy.deepcopy(target[index]))
    return doc


@FUZZ
@given(mutated_playbooks(), st.booleans(), st.sampled_from(TAG_FILTERS))
def test_mutated_playbooks(doc: Any, flow: bool, tags: frozenset[str] | None) -> None:
    _check(yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True), tags)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[" * 50_000,
        "a: &a [" + "*a, " * 3 + "]",
        "x: !!python/object:os.system ls\n",
        "steps: !!python/name:os.system\n",
        "targets: tvs\nsteps:\n  - <<: {switch.tv_power: on}\n",
        "targets: tvs\nsteps:\n  - {? [a]: 1}\n",
        "%YAML 1.1\n---\ntargets: tvs\n",
        "\ufeffname: bom\n",
    ],
)
def test_nasty_inputs(text: str) -> None:
    _check(text)


INVENTORY_BASE = {
    "defaults": {"port": 6053, "timeout": "10s", "pace": "0s"},
    "devices": {
        "bar-tv-1": {"host": "10.0.0.1", "key": "${K}", "groups": ["bar", "tvs"]},
        "bar-tv-2": {"host": "10.0.0.2", "expected_mac": "a0:b7:65:01:02:03", "groups": ["bar"]},
        "patio-tv-1": {"host": "p.local", "port": 6054, "timeout": "8s", "simulate": {"x": 1}},
        "ir-1": {"host": "i.local", "pace": "250ms", "groups": ["bar"]},
    },
    "groups": {"venue": ["bar", "patio-tv-1"], "outer": ["venue"]},
    "pace": {"bar": "200ms", "patio-tv-1": "1s"},
}


@st.composite
def mutated_inventories(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(INVENTORY_BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = draw(st.sampled_from(_containers(doc, [])))
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target, key=str)))
            if draw(st.booleans()):
                target[key] = draw(VALUES)
            else:
                del target[key]
        elif isinstance(target, list) and target:
            target[draw(st.integers(min_value=0, max_value=len(target) - 1))] = draw(VALUES)
    return doc


@FUZZ
@given(mutated_inventories())
def test_mutated_inventories(doc: Any) -> None:
    path = _DIR / "devices.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        inventory = load_inventory(path, env={"K": "dGVzdC1rZXktZm9yLWNtZGN0bC1pbnB1dC10ZXN0cyE="})
    except InputError as err:
        assert err.file == str(path) and err.line is not None, err.one_line()
    else:
        assert inventory.groups["all"] == inventory.names
