"""cmdctl's version (the one in pyproject.toml), importable by every wing."""

__version__ = "0.1.0"
