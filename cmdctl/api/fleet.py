"""`Fleet`: one inventory and one journal, and every operation the CLI offers on them.

Journal operations (status, entries, cancel, …) are plain methods; the ones that talk to
devices (`send`, `bulk`, `drain`) are coroutines. Nothing here prints or exits: results are
values, errors are `CmdctlError` subclasses, and warnings go to the `warn` callback.
aioesphomeapi is imported on first use, so that `import cmdctl` stays cheap.

Here: the inventory, its secrets, `send` and `scene`. The journal side is `Records`
(api.records), the batch side `Batches` (api.batches), the drain side `Drains` (api.drains);
the defaults they share are in api.arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cmdctl.api import arguments, places
from cmdctl.api.arguments import CONCURRENCY as CONCURRENCY
from cmdctl.api.arguments import MAX_COMMANDS as MAX_COMMANDS
from cmdctl.api.arguments import NOTIFY_TIMEOUT_S as NOTIFY_TIMEOUT_S
from cmdctl.api.arguments import SCENE_CONCURRENCY as SCENE_CONCURRENCY
from cmdctl.api.arguments import SCENE_CONNECT_TIMEOUT as SCENE_CONNECT_TIMEOUT
from cmdctl.api.arguments import SEND_TIMEOUT_S as SEND_TIMEOUT_S
from cmdctl.api.arguments import Lookup as Lookup
from cmdctl.api.arguments import Variables as Variables
from cmdctl.api.arguments import Warn as Warn
from cmdctl.api.batches import Batch as Batch
from cmdctl.api.batches import Batches
from cmdctl.api.drains import Drains
from cmdctl.api.records import Records
from cmdctl.core.errors import InputError

if TYPE_CHECKING:
    from cmdctl.api.scene import Scene
    from cmdctl.core.model import Entry
    from cmdctl.device.address import DeviceAddress
    from cmdctl.device.scene import DeviceScene
    from cmdctl.drain.direct import Mode, SendResult
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.inputs.secretfile import SecretsFile
    from cmdctl.journal.store import Journal



def _python_warning(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)


class Fleet(Batches, Drains, Records):
    """The devices of one inventory and the journal of their commands (its journal side, from
    `status` to `events`, is `Records`; `plan` to `bulk` is `Batches`; `engine` to `run` is
    `Drains`)."""

    def __init__(
        self,
        journal: Journal,
        inventory: Path | Inventory | None = None,
        *,
        who: str | None = None,
        warn: Warn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`inventory`: a file, a loaded Inventory, or None (found on first use as the CLI
        finds it). `warn` receives warnings (default: Python's `warnings.warn`)."""
        self.journal = journal
        self._inventory = inventory
        self.who = who if who is not None else places.who()
        self.warn: Warn = warn or _python_warning
        self.clock = clock
        self._secrets: SecretsFile | None = None

    @classmethod
    def open(
        cls,
        inventory: Path | str | None = None,
        journal: Path | str | None = None,
        *,
        who: str | None = None,
        warn: Warn | None = None,
    ) -> Fleet:
        """The fleet at `inventory` (else `$CMDCTL_INVENTORY`, `./devices.yml`, the config
        directory) with the journal in `journal` (else `$CMDCTL_HOME`, the XDG state dir)."""
        from cmdctl.journal.store import Journal

        directory = places.journal_dir(None if journal is None else Path(journal))
        inv = None if inventory is None else Path(inventory)
        return cls(Journal(directory), inv, who=who, warn=warn)

    # -- inventory ---------------------------------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        """The inventory, loaded (and validated) on first use."""
        from cmdctl.inputs.inventory import Inventory, load_inventory

        if not isinstance(self._inventory, Inventory):
            self._inventory = load_inventory(places.find_inventory(self._inventory))
        return self._inventory

    @property
    def state_dir(self) -> Path:
        """Where the devices' cached entity lists are ($CMDCTL_HOME or the XDG state dir, as
        the CLI records them), whichever journal this fleet uses."""
        return places.journal_dir(None)

    @property
    def secrets(self) -> Callable[[str], str]:
        """What an engine looks `!secret NAME` arguments up with, just before sending
        (`Engine(..., secrets=fleet.secrets)`): the secrets.yaml beside the inventory."""
        return self._secret

    def _secret(self, name: str) -> str:
        """The value of `!secret NAME` (secrets.yaml beside the inventory), for sending only."""
        return self._secrets_file().value(name)

    def _secrets_file(self) -> SecretsFile:
        from cmdctl.inputs.secretfile import SecretsFile

        if self._secrets is None:
            self._secrets = SecretsFile.beside(self.inventory.path)
        return self._secrets

    def select(self, pattern: str) -> frozenset[str]:
        """Device names a `--limit` pattern selects (`bar:&tvs`); InputError when none."""
        from cmdctl.inputs.selection import select_names

        return frozenset(select_names(self.inventory, pattern))

    def lookup(self, limit: str | None = None) -> tuple[Lookup, frozenset[str] | None]:
        """(name → device address, the names `limit` selects or None); without `limit` the
        inventory is read only when a device is first looked up (an idle drain needs none)."""
        if limit is not None:
            return self.inventory.by_name.get, self.select(limit)

        def lookup(name: str) -> DeviceAddress | None:
            return self.inventory.by_name.get(name)

        return lookup, None

    # -- send --------------------------------------------------------------------------------

    def command(
        self,
        device: str,
        entity: str,
        value: str | float | bool | None = None,
        *,
        verify: bool = True,
        check_cache: bool = False,
        at: str | None = None,
        expires: str | None = None,
        attempts: int | None = None,
    ) -> Entry:
        """The journal entry `send` would run, checked against the inventory (and with
        `check_cache` or an `at` still ahead, the device's cached entity list); nothing is
        written. `at`, `expires` (relative: from `at`) and `attempts` as in a playbook."""
        from cmdctl.core import secretref, timespec
        from cmdctl.drain import direct
        from cmdctl.inputs import commands
        from cmdctl.inputs.step import check_attempts

        self.inventory.device(device)  # InputError with a did-you-mean hint
        domain, target = commands.parse_selector(entity)
        command = commands.parse_cli_value(domain, target, arguments.value_text(value))
        self._secrets_file().check((name, None) for name in secretref.names(command.args))
        now = self.clock()
        not_before, until = timespec.schedule(at, expires, now)
        if check_cache or not_before > now:
            from cmdctl.api import cachecheck

            cachecheck.check_command(device, command, self.state_dir, self.warn)
        return direct.send_entry(
            device,
            command,
            who=self.who,
            idempotent=commands.idempotent_default(command),
            verify=verify,
            now=now,
            max_attempts=(
                direct.SEND_MAX_ATTEMPTS if attempts is None else check_attempts(attempts)
            ),
            not_before=not_before,
            expires=until,
        )

    async def deliver(
        self, entry: Entry, *, mode: Mode | str = "auto", timeout: float = SEND_TIMEOUT_S
    ) -> SendResult:
        """Run (or with mode "queue", or when it is due later, only journal) an entry made by
        `command`."""
        from cmdctl.drain import direct

        how = arguments.mode(mode)
        later = entry.not_before > entry.created
        if later and how is direct.Mode.NOW:
            from cmdctl.core.timespec import format_when

            when = format_when(entry.not_before, now=entry.created)
            raise InputError(
                f"--now and --at contradict each other: the command is due {when}",
                hint="drop --now to queue it for then, or --at to send it now",
            )
        if how is direct.Mode.QUEUE or later:
            return direct.queue_only(self.journal, entry)
        address = self.inventory.device(entry.device)
        return await direct.send(
            self.journal, address, entry, mode=how, timeout=timeout, secrets=self._secret
        )

    async def send(
        self,
        device: str,
        entity: str,
        value: str | float | bool | None = None,
        *,
        mode: Mode | str = "auto",
        timeout: float = SEND_TIMEOUT_S,
        verify: bool = True,
        at: str | None = None,
        expires: str | None = None,
        attempts: int | None = None,
    ) -> SendResult:
        """Send one command now: "auto" queues it if the device is away, "now" never queues,
        "queue" only journals it for the next drain; with `at` still ahead it is only queued,
        due then. The outcome is in the result."""
        from cmdctl.drain import direct

        how = arguments.mode(mode)
        entry = self.command(
            device,
            entity,
            value,
            verify=verify,
            check_cache=how is direct.Mode.QUEUE,
            at=at,
            expires=expires,
            attempts=attempts,
        )
        return await self.deliver(entry, mode=how, timeout=timeout)

    # -- scene -------------------------------------------------------------------------------

    async def scene(
        self,
        pattern: str,
        *,
        concurrency: int = SCENE_CONCURRENCY,
        connect_timeout: float = SCENE_CONNECT_TIMEOUT,
        on_device: Callable[[DeviceScene], None] | None = None,
    ) -> Scene:
        """What the devices `pattern` selects show now, as a `Scene` whose `playbook()` puts
        it back (`cmdctl scene save`). Nothing is sent or journaled; a device that cannot be
        read is in the scene with its error (`Scene.failed`, `Scene.exit_code`)."""
        from cmdctl.api.scene import Scene
        from cmdctl.device import scene
        from cmdctl.inputs.selection import select

        devices = select(self.inventory, pattern)
        taken_at = self.clock()
        saved = await scene.save_fleet(
            devices,
            concurrency=concurrency,
            connect_timeout=connect_timeout,
            on_result=on_device,
        )
        return Scene(pattern, taken_at, tuple(saved))

