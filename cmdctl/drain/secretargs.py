"""Secret arguments at send time: the commands of a chunk with their `!secret` references
resolved, the entries whose secret is gone, and the values scrubbed out of what comes back.

The journal holds only references (`cmdctl.core.secretref`). The values exist in memory from
`resolve` until the device answers, and never reach an event, an observer or a message: every
outcome detail and error text from the device layer passes through the chunk's `Scrubber`
(a validator or client error may echo the arguments it was given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmdctl.core.errors import CmdctlError, DeviceError, DeviceRejected
from cmdctl.core.model import Command, Entry
from cmdctl.core.secretref import Lookup, Scrubber, names, resolve

if TYPE_CHECKING:
    from cmdctl.device.segment import Outcome


@dataclass(slots=True)
class Sending:
    """One chunk, ready to send: `commands` in the entries' order (only when nothing is
    `missing`), the scrubber for the values in them, and entry id → why its secret is gone."""

    commands: list[Command] = field(default_factory=list)
    scrub: Scrubber = field(default_factory=Scrubber)
    missing: dict[str, DeviceRejected] = field(default_factory=dict)

    def outcome(self, outcome: Outcome) -> Outcome:
        """`outcome` with the values taken out of its detail."""
        if not self.scrub:
            return outcome
        return dataclasses.replace(outcome, detail=self.scrub(outcome.detail))

    def results(self, results: Sequence[Outcome | DeviceError]) -> list[Outcome | DeviceError]:
        """`results` with the values taken out of every detail and error."""
        scrub = self.scrub
        return [scrub.error(r) if isinstance(r, DeviceError) else self.outcome(r) for r in results]


#: Argument values that are never a reference (a reference is a mapping, `secretref.ref_name`).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(args: Mapping[str, Any]) -> bool:
    """True when no value of `args` can hold a reference (the common case, checked cheaply)."""
    return all(type(value) in _SCALARS for value in args.values())


def prepare(entries: Sequence[Entry], lookup: Lookup | None) -> Sending:
    """The chunk's commands with their secrets resolved, or the entries whose secret is gone."""
    sending = Sending()
    values: list[str] = []
    for entry in entries:
        command = entry.command
        if _plain(command.args) or not names(command.args):
            sending.commands.append(command)
            continue
        try:
            if lookup is None:
                raise CmdctlError(
                    f"secret {names(command.args)[0]!r}: this run was given no secrets file"
                )
            args, scrub = resolve(command.args, lookup)
        except CmdctlError as err:
            sending.missing[entry.id] = DeviceRejected(
                entry.device, f"{command.selector}: {err.one_line()}"
            )
            continue
        values.extend(scrub.values)
        sending.commands.append(Command(command.domain, command.target, args))
    if sending.missing:
        sending.commands.clear()
    sending.scrub = Scrubber(tuple(dict.fromkeys(values)))
    return sending
