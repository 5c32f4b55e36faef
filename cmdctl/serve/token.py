"""The bearer token: read from a file, or created there (mode 0600) on first start."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from cmdctl.core.errors import InputError

#: Random bytes in a new token (43 URL-safe characters).
TOKEN_BYTES = 32


def load_or_create(path: Path) -> tuple[str, bool]:
    """(the token in `path`, whether it was created now); InputError if it is unusable."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read(path), False
    except OSError as err:
        raise InputError(f"cannot create the token file: {err.strerror}", file=str(path)) from err
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return token, True


def _read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            if os.fstat(f.fileno()).st_mode & 0o077:
                raise InputError(
                    "the token file is readable by others",
                    file=str(path),
                    hint=f"chmod 600 {path}",
                )
            token = f.read().strip()
    except OSError as err:
        raise InputError(f"cannot read the token file: {err.strerror}", file=str(path)) from err
    if len(token) < 16 or any(c.isspace() for c in token):
        raise InputError(
            "the token file does not hold a token (16 or more characters, no spaces)",
            file=str(path),
        )
    return token


def matches(given: str, token: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(given.encode(), token.encode())
