"""YAML in, domain values out: the located YAML loader, the inventory and its secrets, device
selection, command values, playbooks, and ESPHome device configurations read (and merged into
the inventory) by `cmdctl inventory import`.

Everything a user writes is parsed and validated here, and a mistake becomes an `InputError`
naming the file, line and column. Imports `core` only; never the journal, the device wing, the
drain or the simulator, and never prints.
"""
