"""A device's entity list: resolve a command's selector to its entity, and plan the command.

`EntityIndex.plan` finds the entity (or action) a command addresses, with "did you mean" when
none matches, and hands its arguments to `cmdctl.device.validator`, which checks them against the
entity's info before anything is sent and says what "done" looks like (`cmdctl.device.expectation`).
Works on aioesphomeapi model objects by duck typing, so importing this module does not import
the client (~0.2 s).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmdctl.core.errors import DeviceRejected
from cmdctl.core.model import Command, Condition
from cmdctl.device.expectation import Expectation
from cmdctl.device.validator import ALLOWED_ARGS, Validator

if TYPE_CHECKING:
    from aioesphomeapi import EntityInfo, UserService

#: aioesphomeapi info class → domain, for the classes whose name does not say it plainly.
_DOMAIN_OVERRIDES = {"DateTimeInfo": "datetime", "UserService": "action"}

#: Domains that take commands (everything else in an entity list is read-only for cmdctl).
_COMMANDABLE = frozenset((
    "switch", "light", "number", "select", "button", "text", "cover", "fan", "climate", "lock",
    "valve", "media_player",
))  # fmt: skip


def domain_of(info: Any) -> str:
    """The cmdctl domain of an aioesphomeapi info object (`SwitchInfo` → `switch`)."""
    name = type(info).__name__
    if name in _DOMAIN_OVERRIDES:
        return _DOMAIN_OVERRIDES[name]
    base = name.removesuffix("Info")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def snake(text: str) -> str:
    """ESPHome's object_id of a friendly name (`"TV Power"` → `tv_power`)."""
    lowered = text.strip().replace(" ", "_").lower()
    return re.sub(r"[^a-z0-9_-]", "_", lowered)


# ---------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated command bound to its entity: what to send, and how to tell it worked.

    `args` are the canonical args, normalised for sending (effect names as the device spells
    them, rgb as a 3-tuple, action data converted to the declared types). `response` is the
    action's response mode (`none` / `optional` / `only` / `status`), "" for entities.
    """

    command: Command
    selector: str  # canonical `domain.object_id` (or `action.name`)
    key: int
    device_id: int
    info: Any = field(repr=False, compare=False)
    args: Mapping[str, Any] = field(default_factory=dict)
    expect: Expectation | None = None
    response: str = ""


@dataclass(frozen=True, slots=True)
class EntityRow:
    """One entity (or action) as `cmdctl devices entities` shows it."""

    selector: str
    name: str
    key: int
    device_id: int
    details: str  # e.g. "options: HDMI 1, HDMI 2" or "0..100 step 1"


#: Plans one device's index keeps (a drain's commands are shared objects; see `plan`).
_PLANS_MAX = 1024


class SharedPlans:
    """Plans shared by the devices of one drain pass.

    A fleet runs a few firmware configurations: the `number.volume` of 100 devices are 100
    equal infos, and a plan depends only on the command and the info (the device's name
    appears only in rejections, which are never kept). So equal infos become one object here
    (`==`: every field), and a plan made for (command, info) serves every device with an equal
    entity. It lives as long as the pass: resolved secret values are not kept beyond it.
    """

    def __init__(self) -> None:
        self._infos: dict[tuple[type, str], Any] = {}  # (class, repr) → the first equal info
        # (id(command), id(info)) → both objects, which keeps them alive, and their plan
        self._plans: dict[tuple[int, int], tuple[Command, Any, Plan]] = {}

    def info(self, info: Any) -> Any:
        """The one object for infos equal to `info`."""
        key = (type(info), repr(info))
        known = self._infos.get(key)
        if known is not None and known == info:
            return known
        self._infos[key] = info
        return info

    def get(self, command: Command, info: Any) -> Plan | None:
        """The plan made for this very command and info, if any."""
        hit = self._plans.get((id(command), id(info)))
        return hit[2] if hit is not None and hit[0] is command and hit[1] is info else None

    def put(self, command: Command, info: Any, plan: Plan) -> None:
        """Keep `plan` for (`command`, `info`)."""
        if len(self._plans) >= _PLANS_MAX * 8:
            self._plans.clear()
        self._plans[(id(command), id(info))] = (command, info, plan)


class EntityIndex:
    """The entities and actions of one device, looked up by selector."""

    def __init__(
        self,
        device: str,
        entities: Iterable[EntityInfo],
        services: Iterable[UserService] = (),
        sub_devices: Mapping[int, str] | None = None,
        shared: SharedPlans | None = None,
    ) -> None:
        self.device = device
        self._shared = shared
        self.sub_devices = dict(sub_devices or {})
        self._by_domain: dict[str, list[Any]] = {}
        for info in entities:
            self._by_domain.setdefault(domain_of(info), []).append(info)
        self._services: list[Any] = list(services)
        self._resolved: dict[tuple[str, str], Any] = {}  # (domain, target) → info
        # id(command) → (that command, its plan): a drain's entries share one `Command` per
        # distinct command (`journal.entry`), so a device's thousand entries are a few plans.
        self._plans: dict[int, tuple[Command, Plan]] = {}

    def rows(self) -> list[EntityRow]:
        """Every entity and action, sorted by selector."""
        out = [
            EntityRow(
                selector=f"{domain}.{info.object_id}",
                name=info.name,
                key=info.key,
                device_id=info.device_id,
                details=_details(domain, info),
            )
            for domain, infos in self._by_domain.items()
            for info in infos
        ]
        out.extend(
            EntityRow(
                selector=f"action.{svc.name}",
                name=svc.name,
                key=svc.key,
                device_id=0,
                details=_details("action", svc),
            )
            for svc in self._services
        )
        return sorted(out, key=lambda row: (row.selector, row.device_id))

    def resolve(self, command: Command) -> Any:
        """The info object (`EntityInfo` or `UserService`) a command addresses."""
        if command.domain == "action":
            return self._resolve_action(command.target)
        if (hit := self._resolved.get((command.domain, command.target))) is not None:
            return hit
        if command.domain not in _COMMANDABLE:
            raise self._reject(f"{command.domain} entities take no commands")
        return self.locate(command)

    def locate(self, command: Command) -> Any:
        """The entity info a selector names, in any domain (sensors too: `when:` reads them)."""
        if (hit := self._resolved.get((command.domain, command.target))) is not None:
            return hit
        sub, target = self._split_sub_device(command.target)
        infos = self._by_domain.get(command.domain, [])
        if sub is not None:
            infos = [i for i in infos if i.device_id == sub]
        found = _match(infos, target, lambda i: (i.object_id, i.name))
        if not found:
            raise self._reject(f"no {command.domain} '{command.target}'{self._suggest(command)}")
        if len(found) > 1:
            where = ", ".join(self._sub_device_name(i.device_id) for i in found)
            first = found[0]
            label = self.sub_devices.get(first.device_id, str(first.device_id))
            raise self._reject(
                f"{command.selector} is ambiguous: it exists on {where}",
                hint=f"name the sub-device: {command.domain}.{label}/{first.object_id}",
            )
        info = found[0] if self._shared is None else self._shared.info(found[0])
        self._resolved[(command.domain, command.target)] = info
        return info

    def refuses(self, cond: Condition) -> tuple[str, str | None] | None:
        """Why this entity list could never satisfy the `when:` / `wait_until:` condition
        `cond`, with a hint: no such entity (`no switch 'tv_powr'`, did you mean…), or a select
        without that option. None when it could."""
        try:
            info = self.locate(Command(cond.domain, cond.target))
        except DeviceRejected as err:
            return err.reason, err.hint
        options = getattr(info, "options", None)
        if cond.domain != "select" or not options or cond.value in options:
            return None
        shown = ", ".join(options)
        return f"{cond.selector} has no option {cond.wanted!r} (options: {shown})", None

    def plan(self, command: Command) -> Plan:
        """Resolve and validate `command`; `DeviceRejected` says precisely what is wrong.

        The same `Command` object planned again gets the same plan (both are immutable; the
        cache holds the command, so its id is not reused meanwhile), also from another device
        of the pass with an equal entity (`SharedPlans`); an equal command is planned anew, and
        a rejection is never kept.
        """
        hit = self._plans.get(id(command))
        if hit is not None and hit[0] is command:
            return hit[1]
        info = self.resolve(command)
        shared = self._shared
        plan = shared.get(command, info) if shared is not None else None
        if plan is None:
            plan = self._plan(command, info)
            if shared is not None:
                shared.put(command, info, plan)
        if len(self._plans) >= _PLANS_MAX:
            self._plans.clear()
        self._plans[id(command)] = (command, plan)
        return plan

    def _plan(self, command: Command, info: Any) -> Plan:
        domain = command.domain
        selector = f"{domain}.{info.name if domain == 'action' else info.object_id}"
        allowed = ALLOWED_ARGS[domain]
        if not allowed.issuperset(command.args):
            unknown = sorted(set(command.args) - allowed)
            raise self._reject(f"{selector}: unknown argument {', '.join(map(repr, unknown))}")
        check = Validator(self.device, selector, info, command.args)
        args, expect = getattr(check, f"do_{domain}")()
        response = ""
        if domain == "action":
            mode = getattr(info, "supports_response", None)
            response = mode.name.lower() if mode is not None else "none"
        return Plan(
            command=command,
            selector=selector,
            key=info.key,
            device_id=getattr(info, "device_id", 0),
            info=info,
            args=args,
            expect=expect,
            response=response,
        )

    def _resolve_action(self, target: str) -> Any:
        found = _match(self._services, target, lambda s: (s.name, s.name))
        if len(found) == 1:
            return found[0]
        names = [s.name for s in self._services]
        close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
        if close:
            tail = f" (did you mean action.{close[0]}?)"
        elif names:
            tail = f" (actions: {', '.join(sorted(names))})"
        else:
            tail = " (the device declares no actions)"
        raise self._reject(f"no action '{target}'{tail}")

    def _split_sub_device(self, target: str) -> tuple[int | None, str]:
        head, sep, rest = target.partition("/")
        if not sep or not rest:
            return None, target
        for device_id, name in self.sub_devices.items():
            if head in (name, str(device_id)) or snake(head) == snake(name):
                return device_id, rest
        if head.isdigit():
            return int(head), rest
        return None, target

    def _sub_device_name(self, device_id: int) -> str:
        if device_id in self.sub_devices:
            return f"sub-device {self.sub_devices[device_id]} ({device_id})"
        return "the main device" if device_id == 0 else f"sub-device {device_id}"

    def _suggest(self, command: Command) -> str:
        infos = self._by_domain.get(command.domain, [])
        ids = [i.object_id for i in infos]
        wanted = snake(command.target.rpartition("/")[2])
        close = difflib.get_close_matches(wanted, ids, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {command.domain}.{close[0]}?)"
        for domain, others in sorted(self._by_domain.items()):
            for info in others:
                if wanted in (info.object_id, snake(info.name)):
                    return f" (did you mean {domain}.{info.object_id}?)"
        if ids:
            shown = ", ".join(sorted(ids)[:6])
            return f" ({command.domain} entities: {shown})"
        return f" (the device has no {command.domain} entities)"

    def _reject(self, message: str, *, hint: str | None = None) -> DeviceRejected:
        return DeviceRejected(self.device, message, hint=hint)


def _match(items: Iterable[Any], target: str, names: Callable[[Any], tuple[str, str]]) -> list[Any]:
    """Exact object_id, then exact name, then case-/space-insensitive name."""
    pairs = [(item, *names(item)) for item in items]
    found = [item for item, oid, _ in pairs if oid == target]
    found = found or [item for item, _, name in pairs if name == target]
    folded, wanted = target.casefold(), snake(target)
    return found or [
        item for item, oid, name in pairs if name.casefold() == folded or oid == wanted
    ]



# ---------------------------------------------------------------------------------------------
# Listing


def _details(domain: str, info: Any) -> str:
    if domain == "select":
        return "options: " + ", ".join(info.options)
    if domain == "number":
        unit = f" {info.unit_of_measurement}" if info.unit_of_measurement else ""
        return f"{info.min_value:g}..{info.max_value:g} step {info.step:g}{unit}"
    if domain == "text":
        pattern = f", pattern {info.pattern}" if info.pattern else ""
        return f"length {info.min_length}..{info.max_length}{pattern}"
    if domain == "light":
        modes = ", ".join(m.name.lower() for m in info.supported_color_modes)
        effects = f"; effects: {', '.join(info.effects)}" if info.effects else ""
        return f"modes: {modes}{effects}"
    if domain == "fan":
        return f"{info.supported_speed_count} speeds"
    if domain == "climate":
        return "modes: " + ", ".join(m.name.lower() for m in info.supported_modes)
    if domain == "action":
        args = ", ".join(f"{a.name}: {getattr(a.type, 'name', '?').lower()}" for a in info.args)
        mode = getattr(info.supports_response, "name", "NONE").lower()
        response = f" → response ({mode})" if mode != "none" else ""
        return f"({args}){response}"
    return ""
