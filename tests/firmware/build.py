"""Build (or reuse) the bar-TV ESPHome host firmware used by the real-firmware test lane.

Run as a script to build ahead of a test run: ``python tests/firmware/build.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

ESPHOME_REQUIREMENT = "esphome==2026.10.*"
MIN_PYTHON = (3, 12)
HERE = Path(__file__).resolve().parent
DEVICE_YAML = HERE / "bar_tv.yaml"
# Everything the YAML pulls in: a change to any of these is a different firmware.
SOURCES = (DEVICE_YAML, HERE / "cmdctl_loopback.h")
PROGRAM = "program"  # the file name ESPHome's host build gives the executable
# First build: ~45 s of pip install plus ~30 s of compile on 2 cores; generous for slow CI disks.
PIP_TIMEOUT_S = 900.0
COMPILE_TIMEOUT_S = 900.0
# A build holds the lock for minutes; a waiter gives up only well after a slow first build.
LOCK_TIMEOUT_S = 1800.0
PROBE_TIMEOUT_S = 30.0  # `python -c`, `g++ --version`: seconds at worst

Log = Callable[[str], None]


class FirmwareUnavailable(Exception):
    """This machine cannot build the firmware; the message is the one-line reason."""


class FirmwareBuildError(Exception):
    """The machine has what it needs, but installing ESPHome or compiling failed."""


@dataclass(frozen=True, slots=True)
class Firmware:
    """A built firmware binary and where it came from."""

    binary: Path
    esphome_version: str
    cached: bool
    seconds: float


def cache_root() -> Path:
    """Where venvs and binaries are kept: $XDG_CACHE_HOME/cmdctl/firmware (or ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cmdctl" / "firmware"


def _quiet(_: str) -> None:
    """Discard progress lines."""


@functools.cache
def _python_version(python: str) -> tuple[int, int] | None:
    """The (major, minor) of an interpreter that really runs and can make venvs, else None."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None  # e.g. a pyenv shim for a version that is installed but not selected
    major, minor = out.stdout.split()
    return int(major), int(minor)


@functools.cache
def find_python() -> str | None:
    """A Python >= 3.12 that can create a venv: python3.13/3.12 on PATH, else a pyenv version."""
    candidates: list[str] = []
    for name in ("python3.13", "python3.12"):
        if found := shutil.which(name):
            candidates.append(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted((pyenv_root / "versions").glob("3.1[23]*"), reverse=True)
    candidates += [
        str(v / "bin" / "python3") for v in versions if (v / "bin" / "python3").is_file()
    ]
    for python in candidates:
        version = _python_version(python)
        if version is not None and version >= MIN_PYTHON:
            return python
    return None


def find_compiler() -> str | None:
    """The C++ compiler ESPHome's host build would use ($CXX, g++, clang++, c++), or None."""
    if override := os.environ.get("CXX", "").split():
        return shutil.which(override[0])
    for name in ("g++", "clang++", "c++"):
        if found := shutil.which(name):
            return found
    return None


def unavailable_reason() -> str | None:
    """Why this machine cannot build the firmware, in one line; None when it can."""
    if os.environ.get("CMDCTL_FIRMWARE", "").lower() in {"0", "off", "skip", "no"}:
        return "real-firmware lane disabled by CMDCTL_FIRMWARE"
    if not sys.platform.startswith("linux"):
        return f"real-firmware lane needs Linux (host platform build), not {sys.platform}"
    if find_python() is None:
        return "no Python >= 3.12 (python3.13/python3.12 on PATH, ~/.pyenv/versions/3.1[23]*)"
    if find_compiler() is None:
        return "no C++ compiler found (g++, clang++, c++ or $CXX)"
    return None


def _run(cmd: list[str], *, cwd: Path | None, env: Mapping[str, str], timeout: float) -> None:
    """Run a build step; on failure raise with the tail of its output."""
    try:
        out = subprocess.run(
            cmd,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FirmwareBuildError(f"{cmd[0]} timed out after {timeout:.0f} s") from exc
    if out.returncode != 0:
        tail = "\n".join(out.stdout.splitlines()[-40:])
        raise FirmwareBuildError(f"{' '.join(cmd)} exited {out.returncode}:\n{tail}")


def _venv_dir(python: str) -> Path:
    """One venv per interpreter version and ESPHome requirement."""
    major, minor = _python_version(python) or (0, 0)
    spec = ESPHOME_REQUIREMENT.replace("==", "-").replace("*", "x")
    return cache_root() / f"venv-py{major}.{minor}-{spec}"


def ensure_venv(python: str, log: Log = _quiet) -> tuple[Path, str]:
    """A venv with ESPHome installed, created once and reused; returns it and ESPHome's version."""
    venv = _venv_dir(python)
    ready = venv / ".cmdctl-esphome-version"  # written last, once the install succeeded
    if ready.is_file() and (version := ready.read_text().strip()):
        return venv, version
    if venv.exists():
        shutil.rmtree(venv)  # a half-made venv from an interrupted install
    log(f"creating {venv} and installing {ESPHOME_REQUIREMENT} (about a minute)")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([python, "-m", "venv", str(venv)], cwd=None, env=env, timeout=PIP_TIMEOUT_S)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, ESPHOME_REQUIREMENT], cwd=None, env=env, timeout=PIP_TIMEOUT_S)
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import esphome.const as c; print(c.__version__)"],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=True,
    )
    version = out.stdout.strip()
    ready.write_text(version + "\n")
    return venv, version


def _compiler_identity() -> str:
    """First line of `$CXX --version`: a compiler upgrade is a different binary."""
    compiler = find_compiler()
    if compiler is None:
        return "none"
    out = subprocess.run(
        [compiler, "--version"],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    return out.stdout.splitlines()[0] if out.stdout else compiler


def source_hash() -> str:
    """Hash of the device YAML, the header and the compiler identity."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(_compiler_identity().encode())
    return digest.hexdigest()[:16]


def _compile(venv: Path, log: Log) -> Path:
    """Compile the YAML in a scratch copy under the cache; returns the built program."""
    work = cache_root() / "work"
    work.mkdir(parents=True, exist_ok=True)
    for path in SOURCES:
        shutil.copy2(path, work / path.name)
    log(f"compiling {DEVICE_YAML.name} with ESPHome (about 30 s)")
    env = {**os.environ, "ESPHOME_NO_ANALYTICS": "1"}
    _run(
        [str(venv / "bin" / "esphome"), "compile", DEVICE_YAML.name],
        cwd=work,
        env=env,
        timeout=COMPILE_TIMEOUT_S,
    )
    programs = sorted((work / ".esphome" / "build").glob(f"*/.pioenvs/*/{PROGRAM}"))
    if not programs:
        raise FirmwareBuildError(f"esphome compile produced no {PROGRAM} under {work}")
    return programs[0]


def ensure_firmware(log: Log = _quiet) -> Firmware:
    """The firmware binary, built on first use and cached; raises FirmwareUnavailable."""
    started = time.monotonic()
    if reason := unavailable_reason():
        raise FirmwareUnavailable(reason)
    python = find_python()
    assert python is not None  # checked by unavailable_reason()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    # One build at a time across pytest workers and processes; waiters then reuse the result.
    with FileLock(str(root / "build.lock"), timeout=LOCK_TIMEOUT_S):
        venv, version = ensure_venv(python, log)
        target = root / f"{version}-{source_hash()}"
        binary = target / PROGRAM
        if binary.is_file():
            return Firmware(binary, version, cached=True, seconds=time.monotonic() - started)
        built = _compile(venv, log)
        target.mkdir(parents=True, exist_ok=True)
        partial = target / f".{PROGRAM}.partial"
        shutil.copy2(built, partial)
        os.replace(partial, binary)  # a reader never sees a half-copied binary
        seconds = time.monotonic() - started
        info = {"esphome": version, "python": python, "seconds": round(seconds, 1)}
        (target / "build.json").write_text(json.dumps(info) + "\n")
        return Firmware(binary, version, cached=False, seconds=seconds)


def main() -> int:
    """Build or reuse the firmware and print where it is."""
    try:
        firmware = ensure_firmware(log=lambda line: print(line, file=sys.stderr))
    except FirmwareUnavailable as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    except FirmwareBuildError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    how = "cached" if firmware.cached else "built"
    version, seconds = firmware.esphome_version, firmware.seconds
    print(f"{firmware.binary}  (ESPHome {version}, {how} in {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
