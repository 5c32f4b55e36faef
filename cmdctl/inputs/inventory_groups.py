"""An inventory's groups: flattened to device names however deep they nest (a cycle is an
error), and what devices take from them: `pace` and `vars` (the most specific wins)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cmdctl.inputs import inventory_fields as fields
from cmdctl.inputs import variables, yamlsrc
from cmdctl.inputs.inventory import ALL, Device
from cmdctl.inputs.variables import Value
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode


def groups_of(
    devices: list[Device], node: Node | None
) -> tuple[dict[str, tuple[str, ...]], dict[str, Loc]]:
    """(group → its devices in inventory order, `all` included; group → where it is named),
    from the devices' `groups:` and the top-level `groups:` mapping `node`."""
    device_names = {device.name: device for device in devices}
    members: dict[str, list[str]] = {}  # group → direct members (devices or groups)
    locs: dict[str, Loc] = {}
    for device in devices:
        for group in device.groups:
            members.setdefault(group, []).append(device.name)
            if device.loc is not None:
                locs.setdefault(group, device.loc)
    declared: dict[str, tuple[Loc, MapNode | SeqNode | ScalarNode]] = {}
    if node is not None:
        body = yamlsrc.want_map(node, "groups", node.loc)
        for group, value in body.items.items():
            fields.check_name(group, body.keys[group], "group")
            declared[group] = (body.keys[group], value)
            locs[group] = body.keys[group]
    for group in (*members, *declared):
        if group == ALL:
            raise locs[group].error(f"'{ALL}' is the implicit group of every device")
        if group in device_names:
            raise locs[group].error(
                f"{group!r} is both a device and a group",
                hint="devices and groups share one namespace; rename one",
            )
    known = set(device_names) | set(members) | set(declared)
    for group, (_, value) in declared.items():
        listed = members.setdefault(group, [])
        for member_node in _member_nodes(value, group):
            member = yamlsrc.want_str(member_node, f"member of group {group!r}")
            if member not in known:
                raise member_node.loc.error(
                    f"group {group!r} lists {member!r}, which is no device or group",
                    hint=yamlsrc.did_you_mean(member, sorted(known)),
                )
            if member not in listed:
                listed.append(member)
    order = {device.name: i for i, device in enumerate(devices)}
    flat: dict[str, tuple[str, ...]] = {ALL: tuple(device_names)}
    found = _flatten(members, device_names, locs)
    for group in members:
        flat[group] = tuple(sorted(found[group], key=order.__getitem__))
    return flat, locs


def _member_nodes(value: Node, group: str) -> tuple[Node, ...]:
    if isinstance(value, SeqNode):
        return value.items
    if isinstance(value, ScalarNode) and isinstance(value.value, str):
        return (value,)
    raise value.loc.error(f"group {group!r} must list its members, not {yamlsrc.kind_name(value)}")


def _flatten(
    members: Mapping[str, list[str]], devices: Mapping[str, Device], locs: Mapping[str, Loc]
) -> dict[str, frozenset[str]]:
    """Every group → the devices in it, however deep groups nest (iterative: no recursion
    limit to hit), or a located error naming a cycle."""
    done: dict[str, frozenset[str]] = {}
    for root in members:
        if root in done:
            continue
        path, on_path = [root], {root}  # the groups being resolved, outermost first
        pending = [iter(members[root])]  # each one's members not looked at yet
        found: list[set[str]] = [set()]  # each one's devices so far
        while path:
            member = next(pending[-1], None)
            if member is None:
                group, devices_in = path.pop(), found.pop()
                on_path.discard(group)
                pending.pop()
                done[group] = frozenset(devices_in)
                if found:
                    found[-1] |= devices_in
            elif member in devices:
                found[-1].add(member)
            elif member in done:
                found[-1] |= done[member]
            elif member in on_path:
                raise locs[member].error(
                    f"group cycle: {_cycle(path[path.index(member) :])}",
                    hint="a group cannot contain itself",
                )
            else:
                path.append(member)
                on_path.add(member)
                pending.append(iter(members.get(member, ())))
                found.append(set())
    return done


def _cycle(groups: list[str]) -> str:
    """`a → b → a`, shortened in the middle when long (one line, however big the loop)."""
    shown = [*groups, groups[0]]
    if len(groups) <= 8:
        return " → ".join(shown)
    return " → ".join((*shown[:3], "…", *shown[-2:])) + f" ({len(groups)} groups)"


def resolve_paces(
    devices: list[Device],
    groups: Mapping[str, tuple[str, ...]],
    node: Node | None,
    default: float | None,
) -> list[Device]:
    """Resolve every device's pace (rule in the README's Inventory section)."""
    # Own `pace:` key, else the top-level entry naming the device, else the smallest group
    # naming it (most specific; equal sizes: the slowest, safer for IR), else `defaults`.
    best: dict[str, tuple[int, int, float]] = {}  # device → (rank, group size, -pace)
    if node is not None:
        body = yamlsrc.want_map(node, "pace", node.loc)
        names = {device.name for device in devices}
        for name, value in body.items.items():
            seconds = fields.pace(value)
            if name in groups:
                members, rank = groups[name], 1
            elif name in names:
                members, rank = (name,), 0
            else:
                known = (*(device.name for device in devices), *groups)
                raise body.keys[name].error(
                    f"pace names {name!r}, which is no device or group",
                    hint=yamlsrc.did_you_mean(name, known) or "name a device or a group",
                )
            key = (rank, len(members), -seconds)
            for member in members:
                if member not in best or key < best[member]:
                    best[member] = key
    resolved: list[Device] = []
    for device in devices:
        pace = device.pace  # the device's own key wins
        if pace is None:
            pace = -best[device.name][2] if device.name in best else default
        resolved.append(device if pace is device.pace else replace(device, pace=pace))
    return resolved


def resolve_vars(
    devices: list[Device], groups: Mapping[str, tuple[str, ...]], node: Node
) -> list[Device]:
    """Add the top-level `vars:` mapping (device or group → variables) to each device's own.

    Per variable: the device's own `vars:`, else the entry naming the device, else the entry
    of the smallest group holding it that sets it (equal sizes setting different values is an
    error: no order between them says which one is meant).
    """
    body = yamlsrc.want_map(node, "vars", node.loc)
    names = {device.name for device in devices}
    named: dict[str, dict[str, Value]] = {}  # device → its entry
    best: dict[str, dict[str, tuple[int, list[tuple[str, Value]]]]] = {}  # device → var → ...
    for name, value in body.items.items():
        if name in names:
            named[name] = variables.values_of(value, f"device {name}", f"vars of {name}")
            continue
        if name not in groups:
            known = (*names, *groups)
            raise body.keys[name].error(
                f"vars names {name!r}, which is no device or group",
                hint=yamlsrc.did_you_mean(name, known)
                or "top-level vars: maps a device or a group to its variables; for every"
                " device, use defaults: {vars: ...}",
            )
        members = groups[name]
        for var, set_to in variables.values_of(value, f"group {name}", f"vars of {name}").items():
            for member in members:
                held = best.setdefault(member, {})
                current = held.get(var)
                if current is None or len(members) < current[0]:
                    held[var] = (len(members), [(name, set_to)])
                elif len(members) == current[0]:
                    current[1].append((name, set_to))
    resolved: list[Device] = []
    for device in devices:
        merged: dict[str, Value] = {}
        entry = named.get(device.name, {})
        for var, (size, candidates) in best.get(device.name, {}).items():
            if var in device.vars or var in entry:
                continue  # set for the device itself: no group's value is used
            (group, chosen), *others = candidates
            for other, theirs in others:
                if (type(theirs.value), theirs.value) != (type(chosen.value), chosen.value):
                    raise (theirs.loc or body.loc).error(
                        f"{device.name} is in groups {group} and {other} ({size} devices"
                        f" each), which set {var} differently ({chosen.text!r} at"
                        f" {chosen.loc}, {theirs.text!r} here)",
                        hint=f"set {var} on {device.name} itself, or in one of the two groups",
                    )
            merged[var] = chosen
        merged.update(entry)
        merged.update(device.vars)
        resolved.append(replace(device, vars=merged) if merged != device.vars else device)
    return resolved
