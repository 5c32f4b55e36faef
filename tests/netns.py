"""Run a test body in a private network namespace, so that multicast never leaves it.

`call("tests.pkg.module:function", *args)` runs `function(*args)` in a child made by
`unshare --net` (plus `--map-root-user` when not root), whose only interface is a loopback
brought up with multicast on and a 224.0.0.0/4 route; the child refuses to run the body if it
sees any other interface. The body returns something JSON can carry; `call` returns it.
Where namespaces are not permitted, `skip_unless_available()` skips with one line saying why.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
_RESULT = "NETNS-RESULT "


def _prefix() -> list[str]:
    return ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])


@functools.cache
def unavailable() -> str | None:
    """Why a private network namespace cannot be made here, or None."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command: cannot make a private network namespace"
    try:
        proc = subprocess.run(
            [*_prefix(), "sh", "-ec", SETUP], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run unshare: {err}"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"network namespaces not permitted here ({' '.join(_prefix())}: {why})"
    return None


def skip_unless_available() -> None:
    """Skip the test (one line saying why) where no private network namespace can be made."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


def call(target: str, *args: str, timeout: float = 90) -> Any:
    """Run `module:function(*args)` in a fresh network namespace; its JSON-able return value."""
    skip_unless_available()
    code = "import sys; from tests.netns import _child; _child(sys.argv[1], sys.argv[2:])"
    command = [
        *_prefix(),
        "sh",
        "-ec",
        SETUP + ' && exec "$@"',
        "netns",
        sys.executable,
        "-c",
        code,
        target,
        *args,
    ]
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    results = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT)]
    if proc.returncode != 0 or not results:
        pytest.fail(
            f"{target} failed in the namespace (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return json.loads(results[-1].removeprefix(_RESULT))


def _child(target: str, args: list[str]) -> None:
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        raise SystemExit(f"not in a private network namespace (interfaces: {interfaces})")
    module, _, name = target.partition(":")
    result = getattr(import_module(module), name)(*args)
    sys.stdout.write(_RESULT + json.dumps(result) + "\n")
