"""The vocabulary every wing shares: the error tree and exit codes, the domain model (`Command`,
`Entry`, `State`, `Priority`), ids, time specs and how names sort.

Standard library only: `core` imports no other wing and no third-party package, so any part of
cmdctl (and any program using it as a library) can import it for free.
"""
