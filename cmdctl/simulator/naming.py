"""How firmware derives object_ids and keys from names."""

from __future__ import annotations

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def fnv1(text: str) -> int:
    """32-bit FNV-1 (multiply, then XOR) as ESPHome's `fnv1_hash`."""
    value = _FNV_OFFSET
    for byte in text.encode():
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
        value ^= byte
    return value


def object_id_of(name: str) -> str:
    """snake_case then sanitize to `[a-z0-9_-]`, as firmware and aioesphomeapi do."""
    out = []
    for char in name:
        if char == " ":
            out.append("_")
            continue
        char = char.lower() if "A" <= char <= "Z" else char
        out.append(char if ("a" <= char <= "z" or "0" <= char <= "9" or char in "_-") else "_")
    return "".join(out)
