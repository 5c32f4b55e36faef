"""`Workspace.invoke` (in this process) stands in for a real `cmdctl` process: same output, same
exit codes, and nothing left behind; so the fast path cannot drift from what a user runs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.cli.helpers import Workspace, volume_playbook


def test_in_process_and_real_process_agree(workspace: Workspace) -> None:
    good = workspace.playbook("ok.yml", volume_playbook(2))
    bad = workspace.playbook("bad.yml", "name: x\ntargets: tvs\nsteps:\n  - numbr.volume: 3\n")
    assert workspace.run("bulk", str(good)).returncode == 0  # a journal to read back
    commands = [
        ["--help"],  # click's help formatter and its width
        ["queue", "--help"],
        ["--version"],
        ["frobnicate"],  # a usage error: click's message, exit 2
        ["validate", str(good)],
        ["validate", str(bad)],  # an InputError through the funnel in cmdctl.cli.app: exit 2
        ["queue", "ls", "--json"],  # emit_json
        ["devices", "ls"],  # a rich table on a non-terminal, COLUMNS wide
        ["queue", "show", "01ZZZZ"],
        ["journal", "verify"],
        ["drain", "--window", "0"],
    ]
    codes = set()
    for args in commands:
        real, here = workspace.run(*args), workspace.invoke(*args)
        assert here == real, args
        codes.add(real.returncode)
    assert codes == {0, 2}  # both sides of the funnel were compared


@pytest.fixture
def own_handlers() -> Iterator[object]:
    """SIGINT/SIGTERM handled by this process's own function, as an embedding program might."""

    def mine(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"signal {signum} reached the test's handler")

    before = {sig: signal.signal(sig, mine) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield mine
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_drain_hands_back_the_signal_handlers_it_found(
    workspace: Workspace, own_handlers: object
) -> None:
    # drain handles SIGINT/SIGTERM while it runs (stop taking work, record, release the lock);
    # once it returns, the caller's handlers are back (invoke fails the test otherwise).
    result = workspace.invoke("drain", "--quiet")
    assert result.returncode == 0, result.stderr
    assert signal.getsignal(signal.SIGTERM) is own_handlers
    assert signal.getsignal(signal.SIGINT) is own_handlers


def test_invoke_fails_a_command_that_leaves_a_signal_handler(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cmdctl.cli

    def leaky(argv: list[str] | None = None) -> None:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cmdctl.cli, "main", leaky)
    try:
        with pytest.raises(AssertionError, match=r"left behind .*SIGTERM"):
            workspace.invoke("status")
    finally:
        signal.signal(signal.SIGTERM, before)
