"""`python -m cmdctl`."""

from cmdctl.cli import main

main()
