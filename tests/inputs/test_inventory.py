"""Inventory loading: devices, groups, keys and secrets, and every error path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.inputs.inventory import Secret, find_inventory, load_inventory

from .conftest import EXAMPLE_ENV, EXAMPLES, IR_KEY, IR_KEY_ENV, KEY

Write = Callable[[str, str], Path]


def _load_error(path: Path, env: dict[str, str] | None = None) -> InputError:
    with pytest.raises(InputError) as caught:
        load_inventory(path, env=env or {})
    return caught.value


def _key_problem(path: Path, device: str, env: dict[str, str] | None = None) -> str:
    """The problem a device's unusable key leaves it with: the inventory still loads (issue 13
    item 11: one missing secret must not stop the fleet), the device has no key, and the same
    line is a warning."""
    inv = load_inventory(path, env=env or {})
    found = inv.device(device)
    assert found.key is None and found.problem is not None
    assert any(w.startswith(found.problem) for w in inv.warnings), inv.warnings
    return found.problem


def test_example_venue_loads(venue: object) -> None:
    inv = load_inventory(EXAMPLES / "devices.yml", env=EXAMPLE_ENV)
    assert inv.names == (
        *(f"bar-tv-{i}" for i in range(1, 7)),
        "patio-tv-1",
        "patio-tv-2",
        "ir-blaster-a",
        "ir-blaster-b",
    )
    assert inv.groups["all"] == inv.names
    assert inv.groups["patio"] == ("patio-tv-1", "patio-tv-2")
    assert inv.groups["venue"] == (
        *inv.groups["bar"][:6],
        "patio-tv-1",
        "patio-tv-2",
        "ir-blaster-a",
    )
    assert inv.groups["everything"] == inv.names
    assert inv.warnings == ()
    tv6 = inv.device("bar-tv-6")
    assert (tv6.host, tv6.port, tv6.timeout, tv6.groups) == (
        "127.0.0.1",
        16066,
        20.0,
        ("bar", "tvs"),
    )
    assert inv.device("bar-tv-1").timeout == 10.0  # from defaults
    assert inv.device("patio-tv-1").expected_mac == "a0b765007101"
    assert inv.device("ir-blaster-b").key == Secret(IR_KEY)
    simulate = inv.device("bar-tv-2").simulate
    assert simulate is not None and simulate.plain == {"template": "tv"}
    assert (simulate.loc.line, simulate.loc.column) == (21, 15)  # *tv shares the anchor's node


def test_secret_never_shows_itself(venue: object) -> None:
    inv = load_inventory(EXAMPLES / "devices.yml", env=EXAMPLE_ENV)
    device = inv.device("ir-blaster-b")
    assert device.key is not None and device.key.reveal() == IR_KEY
    for text in (repr(device), str(device), repr(device.key), str(device.key), f"{device.key}"):
        assert IR_KEY not in text
    assert "'***'" in repr(device)


def test_minimal_inventory_defaults(write: Write) -> None:
    inv = load_inventory(write("d.yml", "devices:\n  a:\n    host: a.local\n"), env={})
    device = inv.device("a")
    assert (device.port, device.key, device.timeout, device.groups) == (6053, None, None, ())
    assert inv.groups == {"all": ("a",)}
    assert str(device.loc).endswith("d.yml:2:3")


@pytest.mark.parametrize(
    "mac", ["aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabbccddeeff", "AaBbCcDdEeFf"]
)
def test_mac_normalised(write: Write, mac: str) -> None:
    path = write("d.yml", f"devices:\n  a: {{host: h, expected_mac: '{mac}'}}\n")
    assert load_inventory(path, env={}).device("a").expected_mac == "aabbccddeeff"


def test_key_from_env(write: Write) -> None:
    path = write("d.yml", 'devices:\n  a: {host: h, key: "${MY_KEY}"}\n')
    inv = load_inventory(path, env={"MY_KEY": KEY})
    assert inv.device("a").key == Secret(KEY)
    assert inv.warnings == ()


def test_unset_env_key_is_the_devices_problem(write: Write) -> None:
    path = write("d.yml", 'devices:\n  a: {host: h, key: "${MY_KEY}"}\n')
    assert _key_problem(path, "a").startswith(
        f"{path}:2:21: key of a: environment variable MY_KEY is not set"
    )


def test_literal_key_works_with_a_warning(write: Write) -> None:
    path = write("d.yml", f"devices:\n  bar-tv-1:\n    host: h\n    key: {KEY}\n")
    inv = load_inventory(path, env={})
    assert inv.device("bar-tv-1").key == Secret(KEY)
    assert inv.warnings == (f"{path}:4:10: literal key in bar-tv-1: use !secret or ${{ENV}}",)
    assert KEY not in inv.warnings[0]


def test_missing_secrets_file(write: Write) -> None:
    path = write("d.yml", "devices:\n  tv: {host: h, key: !secret tv_key}\n")
    assert _key_problem(path, "tv") == (
        f"{path}:2:22: key of tv: !secret tv_key needs {path.parent / 'secrets.yaml'},"
        " which does not exist (hint: create secrets.yaml beside the inventory with"
        " `tv_key: <base64 key>`)"
    )


def test_a_missing_secret_leaves_the_other_devices_usable(write: Write) -> None:
    write("secrets.yaml", f"a_key: {KEY}\n")
    body = "devices:\n  a: {host: h, key: !secret a_key}\n  b: {host: h, key: !secret b_key}\n"
    path = write("d.yml", body)
    inv = load_inventory(path, env={})
    assert (inv.device("a").key, inv.device("a").problem) == (Secret(KEY), None)
    assert _key_problem(path, "b").startswith(f"{path}:3:21: key of b: secret 'b_key' is not in")
    assert inv.warnings[0].endswith(" — commands to b fail until this is fixed")


def test_missing_secret_name_suggests(write: Write) -> None:
    write("secrets.yaml", f"tv_key1: {KEY}\n")
    path = write("d.yml", "devices:\n  tv: {host: h, key: !secret tv_key}\n")
    problem = _key_problem(path, "tv")
    assert "key of tv: secret 'tv_key' is not in" in problem
    assert problem.endswith(
        "(hint: add `tv_key: <base64 key>` to secrets.yaml, or if 'tv_key' is a typo,"
        " did you mean 'tv_key1'?)"
    )


@pytest.mark.parametrize(
    ("bad_key", "why"),
    [
        ("c2hvcnQ=", "decodes to 5 bytes, not 32"),
        ("not base64 at all!!", "is not valid base64"),
        ("dGVzdC1rZXktZm9yLWNtZGN0bC1pbnB1dC10ZXN0cyEhIQ==", "decodes to 34 bytes, not 32"),
    ],
)
def test_malformed_key_names_device_never_the_key(write: Write, bad_key: str, why: str) -> None:
    write("secrets.yaml", f'tv_key: "{bad_key}"\n')
    for body in ("!secret tv_key", f'"{bad_key}"', '"${K}"'):
        path = write("d.yml", f"devices:\n  bar-tv-1: {{host: h, key: {body}}}\n")
        inv = load_inventory(path, env={"K": bad_key})
        problem = _key_problem(path, "bar-tv-1", env={"K": bad_key})
        assert problem.startswith(f"{path}:2:") and ": key of bar-tv-1 (" in problem
        assert why in problem
        for text in (problem, *inv.warnings, repr(inv), repr(inv.device("bar-tv-1"))):
            assert bad_key not in text


def test_numeric_secret_value_not_echoed(write: Write) -> None:
    write("secrets.yaml", "tv_key: 123456789\n")
    path = write("d.yml", "devices:\n  tv: {host: h, key: !secret tv_key}\n")
    problem = _key_problem(path, "tv")
    assert problem.endswith(": secret 'tv_key' must be a string (hint: quote the key)")
    assert "123456789" not in problem


def test_unknown_device_key_did_you_mean(write: Write) -> None:
    path = write("d.yml", "devices:\n  tv:\n    host: h\n    grups: [a]\n")
    err = _load_error(path)
    assert err.one_line() == (
        f"{path}:4:5: unknown key 'grups' in device 'tv' (hint: did you mean 'groups'?)"
    )


def test_unknown_top_level_key(write: Write) -> None:
    err = _load_error(write("d.yml", "device:\n  tv: {host: h}\n"))
    assert err.message == "unknown key 'device' in the inventory"
    assert err.hint == "did you mean 'devices'?"


def test_group_cycle(write: Write) -> None:
    path = write(
        "d.yml",
        """\
        devices:
          tv: {host: h, groups: [a]}
        groups:
          a: [b]
          b: [c]
          c: [a]
        """,
    )
    err = _load_error(path)
    assert err.message.startswith("group cycle: ")
    assert err.message.count("→") == 3
    assert err.file == str(path) and err.line is not None


def test_groups_nested_thousands_deep_resolve_without_recursion(write: Write) -> None:
    # Issue 13 item 8: 3,000 levels crashed with RecursionError (exit 70).
    depth = 3000
    chain = "".join(f"  g{i}: [g{i - 1}]\n" for i in range(1, depth))
    path = write("d.yml", f"devices:\n  tv: {{host: h, groups: [g0]}}\ngroups:\n{chain}")
    inv = load_inventory(path, env={})
    assert inv.groups[f"g{depth - 1}"] == ("tv",)


def test_group_cycle_thousands_deep_is_located(write: Write) -> None:
    depth = 3000
    chain = "".join(f"  g{i}: [g{i - 1}]\n" for i in range(1, depth))
    head = f"devices:\n  tv: {{host: h, groups: [g0]}}\ngroups:\n  g0: [g{depth - 1}]\n"
    path = write("d.yml", head + chain)
    err = _load_error(path)
    last, before = depth - 1, depth - 2
    assert err.message == f"group cycle: g0 → g{last} → g{before} → … → g1 → g0 ({depth} groups)"
    assert (err.file, err.line) == (str(path), 4)


def test_nested_groups_flatten_in_inventory_order(write: Write) -> None:
    path = write(
        "d.yml",
        """\
        devices:
          z: {host: h, groups: [late]}
          a: {host: h, groups: [early]}
          m: {host: h}
        groups:
          both: [late, early]
          outer: [both, m]
        """,
    )
    inv = load_inventory(path, env={})
    assert inv.groups["both"] == ("z", "a")
    assert inv.groups["outer"] == ("z", "a", "m")


def test_group_member_unknown_suggests(write: Write) -> None:
    path = write("d.yml", "devices:\n  tv-1: {host: h}\ngroups:\n  bar: [tv1]\n")
    err = _load_error(path)
    assert err.message == "group 'bar' lists 'tv1', which is no device or group"
    assert err.hint == "did you mean 'tv-1'?"
    assert (err.line, err.column) == (4, 9)


def test_device_and_group_share_a_namespace(write: Write) -> None:
    path = write("d.yml", "devices:\n  tv: {host: h}\n  bar: {host: h, groups: [tv]}\n")
    err = _load_error(path)
    assert err.message == "'tv' is both a device and a group"


def test_all_is_reserved(write: Write) -> None:
    err = _load_error(write("d.yml", "devices:\n  tv: {host: h, groups: [all]}\n"))
    assert err.message == "'all' is the implicit group of every device"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("devices:\n  tv: {port: 1}\n", "device 'tv' has no 'host:'"),
        ("devices:\n  tv: {host: h, port: 70000}\n", "port must be between 1 and 65535, not 70000"),
        ("devices:\n  tv: {host: h, port: x}\n", "port must be a whole number, not 'x'"),
        ("devices:\n  tv: {host: h, timeout: soon}\n", "bad duration 'soon'"),
        ("devices:\n  tv: {host: h, timeout: 0s}\n", "timeout must be more than 0s"),
        ("devices:\n  tv: {host: h, expected_mac: 12:34}\n", "expected_mac of tv is not a MAC"),
        ("devices:\n  'tv 1': {host: h}\n", "bad device name 'tv 1'"),
        ("devices:\n  tv: {host: h, groups: ['a,b']}\n", "bad group name 'a,b'"),
        ("devices:\n  tv: {host: [h]}\n", "host of tv must be a string, not a list"),
        ("devices: {}\n", "the inventory lists no devices"),
        ("defaults: {port: 1}\n", "the inventory has no 'devices:'"),
        ("- tv\n", "the inventory must be a mapping, not a list"),
        ("devices:\n  tv: {host: h, simulate: yes}\n", "simulate of tv must be a mapping"),
    ],
)
def test_device_errors(write: Write, body: str, message: str) -> None:
    path = write("d.yml", body)
    err = _load_error(path)
    assert message in err.message
    assert err.file == str(path) and err.line is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Issue 13 item 9: accepted, after which work waited (near) forever with no note.
        ("devices:\n  tv: {host: h, timeout: 99999999d}\n", "timeout must be at most 1h"),
        ("defaults: {timeout: 2h}\ndevices:\n  tv: {host: h}\n", "timeout must be at most 1h"),
        ("devices:\n  tv: {host: h, pace: 99999999d}\n", "pace must be at most 1h"),
        ("defaults: {pace: 61m}\ndevices:\n  tv: {host: h}\n", "pace must be at most 1h"),
        ("devices:\n  tv: {host: h}\npace: {tv: 99999999d}\n", "pace must be at most 1h"),
    ],
)
def test_durations_beyond_an_hour_are_refused(write: Write, body: str, message: str) -> None:
    path = write("d.yml", body)
    err = _load_error(path)
    assert err.message.startswith(message)
    assert err.hint is not None
    assert err.file == str(path) and err.line is not None


def test_an_hour_is_still_allowed(write: Write) -> None:
    path = write("d.yml", "devices:\n  tv: {host: h, timeout: 1h, pace: 1h}\n")
    inv = load_inventory(path, env={})
    assert (inv.device("tv").timeout, inv.device("tv").pace) == (3600.0, 3600.0)


@pytest.mark.parametrize(
    "host",
    ['"10.0.0.1\\nevil"', '"bar tv"', '"10.0.0.1:6053"', '"a/b"', '"-x"', '"a..b"', "'x;y'"],
)
def test_a_host_no_address_can_be_is_refused(write: Write, host: str) -> None:
    path = write("d.yml", f"devices:\n  tv:\n    host: {host}\n")
    err = _load_error(path)
    assert err.message.startswith("host of tv is not an IP address or hostname: ")
    assert "\n" not in err.one_line()
    assert (err.file, err.line, err.column) == (str(path), 3, 11)


@pytest.mark.parametrize(
    "host",
    ["h", "10.0.0.1", "::1", "fe80::1%eth0", "bar-tv-1.local", "bar_tv.lan.", "[::1]", "a" * 63],
)
def test_hosts_that_can_be_addresses_load(write: Write, host: str) -> None:
    inv = load_inventory(write("d.yml", f"devices:\n  tv: {{host: '{host}'}}\n"), env={})
    assert inv.device("tv").host == host.strip("[]")


def test_find_inventory_order(tmp_path: Path) -> None:
    explicit, from_env, default = (tmp_path / n for n in ("x.yml", "env.yml", "devices.yml"))
    for path in (explicit, from_env, default):
        path.write_text("devices: {}\n")
    env = {"CMDCTL_INVENTORY": str(from_env)}
    assert find_inventory(explicit, env, tmp_path) == explicit
    assert find_inventory(None, env, tmp_path) == from_env
    assert find_inventory(None, {}, tmp_path) == default
    assert find_inventory(Path("x.yml"), {}, tmp_path) == explicit


def test_find_inventory_missing_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        find_inventory(None, {}, tmp_path)
    err = caught.value
    assert err.message == f"no inventory at {tmp_path / 'devices.yml'} (from the default)"
    assert err.hint and "cmdctl simulate --count 5 --write-inventory devices.yml" in err.hint
    with pytest.raises(InputError, match=r"\(from \$CMDCTL_INVENTORY\)"):
        find_inventory(None, {"CMDCTL_INVENTORY": "nope.yml"}, tmp_path)


def test_unknown_device_lookup_suggests(venue: object) -> None:
    inv = load_inventory(EXAMPLES / "devices.yml", env={IR_KEY_ENV: IR_KEY})
    with pytest.raises(InputError) as caught:
        inv.device("bar-tv-7")
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("did you mean 'bar-tv-")


def test_secret_copies_but_never_pickles() -> None:
    import copy
    import dataclasses
    import pickle

    from cmdctl.inputs.inventory import Device

    secret = Secret(KEY)
    device = Device("tv", "h", key=secret)
    assert copy.deepcopy(device).key is secret
    assert dataclasses.asdict(device)["key"] is secret
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(secret)


def test_broken_secrets_file_never_echoes_its_lines(write: Write) -> None:
    write("secrets.yaml", f'tv_key: "{KEY}\nother: [\n')  # unterminated quote
    path = write("d.yml", "devices:\n  tv: {host: h, key: !secret tv_key}\n")
    problem = _key_problem(path, "tv")
    assert problem.startswith(f"{path.parent / 'secrets.yaml'}:")
    assert ": YAML syntax error" in problem
    assert KEY not in problem
