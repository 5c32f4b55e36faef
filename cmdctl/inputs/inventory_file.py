"""The inventory file, `devices.yml`: its schema (top-level keys, `defaults`, each device's
keys), read into an `Inventory`; encryption keys from `!secret` (`secrets.yaml` beside it),
`${VAR}` or written out, a device whose key does not resolve kept with its `problem`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from cmdctl.core.errors import InputError
from cmdctl.inputs import inventory_fields as fields
from cmdctl.inputs import variables, yamlsrc
from cmdctl.inputs.inventory import DEFAULT_PORT, SECRETS_FILE, Device, Inventory, Secret
from cmdctl.inputs.inventory_groups import groups_of, resolve_paces, resolve_vars
from cmdctl.inputs.variables import Value
from cmdctl.inputs.yamlsrc import Loc, Node, ScalarNode

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOP_KEYS = ("defaults", "devices", "groups", "pace", "vars")
_DEFAULT_KEYS = ("port", "timeout", "pace", "vars")
_DEVICE_KEYS = (
    "host",
    "port",
    "key",
    "expected_name",
    "expected_mac",
    "groups",
    "timeout",
    "pace",
    "vars",
    "simulate",
)

_EXAMPLE_HINT = "see docs/architecture.md, or `cmdctl simulate --count 5 --write-inventory FILE`"


def read(path: Path, env: Mapping[str, str]) -> Inventory:
    """`load_inventory`: the inventory at `path`, `${VAR}` keys resolved from `env`."""
    return _Loader(path, env).load()


class _Loader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.warnings: list[str] = []
        self._secrets: dict[str, Node] | None = None
        self.secrets_path = path.parent / SECRETS_FILE

    def load(self) -> Inventory:
        start = Loc(str(self.path), 1, 1)
        root = yamlsrc.want_map(
            yamlsrc.load_file(self.path, allow_secret=True), "the inventory", start
        )
        yamlsrc.check_keys(root, _TOP_KEYS, "the inventory")
        port, timeout, pace = DEFAULT_PORT, None, None
        default_vars: dict[str, Value] = {}
        if "defaults" in root.items:
            defaults = yamlsrc.want_map(root.items["defaults"], "defaults", root.loc)
            yamlsrc.check_keys(defaults, _DEFAULT_KEYS, "defaults")
            if "port" in defaults.items:
                port = fields.port(defaults.items["port"])
            if "timeout" in defaults.items:
                timeout = fields.timeout(defaults.items["timeout"])
            if "pace" in defaults.items:
                pace = fields.pace(defaults.items["pace"])
            if "vars" in defaults.items:
                default_vars = variables.values_of(
                    defaults.items["vars"], "the inventory's defaults", "vars of defaults"
                )
        if "devices" not in root.items:
            raise root.loc.error("the inventory has no 'devices:'", hint=_EXAMPLE_HINT)
        devices_node = yamlsrc.want_map(root.items["devices"], "devices", root.loc)
        if not devices_node.items:
            raise devices_node.loc.error("the inventory lists no devices", hint=_EXAMPLE_HINT)
        devices = [
            self._device(name, devices_node.keys[name], node, port, timeout)
            for name, node in devices_node.items.items()
        ]
        groups, group_locs = groups_of(devices, root.items.get("groups"))
        devices = resolve_paces(devices, groups, root.items.get("pace"), pace)
        if "vars" in root.items:
            devices = resolve_vars(devices, groups, root.items["vars"])
        return Inventory(
            self.path,
            tuple(devices),
            groups,
            group_locs,
            tuple(self.warnings),
            default_vars,
        )

    def _device(
        self, name: str, name_loc: Loc, node: Node, port: int, timeout: float | None
    ) -> Device:
        fields.check_name(name, name_loc, "device")
        body = yamlsrc.want_map(node, f"device {name!r}", name_loc)
        yamlsrc.check_keys(body, _DEVICE_KEYS, f"device {name!r}")
        items = body.items
        if "host" not in items:
            raise body.loc.error(f"device {name!r} has no 'host:'", hint="add host: IP or name")
        host = fields.host(items["host"], name)
        groups: tuple[str, ...] = ()
        if "groups" in items:
            groups = yamlsrc.want_str_list(items["groups"], f"groups of {name}")
            for group in groups:
                fields.check_name(group, items["groups"].loc, "group")
        key, problem = None, None
        if "key" in items:
            try:
                key = self._key(name, items["key"])
            except InputError as err:
                problem = err.one_line()
                self.warnings.append(f"{problem} — commands to {name} fail until this is fixed")
        simulate = None
        if "simulate" in items:
            simulate = yamlsrc.want_map(items["simulate"], f"simulate of {name}", body.loc)
        return Device(
            name=name,
            host=host,
            port=fields.port(items["port"]) if "port" in items else port,
            key=key,
            expected_name=(
                yamlsrc.want_str(items["expected_name"], f"expected_name of {name}")
                if "expected_name" in items
                else None
            ),
            expected_mac=(
                fields.mac(items["expected_mac"], name) if "expected_mac" in items else None
            ),
            groups=groups,
            timeout=fields.timeout(items["timeout"]) if "timeout" in items else timeout,
            simulate=simulate,
            loc=name_loc,
            pace=fields.pace(items["pace"]) if "pace" in items else None,
            problem=problem,
            vars=(
                variables.values_of(items["vars"], f"device {name}", f"vars of {name}")
                if "vars" in items
                else {}
            ),
        )

    def _key(self, device: str, node: Node) -> Secret:
        if isinstance(node, ScalarNode) and node.tag == yamlsrc.SECRET_TAG:
            name = node.value if isinstance(node.value, str) else ""
            value_node = self._secret(device, name, node.loc)
            source = f"!secret {name}"
            value = fields.key_text(value_node, f"secret {name!r}")
        else:
            text = fields.key_text(node, f"key of {device}")
            ref = _ENV_REF.fullmatch(text.strip())
            if ref is not None:
                var = ref.group(1)
                if not self.env.get(var):
                    raise node.loc.error(
                        f"key of {device}: environment variable {var} is not set",
                        hint=f"export {var}=... (base64 of 32 bytes) or use !secret",
                    )
                value, source = self.env[var], f"${{{var}}}"
            else:
                value, source = text, "literal key"
                self.warnings.append(
                    f"{node.loc}: literal key in {device}: use !secret or ${{ENV}}"
                )
        fields.check_key(value, device, source, node.loc)
        return Secret(value.strip())

    def _secret(self, device: str, name: str, loc: Loc) -> Node:
        secrets_path = self.secrets_path
        if self._secrets is None:
            if not secrets_path.is_file():
                raise loc.error(
                    f"key of {device}: !secret {name} needs {secrets_path}, which does not exist",
                    hint=f"create {SECRETS_FILE} beside the inventory with `{name}: <base64 key>`",
                )
            root = yamlsrc.load_file(secrets_path)
            start = Loc(str(secrets_path), 1, 1)
            self._secrets = dict(yamlsrc.want_map(root, SECRETS_FILE, start).items) if root else {}
        if name not in self._secrets:
            # Names of keys differ by one character from device to device (bar_tv_2_key,
            # bar_tv_3_key): a near name is as likely another device's key as a typo.
            hint = f"add `{name}: <base64 key>` to {SECRETS_FILE}"
            near = yamlsrc.did_you_mean(name, self._secrets)
            raise loc.error(
                f"key of {device}: secret {name!r} is not in {secrets_path}",
                hint=f"{hint}, or if {name!r} is a typo, {near}" if near else hint,
            )
        return self._secrets[name]
