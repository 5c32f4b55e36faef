"""Every ```python example in docs/library.md runs as it stands (a fresh directory and
CMDCTL_HOME each, against the simulator), so the library's guide cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "library.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_guide_has_examples() -> None:
    assert len(examples()) >= 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", range(len(examples())))
def test_example_runs(n: int, tmp_path: Path) -> None:
    code = examples()[n]
    script = tmp_path / f"example_{n}.py"
    script.write_text(code)
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("CMDCTL_", "XDG_"))
    }
    env |= {
        "CMDCTL_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONWARNINGS": "error",  # a warning in an example is a bug in it (or in the library)
    }
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=50,
    )
    assert result.returncode == 0, f"example {n}:\n{code}\n--- stderr:\n{result.stderr[-3000:]}"
