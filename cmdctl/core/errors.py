"""The one exception tree of cmdctl and the fixed exit-code table.

Branches are chosen by what the caller should do, not by where the error came from:

    CmdctlError
    ├── InputError          bad playbook / inventory / arguments      -> exit 2, never retried
    ├── JournalError        the journal could not be written or read  -> exit 3
    │   └── JournalCorrupt  `journal verify` found damage
    ├── BusyError           another drain holds the drain lock        -> exit 6
    └── DeviceError         one device, one cause (carried as data by the engine)
        ├── DeviceUnavailable   transient: refused, timeout, reset    -> retried with backoff
        ├── DeviceAmbiguous     may be transient, may be a key issue  -> retried a little
        └── DeviceRejected      permanent: key, name, entity, value   -> never retried

The CLI turns these into exit codes in exactly one place (`cmdctl.cli.app.main`).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes. A run's code comes from its totals, never from a count."""

    OK = 0  # everything asked for is done (or there was nothing to do)
    FAILED = 1  # at least one command failed for good (rejected, mismatch, gave up, unknown)
    INPUT = 2  # bad playbook, inventory, pattern or arguments; nothing was written
    JOURNAL = 3  # the journal could not be written (not accepted), read or trusted, or is corrupt
    UNREACHABLE = 4  # at least one device was unreachable; its work stays queued for retry
    QUEUED = 5  # `send` could not reach the device and queued the command instead
    BUSY = 6  # another drain is already running (cron overlap); nothing was done
    INTERNAL = 70  # a bug in cmdctl; the message says where the details went
    OUTPUT = 74  # stdout could not be written (disk full, I/O error); the command itself finished
    INTERRUPTED = 130  # stopped by Ctrl-C before finishing


class CmdctlError(Exception):
    """Root of every error cmdctl raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message a user sees: one line, with the hint when there is one."""
        text = self.message
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text


class InputError(CmdctlError):
    """Bad input: playbook, inventory, secrets, selection pattern or command-line argument."""

    exit_code = ExitCode.INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.column = column

    @property
    def location(self) -> str | None:
        """`file:line:column` (as much of it as is known), or None."""
        if self.file is None:
            return None
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def one_line(self) -> str:
        loc = self.location
        body = super().one_line()
        return f"{loc}: {body}" if loc else body


class JournalError(CmdctlError):
    """The journal could not be written or read; for writes this means "not accepted"."""

    exit_code = ExitCode.JOURNAL


class JournalCorrupt(JournalError):
    """Integrity check found damaged or quarantined data."""


class BusyError(CmdctlError):
    """Another process holds a lock we must not wait for (a drain already running)."""

    exit_code = ExitCode.BUSY


class DeviceError(CmdctlError):
    """Something went wrong with one device. `retryable` is decided in `device.classify` only."""

    exit_code = ExitCode.FAILED
    retryable = False
    kind = "rejected"

    def __init__(self, device: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{device}: {message}", hint=hint)
        self.device = device
        self.reason = message


class DeviceUnavailable(DeviceError):
    """Transient: the device could not be reached or dropped us; retry with backoff."""

    exit_code = ExitCode.UNREACHABLE
    retryable = True
    kind = "unreachable"


class DeliveryUnknown(DeviceUnavailable):
    """The connection failed after a command was written: it may or may not have run."""


class DeviceAmbiguous(DeviceUnavailable):
    """Could be transient (slot exhaustion) or permanent (key mismatch); retried a little."""

    kind = "ambiguous"


class DeviceRejected(DeviceError):
    """Permanent: wrong key, wrong device at that address, unknown entity, invalid value."""

    exit_code = ExitCode.FAILED
    retryable = False
    kind = "rejected"
