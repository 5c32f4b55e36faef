"""The vocabulary every wing shares: the error tree and exit codes, the domain model (`Command`,
`Entry`, `State`, `Priority`), ids, time specs, how names sort, and the one durable write every
wing that writes a file uses.

Standard library only: `core` imports no other wing and no third-party package, so any part of
cmdctl (and any program using it as a library) can import it for free.
"""
