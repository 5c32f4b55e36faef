"""`cmdctl inventory import`: the fixture ESPHome directory → the exact inventory, merges, no-ops,
dry runs and located one-liners for bad files; in-process, plus one real process."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from cmdctl.inputs.inventory import load_inventory
from tests.cli.helpers import Result, Workspace, assert_clean

CONFIGS = Path(__file__).resolve().parents[1] / "inputs" / "esphome_configs"
BAR_KEY = "YmFyLXR2IGR1bW15IGtleSBmb3IgY21kY3RsIHRlc3Q="
PATIO_KEY = "cGF0aW8tc3BlYWtlciBkdW1teSBrZXkgY21kY3RsISE="
LOBBY_KEY = "bG9iYnktc2lnbiBsaXRlcmFsIGtleSBjbWRjdGwhISE="
NEW_KEY = "bmV3IHBhdGlvIGtleSBhZnRlciBhIHJvdGF0aW9uISE="  # base64 of 32 bytes
KEYS = (BAR_KEY, PATIO_KEY, LOBBY_KEY, NEW_KEY, "not-a-real-wifi-password")

EXPECTED_DEVICES = """\
# written by `cmdctl inventory import`; edit freely: a re-import keeps what you add
devices:
  bar-tv:
    host: 192.168.10.21
    key: !secret bar_tv_key
    expected_name: bar-tv
    groups: [venue, bar]
  kitchen-display:
    host: kitchen-display.local
    expected_name: kitchen-display
    groups: [venue]
  lobby-sign:
    host: 192.168.10.40
    key: !secret lobby_sign_key
    expected_name: lobby-sign
    groups: [venue, lobby]
  patio-speaker:
    host: 192.168.10.30
    port: 6054
    key: !secret patio_key
    expected_name: patio-speaker
    groups: [venue, patio]
"""
EXPECTED_SECRETS = f"""\
# API encryption keys for devices.yml (written by `cmdctl inventory import`)
bar_tv_key: "{BAR_KEY}"
lobby_sign_key: "{LOBBY_KEY}"
patio_key: "{PATIO_KEY}"
"""
EXPECTED_STDOUT = """\
added      bar-tv           192.168.10.21:6053; key !secret bar_tv_key; groups venue, bar
added      kitchen-display  kitchen-display.local:6053; no key (plaintext); groups venue
added      lobby-sign       192.168.10.40:6053; key !secret lobby_sign_key; groups venue, lobby
added      patio-speaker    192.168.10.30:6054; key !secret patio_key; groups venue, patio
"""


def _import(
    ws: Workspace, configs: Path, *extra: str, extra_env: dict[str, str] | None = None
) -> Result:
    result = ws.invoke(
        "inventory",
        *("import", str(configs), "-o", "out/devices.yml", "--group", "venue", *extra),
        extra_env=extra_env,
    )
    for key in KEYS:
        assert key not in result.stdout + result.stderr
    return result


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A copy of the fixture configuration directory that a test may change."""
    return Path(shutil.copytree(CONFIGS, tmp_path / "esphome"))


def test_the_fixture_directory_imports_into_the_exact_inventory(
    workspace: Workspace, configs: Path
) -> None:
    result = _import(workspace, configs, "--group-by", "area", "--group-by", "folder")
    assert_clean(result, 0)
    assert result.stdout == EXPECTED_STDOUT
    out = workspace.root / "out"
    assert (out / "devices.yml").read_text() == EXPECTED_DEVICES
    assert (out / "secrets.yaml").read_text() == EXPECTED_SECRETS
    assert _mode(out / "devices.yml") == 0o600
    assert _mode(out / "secrets.yaml") == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["devices.yml", "secrets.yaml"]  # no temps
    e = str(configs)
    err = result.stderr.splitlines()
    assert err == [
        f"skipped: {e}/common/api.yaml:1: included by {e}/bar-tv.yaml (a package or fragment),"
        " not a device configuration",
        f"skipped: {e}/common/named.yaml:1: included by {e}/lobby-sign.yaml (a package or"
        " fragment), not a device configuration",
        f"skipped: {e}/common/wifi.yaml:1: included by {e}/bar-tv.yaml (a package or fragment),"
        " not a device configuration",
        f"skipped: {e}/patio/secrets.yaml:1:1: secrets, not a device configuration (hint: its"
        " API keys are read through the `!secret` lines that use them)",
        f"skipped: {e}/secrets.yaml:1:1: secrets, not a device configuration (hint: its API keys"
        " are read through the `!secret` lines that use them)",
        f"skipped: {e}/sensor-node.yaml:2:9: device 'sensor-node' has no 'api:' (cmdctl talks to"
        " the native API) (hint: add `api:` with an encryption key to its config)",
        f"warning: {e}/kitchen-display.yaml:7:1: kitchen-display: plaintext API (no encryption"
        " key): anyone on the network can control it (hint: add `encryption: key:` under `api:`)",
        f"warning: {e}/kitchen-display.yaml:7:1: kitchen-display: api reboot_timeout is 15min"
        " (the default): with no client connected for 15 minutes the device reboots, and cmdctl"
        " connects only to send (hint: set `reboot_timeout: 0s` under `api:` unless Home"
        " Assistant stays connected)",
        f"warning: {e}/patio/patio-speaker.yaml:13:1: patio-speaker: api reboot_timeout is 15min"
        " (the default): with no client connected for 15 minutes the device reboots, and cmdctl"
        " connects only to send (hint: set `reboot_timeout: 0s` under `api:` unless Home"
        " Assistant stays connected)",
        f"warning: {e}/patio/patio-speaker.yaml:15:20: patio-speaker: api max_connections is 2:"
        " Home Assistant and a log viewer take 2 and cmdctl needs 1 more (hint: max_connections:"
        " 3 or more)",
        "wrote out/devices.yml (4 added, 0 changed, 0 unchanged); keys in out/secrets.yaml:"
        " 3 added",
    ]
    # ...and it loads back exactly
    inv = load_inventory(out / "devices.yml", env={})
    got = {
        d.name: (d.host, d.port, d.key.reveal() if d.key else None, d.expected_name, d.groups)
        for d in inv.devices
    }
    assert got == {
        "bar-tv": ("192.168.10.21", 6053, BAR_KEY, "bar-tv", ("venue", "bar")),
        "kitchen-display": ("kitchen-display.local", 6053, None, "kitchen-display", ("venue",)),
        "lobby-sign": ("192.168.10.40", 6053, LOBBY_KEY, "lobby-sign", ("venue", "lobby")),
        "patio-speaker": ("192.168.10.30", 6054, PATIO_KEY, "patio-speaker", ("venue", "patio")),
    }
    assert inv.warnings == ()


def _files(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.iterdir()
    }


def test_a_second_import_is_a_no_op(workspace: Workspace, configs: Path) -> None:
    assert_clean(_import(workspace, configs), 0)
    out = workspace.root / "out"
    before = {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()
    }
    again = _import(workspace, configs)
    assert_clean(again, 0)
    assert again.stdout.split() == [
        *("unchanged", "bar-tv", "unchanged", "kitchen-display"),
        *("unchanged", "lobby-sign", "unchanged", "patio-speaker"),
    ]
    assert again.stderr.splitlines()[-1] == (
        "out/devices.yml is up to date (0 added, 0 changed, 4 unchanged)"
    )
    assert _files(out) == before  # not even rewritten


def test_a_changed_key_is_reported_and_only_the_secret_changes(
    workspace: Workspace, configs: Path
) -> None:
    assert_clean(_import(workspace, configs), 0)
    devices = (workspace.root / "out" / "devices.yml").read_text()
    (configs / "patio" / "secrets.yaml").write_text(f'patio_key: "{NEW_KEY}"\n')
    result = _import(workspace, configs)
    assert_clean(result, 0)
    assert "changed    patio-speaker    key changed\n" in result.stdout
    assert result.stdout.count("unchanged") == 3
    assert result.stderr.splitlines()[-1] == (
        "wrote out/devices.yml (0 added, 1 changed, 3 unchanged); keys in out/secrets.yaml:"
        " 1 changed"
    )
    assert (workspace.root / "out" / "devices.yml").read_text() == devices
    secrets = workspace.root / "out" / "secrets.yaml"
    assert secrets.read_text() == EXPECTED_SECRETS.replace(PATIO_KEY, NEW_KEY)
    assert _mode(secrets) == 0o600


HAND_WRITTEN = """\
# my venue
defaults:
  timeout: 10s
devices:
  bar-tv:   # the big one
    host: 10.0.0.5  # moved
    key: !secret bar_tv_key
    groups:
      - tvs
    timeout: 8s
  ir-blaster:
    host: 10.0.0.9
    key: "${IR_KEY}"

  # patio things below
  patio-speaker:
    host: 192.168.10.30
    port: 6054
    key: !secret shared_key
    expected_name: patio-speaker
    groups: [patio]
pace:
  ir-blaster: 200ms
"""

MERGED = """\
# my venue
defaults:
  timeout: 10s
devices:
  bar-tv:   # the big one
    host: 192.168.10.21  # moved
    key: !secret bar_tv_key
    groups:
      - tvs
      - venue
    timeout: 8s
    expected_name: bar-tv
  ir-blaster:
    host: 10.0.0.9
    key: "${IR_KEY}"

  # patio things below
  patio-speaker:
    host: 192.168.10.30
    port: 6054
    key: !secret patio_key
    expected_name: patio-speaker
    groups: [patio, venue]
  kitchen-display:
    host: kitchen-display.local
    expected_name: kitchen-display
    groups: [venue]
  lobby-sign:
    host: 192.168.10.40
    key: !secret lobby_sign_key
    expected_name: lobby-sign
    groups: [venue]
pace:
  ir-blaster: 200ms
"""


def _hand_written(ws: Workspace) -> tuple[Path, Path]:
    out = ws.root / "out"
    out.mkdir()
    (out / "devices.yml").write_text(HAND_WRITTEN)
    (out / "devices.yml").chmod(0o644)
    # patio-speaker's key changes: it gets the configuration's secret name, shared_key stays
    (out / "secrets.yaml").write_text(f'bar_tv_key: "{BAR_KEY}"  # bar\nshared_key: "{NEW_KEY}"\n')
    return out / "devices.yml", out / "secrets.yaml"


def test_a_merge_keeps_what_the_user_wrote(workspace: Workspace, configs: Path) -> None:
    devices, secrets = _hand_written(workspace)
    result = _import(workspace, configs, extra_env={"IR_KEY": BAR_KEY})
    assert_clean(result, 0)
    assert result.stdout == (
        "changed    bar-tv           host 10.0.0.5 → 192.168.10.21; expected_name added;"
        " groups + venue\n"
        "added      kitchen-display  kitchen-display.local:6053; no key (plaintext); groups venue\n"
        "added      lobby-sign       192.168.10.40:6053; key !secret lobby_sign_key; groups venue\n"
        "changed    patio-speaker    key changed; groups + venue\n"
    )
    assert devices.read_text() == MERGED
    assert secrets.read_text() == (
        f'bar_tv_key: "{BAR_KEY}"  # bar\nshared_key: "{NEW_KEY}"\n'
        f'lobby_sign_key: "{LOBBY_KEY}"\npatio_key: "{PATIO_KEY}"\n'
    )
    assert _mode(devices) == 0o644  # holds no key: the user's mode stays
    assert _mode(secrets) == 0o600
    inv = load_inventory(devices, env={"IR_KEY": BAR_KEY})
    assert inv.names == ("bar-tv", "ir-blaster", "patio-speaker", "kitchen-display", "lobby-sign")
    assert inv.device("bar-tv").timeout == 8.0 and inv.device("ir-blaster").pace == 0.2


def test_dry_run_prints_the_diff_and_writes_nothing(workspace: Workspace, configs: Path) -> None:
    devices, secrets = _hand_written(workspace)
    before = devices.read_bytes(), secrets.read_bytes()
    result = _import(workspace, configs, "--dry-run", extra_env={"IR_KEY": BAR_KEY})
    assert_clean(result, 0)
    assert (devices.read_bytes(), secrets.read_bytes()) == before
    assert "-    host: 10.0.0.5  # moved\n+    host: 192.168.10.21  # moved\n" in result.stdout
    assert "+  lobby-sign:\n" in result.stdout
    assert "out/secrets.yaml: + lobby_sign_key (new key)\n" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        "dry run: nothing written (2 added, 2 changed, 0 unchanged)"
    )
    fresh = workspace.invoke("inventory", "import", str(configs), "-o", "new/devices.yml", "-n")
    assert_clean(fresh, 0)
    assert not (workspace.root / "new").exists()


def test_bad_files_are_one_located_line_each_and_the_rest_are_imported(
    workspace: Workspace, configs: Path
) -> None:
    (configs / "broken.yaml").write_text("esphome:\n  name: broken\napi:\n  port: [6053\n")
    (configs / "no-secret.yaml").write_text(
        "esphome:\n  name: no-secret\napi:\n  encryption:\n    key: !secret nope_key\n"
    )
    (configs / "short-key.yaml").write_text(
        "esphome:\n  name: short-key\napi:\n  encryption:\n    key: !secret wifi_password\n"
    )
    (configs / "lost-include.yaml").write_text("esphome: !include gone.yaml\n")
    result = _import(workspace, configs)
    assert_clean(result, 2)
    e = str(configs)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {e}/broken.yaml:5:1: YAML syntax error: did not find expected ',' or ']'",
        f"error: {e}/lost-include.yaml:1:10: !include gone.yaml: no such file ({e}/gone.yaml)",
        f"error: {e}/no-secret.yaml:5:10: api encryption key of no-secret: secret 'nope_key' is"
        f" not in {e}/secrets.yaml (hint: add `nope_key: ...` to secrets.yaml)",
        f"error: {e}/short-key.yaml:5:10: api encryption key of short-key (!secret"
        " wifi_password) is not base64 of 32 bytes (hint: an ESPHome API key is 44 characters"
        " of base64)",
    ]
    assert result.stdout == EXPECTED_STDOUT.replace(", bar", "").replace(", lobby", "").replace(
        ", patio", ""
    )
    assert (workspace.root / "out" / "devices.yml").is_file()


def test_nothing_to_import_is_an_input_error(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "secrets.yaml").write_text("k: v\n")
    result = workspace.invoke("inventory", "import", str(tmp_path / "empty"))
    assert_clean(result, 2)
    assert result.stderr.splitlines()[-1] == (
        f"cmdctl: no device configuration with `api:` found in {tmp_path / 'empty'} (hint: give"
        " the ESPHome configuration directory (the one with secrets.yaml))"
    )
    missing = workspace.invoke("inventory", "import", "nowhere")
    assert_clean(missing, 2)
    assert missing.stderr == (
        "cmdctl: no such file or directory: nowhere (hint: give ESPHome configuration files or"
        " the directory that holds them)\n"
    )
    assert not (tmp_path / "devices.yml").read_text().startswith("# written by")


def test_a_flow_style_inventory_is_refused_before_writing(
    workspace: Workspace, configs: Path
) -> None:
    out = workspace.root / "out"
    out.mkdir()
    (out / "devices.yml").write_text("devices: {bar-tv: {host: 10.0.0.5}}\n")
    result = _import(workspace, configs)
    assert_clean(result, 2)
    assert result.stderr.splitlines()[-1] == (
        "cmdctl: out/devices.yml:1:10: 'devices:' is written in flow style ({...}); the import"
        " edits block style only (hint: write one device per indented block, as in the README)"
    )
    assert (out / "devices.yml").read_text() == "devices: {bar-tv: {host: 10.0.0.5}}\n"
    assert not (out / "secrets.yaml").exists()


def test_help_has_an_example(workspace: Workspace) -> None:
    result = workspace.invoke("inventory", "import", "--help")
    assert_clean(result, 0)
    assert "Example: cmdctl inventory import ~/esphome" in result.stdout


def test_a_real_process_imports(workspace: Workspace, configs: Path) -> None:
    result = workspace.run(
        "inventory", "import", str(configs), "-o", "real/devices.yml", "-g", "venue"
    )
    assert_clean(result, 0)
    assert result.stdout == EXPECTED_STDOUT.replace(", bar", "").replace(", lobby", "").replace(
        ", patio", ""
    )
    assert _mode(workspace.root / "real" / "devices.yml") == 0o600
    for key in KEYS:
        assert key not in result.stdout + result.stderr


def test_an_unwritable_output_is_one_line(workspace: Workspace, configs: Path) -> None:
    (workspace.root / "afile").write_text("")
    result = workspace.invoke("inventory", "import", str(configs), "-o", "afile/devices.yml")
    assert_clean(result, 2)
    assert result.stderr.splitlines()[-1] == (
        "cmdctl: afile: cannot write the inventory: File exists"
        " (hint: pick a directory you can write with -o)"
    )
