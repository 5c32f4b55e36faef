"""Ansible `--limit`-style patterns over an inventory.

A pattern is terms separated by `,` or `:`. A term is a device name, a group name or a glob
(`tv-*`, matched against device and group names). As in Ansible, the order of terms does not
matter: plain terms are united first, then each `&term` intersects, then each `!term` excludes.
A pattern of only `&`/`!` terms starts from `all` (`!patio` = `all:!patio`). Every term must
match something, and so must the whole pattern: a typo is an error, never a silent no-op.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from cmdctl.core.errors import InputError
from cmdctl.inputs.inventory import ALL, Device, Inventory
from cmdctl.inputs.yamlsrc import did_you_mean

_SEPARATORS = re.compile(r"[,:]")
_GLOB = re.compile(r"[*?\[]")


def select(inventory: Inventory, pattern: str) -> tuple[Device, ...]:
    """The devices `pattern` selects, in inventory order."""
    by_name = inventory.by_name
    return tuple(by_name[name] for name in select_names(inventory, pattern))


def select_names(inventory: Inventory, pattern: str) -> tuple[str, ...]:
    """Names of the devices `pattern` selects, in inventory order."""
    terms = [term.strip() for term in _SEPARATORS.split(pattern)]
    terms = [term for term in terms if term]
    if not terms:
        raise InputError(f"empty pattern {pattern!r}", hint="name a device, a group or 'all'")
    unions = [term for term in terms if term[0] not in "&!"]
    intersections = [term[1:] for term in terms if term[0] == "&"]
    exclusions = [term[1:] for term in terms if term[0] == "!"]
    chosen: set[str] = set()
    for term in unions or [ALL]:
        chosen |= _match(inventory, term, pattern)
    for term in intersections:
        chosen &= _match(inventory, term, pattern)
    for term in exclusions:
        chosen -= _match(inventory, term, pattern)
    if not chosen:
        raise InputError(
            f"pattern {pattern!r} matches no device",
            hint="each part matches something, but together they leave nothing",
        )
    return tuple(name for name in inventory.names if name in chosen)


def union(inventory: Inventory, patterns: Iterable[str]) -> tuple[str, ...]:
    """Names selected by any of `patterns` (each evaluated on its own), in inventory order."""
    chosen: set[str] = set()
    for pattern in patterns:
        chosen.update(select_names(inventory, pattern))
    return tuple(name for name in inventory.names if name in chosen)


def _match(inventory: Inventory, term: str, pattern: str) -> set[str]:
    if not term:
        raise InputError(f"pattern {pattern!r} has an empty '&' or '!' part")
    groups = inventory.groups
    if _GLOB.search(term):
        found: set[str] = set(fnmatch.filter(inventory.names, term))
        for group in fnmatch.filter(groups, term):
            found.update(groups[group])
        if found:
            return found
    elif term in groups:
        if groups[term]:
            return set(groups[term])
        raise InputError(f"group {term!r} in pattern {pattern!r} has no devices")
    elif term in inventory.by_name:
        return {term}
    where = f" (in {pattern!r})" if term != pattern else ""
    raise InputError(
        f"pattern {term!r}{where} matches no device or group",
        hint=did_you_mean(term, (*inventory.names, *groups)) or f"names are in {inventory.path}",
    )
