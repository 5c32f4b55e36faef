"""Run many instances of one ESPHome host firmware binary on 127.0.0.1, one port and HOME each."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
# The binary is listening within ~50 ms; a loaded 2-core CI box gets far more slack.
LISTEN_TIMEOUT_S = 15.0
# SIGTERM makes the firmware flush preferences and exit at once; kill after this.
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 3  # a free port can be taken by someone else between probe and bind
_POLL_S = 0.02
_TCP_LISTEN = "0A"  # socket state in /proc/net/tcp


class FleetError(Exception):
    """An instance did not come up."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One running firmware instance."""

    name: str
    host: str
    port: int
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the firmware printed (its logger writes to stdout)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A port that nothing listens on right now (the kernel's pick for an ephemeral bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets a process has open."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _listeners(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on a port (any address, IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def listen_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, e.g. ("127.0.0.1", 6053)."""
    owned = _socket_inodes(pid)
    found: list[tuple[str, int]] = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if fields[3] != _TCP_LISTEN or fields[9] not in owned:
                    continue
                hex_addr, hex_port = fields[1].rsplit(":", 1)
                # /proc prints the address as host-order 32-bit words
                raw = b"".join(
                    int(hex_addr[i : i + 8], 16).to_bytes(4, "little")
                    for i in range(0, len(hex_addr), 8)
                )
                found.append((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def listening(pid: int, port: int) -> bool | None:
    """True if the process listens on the port, False if another socket does, None if nobody."""
    listeners = _listeners(port)
    if not listeners:
        return None
    return bool(listeners & _socket_inodes(pid))


class FirmwareFleet:
    """Start, track and stop firmware instances; use as a context manager."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.instances: list[Instance] = []

    def __enter__(self) -> FirmwareFleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, count: int, *, prefix: str = "bar-tv") -> list[Instance]:
        """Start `count` instances named prefix-N and return once every one is listening."""
        first = len(self.instances) + 1
        names = [f"{prefix}-{n}" for n in range(first, first + count)]
        pending = {name: self._spawn(name) for name in names}
        started: list[Instance] = []
        for name in names:
            instance = pending[name]
            for attempt in range(1, START_ATTEMPTS + 1):
                if self._wait_listening(instance):
                    break
                self._stop_one(instance)
                if attempt == START_ATTEMPTS:
                    self.instances.remove(instance)
                    raise FleetError(
                        f"{name} did not listen on {HOST}:{instance.port} "
                        f"after {START_ATTEMPTS} attempts:\n{instance.log_tail()}"
                    )
                self.instances.remove(instance)
                instance = self._spawn(name)
            started.append(instance)
        return started

    def _spawn(self, name: str) -> Instance:
        """Launch one instance on a fresh port; does not wait."""
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.root / f"{name}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # preferences live under $HOME/.esphome
            "CMDCTL_FW_PORT": str(port),
            "CMDCTL_FW_NAME": name,
        }
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [str(self.binary)],
                cwd=home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal must not reach them first
            )
        instance = Instance(name, HOST, port, home, log, process)
        self.instances.append(instance)
        return instance

    def _wait_listening(self, instance: Instance) -> bool:
        """Wait until the instance's own socket listens; False on a port clash or a timeout."""
        deadline = time.monotonic() + LISTEN_TIMEOUT_S
        while time.monotonic() < deadline:
            if instance.process.poll() is not None:
                raise FleetError(
                    f"{instance.name} exited with {instance.process.returncode}:\n"
                    f"{instance.log_tail()}"
                )
            # Not the process: on a port clash it keeps running with its API marked failed.
            owner = listening(instance.process.pid, instance.port)
            if owner is True:
                return True
            if owner is False:
                return False  # someone else took the port first; its bind() will fail
            time.sleep(_POLL_S)
        return False

    def stop(self) -> None:
        """Stop every instance: SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGTERM)
        for instance in self.instances:
            self._stop_one(instance)
        self.instances.clear()

    @staticmethod
    def _stop_one(instance: Instance) -> None:
        """Terminate one instance and reap it."""
        process = instance.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
