"""The library: what a program driving cmdctl uses, and what the CLI's commands are thin
wrappers over; where cmdctl finds its state and configuration (`places`) and the entity-cache
check (`cachecheck`). It may import every wing but the CLI, and it never prints.
"""
