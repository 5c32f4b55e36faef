"""What one segment of a device's batch came to, command by command, as it becomes known.

A session (`cmdctl.device.transport`) sends a segment's commands, proves their delivery with one
barrier and then verifies the ones it waits on. Along the way each command is *held* (built by
the client, not yet written: `wire.Client`), *pending* (written, not yet behind a barrier),
*waiting* (delivered; its state still to show), or has its result. `Marks` keeps those sets
for the segment and turns each step into results, so that what a failure means for every
command is decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from cmdctl.core.errors import DeliveryUnknown, DeviceError, DeviceRejected

if TYPE_CHECKING:  # `Outcome` is imported without the client (aioesphomeapi, ~0.2 s)
    from cmdctl.device import wire
    from cmdctl.device.entities import Plan
    from cmdctl.device.states import Waiter

Status = Literal["confirmed", "delivered", "mismatch"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one command ended on the device; `elapsed` counts from its batch's first send."""

    status: Status
    elapsed: float
    detail: str = ""  # action response JSON, observed state on mismatch, "still moving", …

    @property
    def ok(self) -> bool:
        """True unless the state did not reach the target."""
        return self.status != "mismatch"


def unsendable(device: str, plan: Plan, err: Exception) -> DeviceRejected:
    """A command the client refused to encode (a value the protocol cannot carry): that
    command fails for good, with the cause, and the connection goes on."""
    return DeviceRejected(
        device,
        f"{plan.selector}: cannot be sent: {type(err).__name__}: {err}",
        hint="the value is outside what the ESPHome API can carry; fix the command",
    )


Results = list[Outcome | DeviceError | None]


@dataclass(slots=True)
class Marks:
    """The state of each command of one segment; `results` is the whole batch's list."""

    device: str
    results: Results
    # Held by the client to be written together, when the segment has more than one command:
    # None when each is written as it comes.
    held: list[tuple[int, Plan]] | None
    pending: list[int] = field(default_factory=list)  # written, not yet behind a barrier
    waiting: dict[int, Waiter] = field(default_factory=dict)  # its state still to show

    def written(self, i: int) -> None:
        """Command `i` was written."""
        self.pending.append(i)

    def refused(self, i: int, plan: Plan, err: Exception) -> None:
        """The client could not encode command `i`: nothing of it was written."""
        self.results[i] = unsendable(self.device, plan, err)
        waiter = self.waiting.pop(i, None)
        if waiter is not None:
            waiter.done.cancel()

    def flush(self, client: wire.Client) -> None:
        """Write the held commands in one go: each is then pending, or refused alone. A
        device failure of the write leaves them pending: some or all may have left."""
        held = self.held
        if not held:
            return
        try:
            refused = client.flush()
        except BaseException:
            self.pending.extend(i for i, _ in held)
            held.clear()
            raise
        for n, (i, plan) in enumerate(held):
            err = refused.get(n)
            if err is None:
                self.pending.append(i)
            else:
                self.refused(i, plan, err)
        held.clear()

    def delivered(self, elapsed: float) -> None:
        """A barrier (or an action's answer) came after every pending command."""
        results, waiting = self.results, self.waiting
        delivered = Outcome("delivered", elapsed)  # one for all: an Outcome never changes
        for j in self.pending:
            if j in waiting:
                waiting[j].delivered = elapsed
            elif results[j] is None:
                results[j] = delivered
        self.pending.clear()

    def failed(self, error: DeviceError) -> None:
        """The connection failed: written commands are in doubt, the rest get the error.
        Held ones were never written (the client drops them: `wire.Client.release`)."""
        results = self.results
        for j in self.pending:
            results[j] = DeliveryUnknown(
                self.device, f"{error.reason} (after sending; delivery unknown)"
            )
        for j, result in enumerate(results):
            if result is None:
                results[j] = error
        for w in self.waiting.values():
            w.done.cancel()
